package action

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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

// Start starts the service's resources in the order of graph.Schedule:
// each resource as soon as those it waits for are up, independent ones
// together. When a resource fails to start, no further resource begins,
// those under way finish, and what this action started is stopped again
// in reverse order; the error names the failed resource. The caller holds
// the service's lock.
func (e *Engine) Start(ctx context.Context, svc *config.Service, opts Options) error {
	items, byRID, err := e.selectResources(svc, opts, false)
	if err != nil {
		return err
	}
	steps, err := graph.Schedule(items, graph.Start)
	if err != nil {
		return fmt.Errorf("%s: %w", svc.Name, err)
	}
	if err := e.ensureDirs(svc.Name); err != nil {
		return err
	}
	if err := e.serviceTriggers(ctx, svc, "start", "pre", opts); err != nil {
		return err
	}
	// A start that failed may have half-happened (a plugin that died
	// after spawning a docker daemon): the rollback stops every resource
	// tried, not only those that started. Stop is idempotent.
	if tried, failed := e.runSchedule(ctx, svc, "start", steps, byRID, opts); failed != nil {
		if rbErr := e.rollback(svc, tried, byRID, opts); rbErr != nil {
			return errors.Join(failed, fmt.Errorf("%s: rollback: %w", svc.Name, rbErr))
		}
		return failed
	}
	_ = e.serviceTriggers(ctx, svc, "start", "post", opts)
	return nil
}

// Stop stops the service's resources in the reverse of the start's
// schedule. A resource that fails to stop stops the action: no further
// resource begins, so those below it (the filesystem under a still
// running container, say) are left alone.
func (e *Engine) Stop(ctx context.Context, svc *config.Service, opts Options) error {
	items, byRID, err := e.selectResources(svc, opts, true)
	if err != nil {
		return err
	}
	steps, err := graph.Schedule(items, graph.Stop)
	if err != nil {
		return fmt.Errorf("%s: %w", svc.Name, err)
	}
	if err := e.ensureDirs(svc.Name); err != nil {
		return err
	}
	if err := e.serviceTriggers(ctx, svc, "stop", "pre", opts); err != nil {
		return err
	}
	if _, failed := e.runSchedule(ctx, svc, "stop", steps, byRID, opts); failed != nil {
		return failed
	}
	_ = e.serviceTriggers(ctx, svc, "stop", "post", opts)
	return nil
}

// rollback stops what a failed start started. It runs on its own context:
// the start's may be the reason it failed. A resource that fails to stop
// does not hold the others back: each is tried.
func (e *Engine) rollback(svc *config.Service, started []graph.Item, byRID map[string]*config.Resource, opts Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := e.runSchedule(ctx, svc, "rollback", graph.RollbackSchedule(started), byRID, opts)
	return err
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
		it := graph.Item{RID: r.RID, Group: r.Group, Subset: r.Subset, Parallel: parallelSubset(svc, r)}
		if r.Group == "fs" {
			it.Mount, it.Paths = r.Keywords["mnt"], pathsOf(r.Keywords)
		}
		items = append(items, it)
	}
	for rid := range unknown {
		return nil, nil, fmt.Errorf("%s: no resource %s (see print status for the resource ids)", svc.Name, rid)
	}
	return items, byRID, nil
}

// runSchedule runs the steps, each once those it waits for are done, and
// returns the items it tried and the first failure of a non-optional
// resource (errors joined for a rollback). After such a failure no further
// step begins (a rollback goes on), and the steps under way finish. A
// failed optional resource is logged and counts as done.
func (e *Engine) runSchedule(ctx context.Context, svc *config.Service, verb string, steps []graph.Step, byRID map[string]*config.Resource, opts Options) ([]graph.Item, error) {
	type result struct {
		i   int
		err error
	}
	waiting := make([]int, len(steps))
	dependents := make([][]int, len(steps))
	for i, s := range steps {
		waiting[i] = len(s.After)
		for _, j := range s.After {
			dependents[j] = append(dependents[j], i)
		}
	}
	results := make(chan result)
	running := 0
	launch := func(i int) {
		running++
		go func() {
			results <- result{i: i, err: e.runOne(ctx, svc, verb, byRID[steps[i].Item.RID], opts)}
		}()
	}
	for i := range steps {
		if waiting[i] == 0 {
			launch(i)
		}
	}
	var tried []graph.Item
	var errs []error
	for running > 0 {
		r := <-results
		running--
		it := steps[r.i].Item
		tried = append(tried, it)
		if r.err != nil {
			if byRID[it.RID].Optional && verb != "rollback" {
				e.log.Warn("optional resource failed; going on", "service", svc.Name, "rid", it.RID, "action", verb, "error", r.err)
			} else {
				errs = append(errs, r.err)
			}
		}
		if len(errs) > 0 && verb != "rollback" {
			continue
		}
		for _, j := range dependents[r.i] {
			if waiting[j]--; waiting[j] == 0 {
				launch(j)
			}
		}
	}
	switch {
	case len(errs) == 0:
		return tried, nil
	case verb == "rollback":
		return tried, errors.Join(errs...)
	}
	return tried, errs[0]
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

// pathsOf are the absolute paths among a resource's keyword values (a
// filesystem's device, a bind mount's source): the schedule mounts a
// filesystem after one that holds them.
func pathsOf(kw map[string]string) []string {
	var out []string
	for _, v := range kw {
		if v = strings.TrimSpace(v); strings.HasPrefix(v, "/") {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
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
