package action

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/graph"
)

// Step is one resource's part in an action, reported as it happens.
type Step struct {
	Service string
	RID     string
	// Action is start, stop or rollback (a stop undoing a failed start).
	Action string
	// Phase is begin, done, failed or skipped.
	Phase   string
	Log     []string
	Err     error
	Elapsed time.Duration
}

// Options narrow an action.
type Options struct {
	// RIDs, when set, limits the action to these resources (still in
	// graph order).
	RIDs []string
	// Progress, when set, is told of this action's steps (besides
	// Config.Progress).
	Progress func(Step)
}

// ResourceError says which resource failed and why.
type ResourceError struct {
	Service string
	RID     string
	Action  string
	Err     error
}

func (e *ResourceError) Error() string {
	return fmt.Sprintf("%s: %s %s: %v", e.Service, e.Action, e.RID, e.Err)
}

func (e *ResourceError) Unwrap() error { return e.Err }

// Start starts the service's resources in graph order. When a resource
// fails to start, the resources this action started are stopped again in
// reverse order and the error names the failed resource. The caller holds
// the service's lock.
func (e *Engine) Start(ctx context.Context, svc *config.Service, opts Options) error {
	items, byRID, err := e.selectResources(svc, opts, false)
	if err != nil {
		return err
	}
	waves, err := graph.Plan(items, graph.Start)
	if err != nil {
		return fmt.Errorf("%s: %w", svc.Name, err)
	}
	if err := e.ensureDirs(svc.Name); err != nil {
		return err
	}
	if err := e.serviceTriggers(ctx, svc, "start", "pre", opts); err != nil {
		return err
	}
	var started []graph.Item
	for _, w := range waves {
		ok, failed := e.runWave(ctx, svc, "start", w, byRID, opts)
		started = append(started, ok...)
		if failed == nil {
			continue
		}
		// A start that failed may have half-happened (a plugin that died
		// after spawning a docker daemon): stop those too, first. Stop is
		// idempotent.
		for _, it := range w {
			if !slices.Contains(ok, it) {
				started = append(started, it)
			}
		}
		if rbErr := e.rollback(svc, started, byRID, opts); rbErr != nil {
			return errors.Join(failed, fmt.Errorf("%s: rollback: %w", svc.Name, rbErr))
		}
		return failed
	}
	_ = e.serviceTriggers(ctx, svc, "start", "post", opts)
	return nil
}

// Stop stops the service's resources in reverse graph order. A resource
// that fails to stop stops the action: the resources below it (the
// filesystem under a still running container, say) are left alone.
func (e *Engine) Stop(ctx context.Context, svc *config.Service, opts Options) error {
	items, byRID, err := e.selectResources(svc, opts, true)
	if err != nil {
		return err
	}
	waves, err := graph.Plan(items, graph.Stop)
	if err != nil {
		return fmt.Errorf("%s: %w", svc.Name, err)
	}
	if err := e.ensureDirs(svc.Name); err != nil {
		return err
	}
	if err := e.serviceTriggers(ctx, svc, "stop", "pre", opts); err != nil {
		return err
	}
	for _, w := range waves {
		if _, failed := e.runWave(ctx, svc, "stop", w, byRID, opts); failed != nil {
			return failed
		}
	}
	_ = e.serviceTriggers(ctx, svc, "stop", "post", opts)
	return nil
}

// rollback stops what a failed start started. It runs on its own context:
// the start's may be the reason it failed.
func (e *Engine) rollback(svc *config.Service, started []graph.Item, byRID map[string]*config.Resource, opts Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var errs []error
	for _, w := range graph.Rollback(started) {
		if _, failed := e.runWave(ctx, svc, "rollback", w, byRID, opts); failed != nil {
			errs = append(errs, failed)
		}
	}
	return errors.Join(errs...)
}

// selectResources picks the resources an action touches: not disabled, in
// opts.RIDs when given; stop leaves standby resources up.
func (e *Engine) selectResources(svc *config.Service, opts Options, stop bool) ([]graph.Item, map[string]*config.Resource, error) {
	want := map[string]bool{}
	for _, rid := range opts.RIDs {
		want[rid] = true
	}
	unknown := maps.Clone(want)
	byRID := map[string]*config.Resource{}
	var items []graph.Item
	for _, r := range svc.Resources {
		if len(want) > 0 && !want[r.RID] {
			continue
		}
		delete(unknown, r.RID)
		if r.Disable || (stop && r.Standby) {
			continue
		}
		byRID[r.RID] = r
		items = append(items, graph.Item{RID: r.RID, Group: r.Group, Subset: r.Subset, Parallel: parallelSubset(svc, r)})
	}
	for rid := range unknown {
		return nil, nil, fmt.Errorf("%s: no resource %s (see print status for the resource ids)", svc.Name, rid)
	}
	return items, byRID, nil
}

