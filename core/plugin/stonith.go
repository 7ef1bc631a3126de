package plugin

import (
	"context"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// Fencer fences nodes of one fencing type, served by a plugin.
type Fencer interface {
	// Fence returns nil only when the node's power-off is confirmed.
	Fence(ctx context.Context, node string, keywords map[string]string) ([]string, error)
	// PowerStatus returns "on", "off" or "unknown".
	PowerStatus(ctx context.Context, node string, keywords map[string]string) (string, error)
}

// Stonith returns the fencer for a fencing type ("stonith.ipmi").
func (h *Host) Stonith(ctx context.Context, typ string) (Fencer, error) {
	inst, err := h.lookup(ctx, typ)
	if err != nil {
		return nil, err
	}
	return &fencer{inst: inst, typ: typ}, nil
}

type fencer struct {
	inst *instance
	typ  string
}

func (f *fencer) Fence(ctx context.Context, node string, kw map[string]string) ([]string, error) {
	c, err := f.inst.stonithClient(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := c.Fence(ctx, &proto.FenceRequest{Node: node, Type: f.typ, Keywords: kw})
	if err != nil {
		return nil, f.inst.callError("fence "+node, err)
	}
	return resp.GetLog(), nil
}

func (f *fencer) PowerStatus(ctx context.Context, node string, kw map[string]string) (string, error) {
	c, err := f.inst.stonithClient(ctx)
	if err != nil {
		return "", err
	}
	ctx, cancel := withDefaultTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.PowerStatus(ctx, &proto.FenceRequest{Node: node, Type: f.typ, Keywords: kw})
	if err != nil {
		return "", f.inst.callError("power status of "+node, err)
	}
	return resp.GetPower(), nil
}
