// Command badproto is a plugin that speaks a resource protocol version core
// does not know; the host must refuse it with a clear error.
package main

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

type future struct{ plugin.NetRPCUnsupportedPlugin }

func (future) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (future) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("server only")
}

func main() {
	hs := sdk.Handshake
	hs.ProtocolVersion = 99
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: map[int]plugin.PluginSet{99: {sdk.PluginKindResource: future{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