// runWave runs one wave (concurrently when it has several items) and
// returns the items that succeeded and the first failure of a
// non-optional resource.
func (e *Engine) runWave(ctx context.Context, svc *config.Service, verb string, w graph.Wave, byRID map[string]*config.Resource, opts Options) ([]graph.Item, error) {
	type result struct {
		item graph.Item
		err  error
	}
	results := make([]result, len(w))
	var wg sync.WaitGroup
	for i, it := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = result{item: it, err: e.runOne(ctx, svc, verb, byRID[it.RID], opts)}
		}()
	}
	wg.Wait()
	var ok []graph.Item
	var failed error
	for _, r := range results {
		if r.err == nil {
			ok = append(ok, r.item)
			continue
		}
		if byRID[r.item.RID].Optional && verb != "rollback" {
			e.log.Warn("optional resource failed; going on", "service", svc.Name, "rid", r.item.RID, "action", verb, "error", r.err)
			continue
		}
		if failed == nil {
			failed = r.err
		}
	}
	return ok, failed
}

func (e *Engine) runOne(ctx context.Context, svc *config.Service, verb string, r *config.Resource, opts Options) error {
	begin := time.Now()
	e.progress(opts, Step{Service: svc.Name, RID: r.RID, Action: verb, Phase: "begin"})
	d, err := e.cfg.Plugins.Driver(ctx, r.Type)
	var log []string
	if err == nil {
		err = e.runTriggers(ctx, svc, r.RID, r.Keywords, verb, "pre", opts)
	}
	if err == nil {
		req := e.request(svc, r)
		if verb == "start" {
			log, err = d.Start(ctx, req)
		} else {
			log, err = d.Stop(ctx, req)
		}
	}
	step := Step{Service: svc.Name, RID: r.RID, Action: verb, Phase: "done", Log: log, Elapsed: time.Since(begin)}
	if err != nil {
		step.Phase, step.Err = "failed", err
		e.progress(opts, step)
		action := verb
		if verb == "rollback" {
			action = "stop (rollback)"
		}
		return &ResourceError{Service: svc.Name, RID: r.RID, Action: action, Err: err}
	}
	e.progress(opts, step)
	// A string with its unit: a Duration would be bare nanoseconds in JSON.
	e.log.Info("resource "+verb, "service", svc.Name, "rid", r.RID, "elapsed", step.Elapsed.Round(time.Microsecond).String())
	_ = e.runTriggers(ctx, svc, r.RID, r.Keywords, verb, "post", opts)
	return nil
}

func (e *Engine) progress(opts Options, s Step) {
	if e.cfg.Progress != nil {
		e.cfg.Progress(s)
	}
	if opts.Progress != nil {
		opts.Progress(s)
	}
}

// parallelSubset reports whether r's subset section says parallel = true.
// A subset section names the full type or the bare group.
func parallelSubset(svc *config.Service, r *config.Resource) bool {
	if r.Subset == "" {
		return false
	}
	for _, key := range []string{r.Type + ":" + r.Subset, r.Group + ":" + r.Subset} {
		if ss, ok := svc.Subsets[key]; ok {
			return ss.Parallel
		}
	}
	return false
}

// FormatStep renders a step as the line the CLI prints; "" for nothing.
func FormatStep(s Step) string {
	switch s.Phase {
	case "begin":
		return fmt.Sprintf("%s: %s %s", s.Service, s.Action, s.RID)
	case "done":
		var b strings.Builder
		for _, l := range s.Log {
			fmt.Fprintf(&b, "%s: %s %s: %s\n", s.Service, s.Action, s.RID, l)
		}
		fmt.Fprintf(&b, "%s: %s %s: done in %s", s.Service, s.Action, s.RID, s.Elapsed.Round(time.Millisecond))
		return b.String()
	case "failed":
		return fmt.Sprintf("%s: %s %s: FAILED: %v", s.Service, s.Action, s.RID, s.Err)
	}
	return ""
}
