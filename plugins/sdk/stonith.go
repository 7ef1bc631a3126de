package sdk

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// PluginKindStonith is the go-plugin name of the fencing service.
const PluginKindStonith = "stonith"

// Power states a fencing plugin reports.
const (
	PowerOn      = "on"
	PowerOff     = "off"
	PowerUnknown = "unknown"
)

// StonithDriver is what a fencing plugin implements. Fence must return nil
// only when the node's power-off is confirmed: core takes a service over
// from a lost node only then. Honour ctx's deadline.
type StonithDriver interface {
	// Info lists the fencing types served ("stonith.ipmi") and the
	// keywords of their [stonith#<node>] sections.
	Info() Info
	Fence(ctx context.Context, node string, keywords map[string]string) (log []string, err error)
	PowerStatus(ctx context.Context, node string, keywords map[string]string) (string, error)
}

// ServeStonith runs a fencing plugin process until core goes away. It
// never returns.
func ServeStonith(d StonithDriver) {
	serve(plugin.PluginSet{PluginKindStonith: &stonithPlugin{impl: d}})
}

type stonithPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl StonithDriver
}

func (p *stonithPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterStonithServer(s, &stonithServer{impl: p.impl})
	return nil
}

func (p *stonithPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errServerOnly
}

type stonithServer struct {
	proto.UnimplementedStonithServer
	impl StonithDriver
}

var _ proto.StonithServer = (*stonithServer)(nil)

func (s *stonithServer) Info(context.Context, *proto.InfoRequest) (*proto.InfoResponse, error) {
	return infoToProto(s.impl.Info()), nil
}

func (s *stonithServer) Fence(ctx context.Context, req *proto.FenceRequest) (*proto.FenceResponse, error) {
	log, err := s.impl.Fence(ctx, req.GetNode(), kwOrEmpty(req.GetKeywords()))
	if err != nil {
		return nil, err
	}
	return &proto.FenceResponse{Log: log}, nil
}

func (s *stonithServer) PowerStatus(ctx context.Context, req *proto.FenceRequest) (*proto.PowerStatusResponse, error) {
	p, err := s.impl.PowerStatus(ctx, req.GetNode(), kwOrEmpty(req.GetKeywords()))
	if err != nil {
		return nil, err
	}
	return &proto.PowerStatusResponse{Power: p}, nil
}

func kwOrEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
