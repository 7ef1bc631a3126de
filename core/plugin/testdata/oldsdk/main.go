// Command oldsdk is a resource plugin as one built with an SDK from before
// the status channel: its server answers Unimplemented to
// OpenStatusChannel, so core must ask its status over gRPC. Its type
// app.old is up while its marker file exists.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vigil-ha/vigil/plugins/sdk"
	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

type server struct {
	proto.UnimplementedResourceDriverServer
}

func (server) Info(context.Context, *proto.InfoRequest) (*proto.InfoResponse, error) {
	return &proto.InfoResponse{Name: "oldsdk", Version: "0.9.0", Types: []*proto.TypeInfo{{
		Type:     "app.old",
		Keywords: []*proto.Keyword{{Name: "file", Type: sdk.TypeString, Required: true}},
	}}}, nil
}

func (server) Status(_ context.Context, r *proto.ResourceRequest) (*proto.StatusResponse, error) {
	if _, err := os.Stat(r.GetKeywords()["file"]); err == nil {
		return &proto.StatusResponse{Status: proto.Status_STATUS_UP, Label: "old"}, nil
	}
	return &proto.StatusResponse{Status: proto.Status_STATUS_DOWN, Label: "old"}, nil
}

type old struct{ plugin.NetRPCUnsupportedPlugin }

func (old) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterResourceDriverServer(s, server{})
	return nil
}

func (old) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("server only")
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{sdk.ProtocolVersion: {sdk.PluginKindResource: old{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
