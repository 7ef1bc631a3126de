package action

import (
	"context"
	"sync"

	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/status"
)

// SyncRID is the resource id of the config-sync pseudo resource shown in the
// sync branch of print status, as in the seed.
const SyncRID = "sync#i0"

// Status evaluates every resource of the service concurrently and merges
// them. It takes no lock: status is read-only and must answer while a long
// action runs. A resource whose plugin cannot be reached reads undef with
// the reason.
func (e *Engine) Status(ctx context.Context, svc *config.Service) status.Service {
	rs := make([]status.Resource, len(svc.Resources))
	var wg sync.WaitGroup
	for i, r := range svc.Resources {
		rs[i] = status.Resource{
			RID: r.RID, Group: r.Group, Type: r.Type,
			Monitor: r.Monitor, Disable: r.Disable, Optional: r.Optional, Standby: r.Standby,
			Status: status.NA,
		}
		if r.Disable {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.evalResource(ctx, svc, r, &rs[i])
		}()
	}
	wg.Wait()
	rs = append(rs, e.syncResource(svc))
	return status.Summarize(svc.Name, rs)
}

func (e *Engine) evalResource(ctx context.Context, svc *config.Service, r *config.Resource, out *status.Resource) {
	d, err := e.cfg.Plugins.Driver(ctx, r.Type)
	if err != nil {
		out.Status, out.Log = status.Undef, []string{err.Error()}
		return
	}
	res := d.Status(ctx, e.request(svc, r))
	out.Status, out.Log, out.Label = res.Status, res.Log, res.Label
	if r.Standby {
		switch out.Status {
		case status.Up:
			out.Status = status.StdbyUp
		case status.Down:
			out.Status = status.StdbyDown
		}
	}
}

// syncResource reports the propagation of the service's config to its
// nodes. Config sync is the cluster daemon's job; without it the line
// reads n/a rather than claiming a sync nobody does.
func (e *Engine) syncResource(svc *config.Service) status.Resource {
	return status.Resource{
		RID: SyncRID, Group: status.GroupSync, Type: "sync.config",
		Status: status.NA, Label: "svc config sync to nodes (needs vigild)",
	}
}
