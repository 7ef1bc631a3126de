package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk"
	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// HeartbeatRunner runs heartbeats of one type, served by a plugin. The
// config and event types are the SDK's: they are plain data.
type HeartbeatRunner interface {
	// Run runs one heartbeat until ctx ends or the plugin fails; values
	// from datasets are published (latest wins); events go to emit.
	Run(ctx context.Context, cfg sdk.HeartbeatConfig, datasets <-chan []byte, emit func(sdk.HeartbeatEvent)) error
}

// Heartbeat returns the runner for a heartbeat type ("hb.net").
func (h *Host) Heartbeat(ctx context.Context, typ string) (HeartbeatRunner, error) {
	inst, err := h.lookup(ctx, typ)
	if err != nil {
		return nil, err
	}
	return &heartbeatRunner{inst: inst}, nil
}

type heartbeatRunner struct{ inst *instance }

func (r *heartbeatRunner) Run(ctx context.Context, cfg sdk.HeartbeatConfig, datasets <-chan []byte, emit func(sdk.HeartbeatEvent)) error {
	hb, err := r.inst.heartbeat(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := hb.Run(ctx)
	if err != nil {
		return r.inst.callError("run "+cfg.Name, err)
	}
	pc := &proto.HeartbeatConfig{
		Name: cfg.Name, Type: cfg.Type, Cluster: cfg.Cluster, LocalNode: cfg.LocalNode, Nodes: cfg.Nodes,
		IntervalMs: cfg.Interval.Milliseconds(), TimeoutMs: cfg.Timeout.Milliseconds(), Keywords: cfg.Keywords, Key: cfg.Key,
	}
	if err := stream.Send(&proto.HeartbeatIn{Msg: &proto.HeartbeatIn_Config{Config: pc}}); err != nil {
		return r.inst.callError("run "+cfg.Name, err)
	}
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				sendErr <- nil
				return
			case ds := <-datasets:
				if err := stream.Send(&proto.HeartbeatIn{Msg: &proto.HeartbeatIn_Dataset{Dataset: ds}}); err != nil {
					sendErr <- err
					cancel()
					return
				}
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("heartbeat %s: the plugin ended the stream", cfg.Name)
			}
			return r.inst.callError("run "+cfg.Name, err)
		}
		switch v := m.Msg.(type) {
		case *proto.HeartbeatOut_Beat:
			emit(sdk.HeartbeatEvent{Kind: sdk.EventBeat, Peer: v.Beat.GetPeer(), Dataset: v.Beat.GetDataset(),
				Received: time.Unix(0, v.Beat.GetReceivedUnixNano())})
		case *proto.HeartbeatOut_Stale:
			emit(sdk.HeartbeatEvent{Kind: sdk.EventStale, Peer: v.Stale.GetPeer(), Reason: v.Stale.GetReason()})
		case *proto.HeartbeatOut_Reject:
			emit(sdk.HeartbeatEvent{Kind: sdk.EventReject, Peer: v.Reject.GetPeer(), Reason: v.Reject.GetReason()})
		}
		select {
		case err := <-sendErr:
			if err != nil {
				return r.inst.callError("run "+cfg.Name, err)
			}
		default:
		}
	}
}
