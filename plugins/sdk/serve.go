package sdk

import (
	"context"
	"os"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// Handshake is the go-plugin handshake shared by core and every plugin. The
// cookie only guards against running a plugin by hand; it is not security.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "VIGIL_PLUGIN_COOKIE",
	MagicCookieValue: "b6c1d2e6-vigil-resource-driver",
}

// PluginKindResource is the go-plugin name of the resource-driver service.
const PluginKindResource = "resource"

// Logger returns the plugin's logger. Its lines go to core's log, tagged
// with the plugin's name.
func Logger() hclog.Logger {
	return logger
}

var logger = hclog.New(&hclog.LoggerOptions{
	Output:     os.Stderr,
	JSONFormat: true, // go-plugin parses JSON lines and forwards them to core
	Level:      hclog.Debug,
})

// Serve runs a resource plugin process until core goes away. It never
// returns.
func Serve(d ResourceDriver) {
	ch := &statusChannel{impl: d}
	serve(plugin.PluginSet{PluginKindResource: &resourcePlugin{impl: d, ch: ch}}, ch.close)
}

// serve runs go-plugin's server, then the cleanups, and exits.
func serve(set plugin.PluginSet, cleanups ...func()) {
	go exitWithParent(os.Getppid())
	// A plugin waits on I/O (docker, netlink, lvm commands); one P spares
	// every call a cross-CPU wake-up (measured: a gRPC round trip from
	// core drops from ~240 to ~185 µs on a 2-core VM). GOMAXPROCS in the
	// environment still wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: set},
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           logger,
	})
	for _, f := range cleanups {
		f()
	}
	os.Exit(0)
}

// exitWithParent ends the plugin when its host dies, even by SIGKILL. Core
// also sets a parent-death signal; this covers the case where the thread
// that started us exited before the process did.
func exitWithParent(ppid int) {
	for range time.Tick(200 * time.Millisecond) {
		if os.Getppid() != ppid {
			os.Exit(1)
		}
	}
}

// resourcePlugin adapts a ResourceDriver to go-plugin. Only the server half
// lives here; core has the client.
type resourcePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl ResourceDriver
	ch   *statusChannel
}

func (p *resourcePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterResourceDriverServer(s, &resourceServer{impl: p.impl, ch: p.ch})
	return nil
}

func (p *resourcePlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errServerOnly
}
