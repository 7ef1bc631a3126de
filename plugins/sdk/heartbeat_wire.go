package sdk

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// ServeHeartbeat runs a heartbeat plugin process until core goes away. It
// never returns.
func ServeHeartbeat(d HeartbeatDriver) {
	serve(plugin.PluginSet{PluginKindHeartbeat: &heartbeatPlugin{impl: d}})
}

type heartbeatPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl HeartbeatDriver
}

func (p *heartbeatPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterHeartbeatServer(s, &heartbeatServer{impl: p.impl})
	return nil
}

func (p *heartbeatPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errServerOnly
}

type heartbeatServer struct {
	proto.UnimplementedHeartbeatServer
	impl HeartbeatDriver
}

var _ proto.HeartbeatServer = (*heartbeatServer)(nil)

func (s *heartbeatServer) Info(context.Context, *proto.InfoRequest) (*proto.InfoResponse, error) {
	return infoToProto(s.impl.Info()), nil
}

func (s *heartbeatServer) Run(stream proto.Heartbeat_RunServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	pc := first.GetConfig()
	if pc == nil {
		return errors.New("heartbeat: the first message must carry the config")
	}
	cfg := HeartbeatConfig{
		Name: pc.GetName(), Type: pc.GetType(), Cluster: pc.GetCluster(), LocalNode: pc.GetLocalNode(),
		Nodes: pc.GetNodes(), Interval: time.Duration(pc.GetIntervalMs()) * time.Millisecond,
		Timeout: time.Duration(pc.GetTimeoutMs()) * time.Millisecond, Keywords: pc.GetKeywords(), Key: pc.GetKey(),
	}
	if cfg.Keywords == nil {
		cfg.Keywords = map[string]string{}
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	// One sender owns the stream's send side.
	out := make(chan *proto.HeartbeatOut, 256)
	var sendErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-out:
				if err := stream.Send(m); err != nil {
					sendErr = err
					cancel()
					return
				}
			}
		}
	}()
	emit := func(e HeartbeatEvent) {
		m := &proto.HeartbeatOut{}
		switch e.Kind {
		case EventBeat:
			m.Msg = &proto.HeartbeatOut_Beat{Beat: &proto.Beat{Peer: e.Peer, Dataset: e.Dataset, ReceivedUnixNano: e.Received.UnixNano()}}
		case EventStale:
			m.Msg = &proto.HeartbeatOut_Stale{Stale: &proto.Stale{Peer: e.Peer, Reason: e.Reason}}
		case EventReject:
			m.Msg = &proto.HeartbeatOut_Reject{Reject: &proto.Reject{Peer: e.Peer, Reason: e.Reason}}
		default:
			return
		}
		select {
		case out <- m:
		case <-ctx.Done():
		}
	}
	// Datasets from core, latest wins.
	datasets := make(chan []byte, 1)
	go func() {
		defer cancel()
		for {
			in, err := stream.Recv()
			if err != nil {
				return // io.EOF: core closed the stream
			}
			ds := in.GetDataset()
			if ds == nil {
				continue
			}
			select {
			case <-datasets:
			default:
			}
			datasets <- ds
		}
	}()
	out <- &proto.HeartbeatOut{Msg: &proto.HeartbeatOut_Ready{Ready: cfg.Name}}
	err = s.impl.Run(ctx, cfg, datasets, emit)
	cancel()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if sendErr != nil && !errors.Is(sendErr, io.EOF) {
		return sendErr
	}
	return nil
}
