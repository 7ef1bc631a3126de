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
	return e.Refresh(ctx, svc, nil, nil)
}

// Refresh re-evaluates the resources only selects (all when nil) and
// takes the others from prev (a previous evaluation of the same service):
// the daemon checks monitored resources more often than the rest.
func (e *Engine) Refresh(ctx context.Context, svc *config.Service, prev *status.Service, only func(*config.Resource) bool) status.Service {
	old := map[string]status.Resource{}
	if prev != nil {
		for _, r := range prev.Resources {
			old[r.RID] = r
		}
	}
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
		if o, ok := old[r.RID]; ok && only != nil && !only(r) {
			rs[i].Status, rs[i].Log, rs[i].Label = o.Status, o.Log, o.Label
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case e.sem <- struct{}{}:
				defer func() { <-e.sem }()
			case <-ctx.Done():
				rs[i].Status, rs[i].Log = status.Undef, []string{ctx.Err().Error()}
				return
			}
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
