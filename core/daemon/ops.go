package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/journal"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/plugins/sdk/value"
)

// ops is the daemon's operations side: node maintenance (freeze, thaw,
// drain, the cluster-wide freeze), the failure lifecycle (clear,
// failure_timeout), fencing operations (levels, operator confirmation,
// the periodic check), the journal, alerts and the failover flight
// recorder. Its mutex is a leaf: nothing else is locked while it is held.
type ops struct {
	mu sync.Mutex
	// node is the maintenance state kept across restarts (node.json).
	node     nodeMaintenance
	journal  *journal.Journal
	checks   map[string]api.FenceCheck // method section -> last check
	alertErr map[string]int
	// confirmed: lost nodes an operator confirmed off (until heard).
	confirmed map[string]bool
	// restarts: service -> rid -> the monitor's restarts in place.
	restarts map[string]map[string]int
	// failSeen: when this daemon first saw a service's failure mark.
	failSeen map[string]time.Time
	flight   *flightRecorder
}

// nodeMaintenance is what survives a restart of the node's maintenance.
type nodeMaintenance struct {
	Frozen   bool `json:"frozen,omitempty"`
	Draining bool `json:"draining,omitempty"`
	// ClusterFreeze is the cluster-wide freeze as this node knows it.
	ClusterFreeze cluster.Expectation `json:"cluster_freeze"`
}

func (d *Daemon) nodeStatePath() string { return filepath.Join(d.cfg.StateDir, "node.json") }

// newOps opens the journal and reads the node's maintenance state back.
func newOps(d *Daemon) (*ops, error) { return newOpsIn(d, d.cfg.StateDir) }

func newOpsIn(d *Daemon, stateDir string) (*ops, error) {
	o := &ops{checks: map[string]api.FenceCheck{}, alertErr: map[string]int{}, confirmed: map[string]bool{},
		restarts: map[string]map[string]int{}, failSeen: map[string]time.Time{}, flight: newFlightRecorder()}
	if b, err := os.ReadFile(filepath.Join(stateDir, "node.json")); err == nil {
		if err := json.Unmarshal(b, &o.node); err != nil {
			d.log.Error("unreadable node maintenance state; the node starts thawed", "path", d.nodeStatePath(), "error", err)
		}
	}
	j, err := journal.Open(journal.Config{Dir: filepath.Join(stateDir, "journal")})
	if err != nil {
		return nil, fmt.Errorf("open the event journal: %w (check %s)", err, stateDir)
	}
	o.journal = j
	if o.node.Frozen || o.node.ClusterFreeze.Value == "frozen" {
		d.log.Warn("this node is frozen (kept from before the restart): its services are left as they are", "cluster_freeze", o.node.ClusterFreeze.Value == "frozen")
	}
	return o, nil
}

func (d *Daemon) saveNodeState() error {
	d.ops.mu.Lock()
	b, err := json.MarshalIndent(d.ops.node, "", "  ")
	d.ops.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		return err
	}
	return action.WriteFileAtomic(d.nodeStatePath(), b, 0o600, time.Time{})
}

// frozen reports whether this node leaves its services alone: frozen by
// its operator (or at the end of a drain), or by the cluster-wide freeze.
func (d *Daemon) frozen() bool {
	if d.ops == nil {
		return false
	}
	d.ops.mu.Lock()
	defer d.ops.mu.Unlock()
	return d.ops.node.Frozen || d.ops.node.ClusterFreeze.Value == "frozen"
}

// publishedMaintenance is what the dataset carries of it.
func (d *Daemon) publishedMaintenance() (frozen bool, clusterFreeze cluster.Expectation) {
	if d.ops == nil {
		return false, cluster.Expectation{}
	}
	d.ops.mu.Lock()
	defer d.ops.mu.Unlock()
	return d.ops.node.Frozen, d.ops.node.ClusterFreeze
}

// opsLoop adopts peers' cluster-wide freezes, expires failures past their
// failure_timeout, checks the fencing methods and finishes flight records.
func (d *Daemon) opsLoop(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	go d.fenceCheckLoop(ctx)
	for {
		select {
		case <-ctx.Done():
			d.ops.journal.Close()
			return
		case now := <-t.C:
			d.forgetConfirmations()
			d.adoptClusterFreeze()
			d.expireFailures(now)
			d.finishFlights(now)
		}
	}
}

// adoptClusterFreeze takes a peer's cluster-wide freeze newer than ours.
func (d *Daemon) adoptClusterFreeze() {
	for name, p := range d.view.Snapshot().Peers {
		if p.Dataset == nil {
			continue
		}
		e := p.Dataset.ClusterFreeze
		d.ops.mu.Lock()
		newer := e.Newer(d.ops.node.ClusterFreeze)
		if newer {
			d.ops.node.ClusterFreeze = e
		}
		d.ops.mu.Unlock()
		if !newer {
			continue
		}
		d.log.Warn("cluster-wide freeze from peer", "peer", name, "frozen", e.Value == "frozen")
		if err := d.saveNodeState(); err != nil {
			d.log.Error("persist node maintenance state", "error", err)
		}
		d.publishMaintenance()
		d.poke()
	}
}

// NodeAction implements api.OpsBackend.
func (d *Daemon) NodeAction(ctx context.Context, verb string, req api.NodeRequest, progress func(string)) error {
	uid, _ := api.CallerUID(ctx)
	switch verb {
	case "freeze", "thaw":
		return d.freeze(verb == "freeze", req.Cluster, uid, progress)
	case "drain":
		return d.drain(ctx, req.Wait, uid, progress)
	case "fence-confirm":
		return d.confirmFence(req.Node, uid, progress)
	case "fence-test":
		return d.testFence(ctx, req.Node, progress)
	}
	return fmt.Errorf("unknown node operation %q: use freeze, thaw, drain, fence-confirm or fence-test", verb)
}

func (d *Daemon) freeze(on, wholeCluster bool, uid int, progress func(string)) error {
	word := map[bool]string{true: "frozen", false: "thawed"}[on]
	d.ops.mu.Lock()
	if wholeCluster {
		e := d.ops.node.ClusterFreeze
		e.Value = ""
		if on {
			e.Value = "frozen"
		}
		e.Version, e.By = e.Version+1, d.node.Local
		d.ops.node.ClusterFreeze = e
	} else {
		d.ops.node.Frozen = on
		if !on {
			d.ops.node.Draining = false
		}
	}
	d.ops.mu.Unlock()
	if err := d.saveNodeState(); err != nil {
		return fmt.Errorf("persist the freeze in %s: %w", d.nodeStatePath(), err)
	}
	d.publishMaintenance()
	d.poke()
	what := "node " + d.node.Local
	if wholeCluster {
		what = "the cluster"
	}
	d.record(journal.Entry{Kind: "operator", Node: d.node.Local, UID: &uid, Message: what + " " + word})
	progress(what + " " + word)
	if !on && wholeCluster && d.frozen() {
		progress("this node stays frozen on its own (nodemgr thaw)")
	}
	return nil
}

// drain moves every service running here to its next node, then freezes
// the node. It is refused, with nothing changed, when a service has
// nowhere to go.
func (d *Daemon) drain(ctx context.Context, wait bool, uid int, progress func(string)) error {
	v := d.orchestratorView(time.Now())
	type move struct{ svc, to string }
	var moves []move
	for _, s := range v.Services {
		if !s.Instances[v.Local].Active() {
			continue
		}
		if s.Expect == orchestrator.ExpectFrozen {
			return fmt.Errorf("drain refused, nothing changed: service %s is frozen; thaw it (svcmgr -s %s thaw) or stop it first", s.Name, s.Name)
		}
		to := ""
		var why []string
		for _, n := range s.Nodes {
			if n == v.Local {
				continue
			}
			if ok, reason := orchestrator.Eligible(v, s, n); ok {
				to = n
				break
			} else {
				why = append(why, n+" "+reason)
			}
		}
		if to == "" {
			if len(why) == 0 {
				why = []string{"it has no other node"}
			}
			return fmt.Errorf("drain refused, nothing changed: service %s has nowhere to go (%s); stop it or bring a node up first", s.Name, strings.Join(why, ", "))
		}
		moves = append(moves, move{s.Name, to})
	}
	d.ops.mu.Lock()
	d.ops.node.Draining = true
	d.ops.mu.Unlock()
	if err := d.saveNodeState(); err != nil {
		return err
	}
	d.record(journal.Entry{Kind: "operator", Node: d.node.Local, UID: &uid, Message: fmt.Sprintf("drain: %d service(s) to move", len(moves))})
	for _, m := range moves {
		s, err := d.lookup(m.svc)
		if err != nil {
			return err
		}
		d.mu.Lock()
		e := s.persist.Expect
		d.mu.Unlock()
		if err := d.setExpect(m.svc, cluster.Expectation{Value: e.Value, Target: m.to, Version: e.Version + 1, By: d.node.Local}); err != nil {
			return err
		}
		progress(fmt.Sprintf("%s: moving to %s", m.svc, m.to))
	}
	finish := func(ctx context.Context) error {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			left := d.activeHere()
			if len(left) == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("drain: still running here: %s: %w", strings.Join(left, ", "), ctx.Err())
			case <-t.C:
			}
		}
		d.ops.mu.Lock()
		d.ops.node.Frozen, d.ops.node.Draining = true, false
		d.ops.mu.Unlock()
		if err := d.saveNodeState(); err != nil {
			return err
		}
		d.publishMaintenance()
		d.poke()
		d.record(journal.Entry{Kind: "operator", Node: d.node.Local, Message: "drained: node " + d.node.Local + " frozen"})
		return nil
	}
	if !wait {
		go func() {
			if err := finish(context.Background()); err != nil {
				d.log.Error("drain", "error", err)
			}
		}()
		progress("drain asked: the node freezes once its services have moved (nodemgr drain --wait waits for it)")
		return nil
	}
	if err := finish(ctx); err != nil {
		return err
	}
	progress("node " + d.node.Local + " drained and frozen")
	return nil
}

// activeHere lists the local services that run or may run here.
func (d *Daemon) activeHere() []string {
	v := d.orchestratorView(time.Now())
	var out []string
	for _, s := range v.Services {
		if s.Instances[v.Local].Active() {
			out = append(out, s.Name)
		}
	}
	return out
}

// Clear implements api.OpsBackend: the operator forgets a service's
// failed and start-failed marks on a node (or every node), which puts the
// node back among the service's candidates. Refused when there is nothing
// to clear.
func (d *Daemon) Clear(ctx context.Context, name string, req api.ClearRequest) error {
	s, err := d.lookup(name)
	if err != nil {
		return err
	}
	target := req.Node
	if target == "" {
		target = d.node.Local
	}
	if target != "*" && !slices.Contains(d.node.Nodes, target) {
		return fmt.Errorf("clear: %s is not a node of the cluster %v", target, d.node.Nodes)
	}
	st := d.Status(ctx)
	var failedOn []string
	for n, ns := range st.Node {
		if inst := ns.Services[name]; inst != nil && (target == "*" || n == target) && failedState(inst.State) {
			failedOn = append(failedOn, n)
		}
	}
	if len(failedOn) == 0 {
		where := "on " + target
		if target == "*" {
			where = "on any node"
		}
		return fmt.Errorf("clear refused: service %s has no failure to clear %s (it is not failed or start failed there)", name, where)
	}
	slices.Sort(failedOn)
	d.mu.Lock()
	e := s.persist.Expect
	d.mu.Unlock()
	e.Version, e.By, e.Clear = e.Version+1, d.node.Local, target
	if err := d.setExpect(name, e); err != nil {
		return err
	}
	uid, _ := api.CallerUID(ctx)
	d.record(journal.Entry{Kind: "operator", Service: name, Node: d.node.Local, UID: &uid,
		Message: "clear: failure marks forgotten on " + strings.Join(failedOn, ", ")})
	return nil
}

func failedState(s string) bool {
	return s == string(orchestrator.Failed) || s == string(orchestrator.StartFailed)
}

// clearFailureLocked forgets the local failure marks when e asks it for
// this node (setExpect's hook; d.mu is held).
func (d *Daemon) clearFailureLocked(s *service, e cluster.Expectation) {
	if (e.Clear == d.node.Local || e.Clear == "*") && failedState(s.persist.State) {
		s.persist.State = ""
		d.ops.mu.Lock()
		delete(d.ops.failSeen, s.name)
		delete(d.ops.restarts, s.name)
		d.ops.mu.Unlock()
	}
}

// expireFailures forgets a failure mark older than the service's
// failure_timeout (0, the default: kept until cleared).
func (d *Daemon) expireFailures(now time.Time) {
	type exp struct {
		name string
		age  time.Duration
	}
	var expired []exp
	d.mu.Lock()
	for name, s := range d.svcs {
		if s.conf == nil || !failedState(s.persist.State) {
			d.ops.mu.Lock()
			delete(d.ops.failSeen, name)
			d.ops.mu.Unlock()
			continue
		}
		timeout, _ := value.ParseDuration(s.conf.Keywords["failure_timeout"])
		d.ops.mu.Lock()
		seen, ok := d.ops.failSeen[name]
		if !ok {
			seen = now
			d.ops.failSeen[name] = now
		}
		d.ops.mu.Unlock()
		if timeout > 0 && now.Sub(seen) >= timeout {
			expired = append(expired, exp{name, now.Sub(seen)})
		}
	}
	d.mu.Unlock()
	for _, x := range expired {
		d.mu.Lock()
		s := d.svcs[x.name]
		if s == nil || !failedState(s.persist.State) {
			d.mu.Unlock()
			continue
		}
		was := s.persist.State
		s.persist.State = ""
		p := s.persist
		d.mu.Unlock()
		d.ops.mu.Lock()
		delete(d.ops.failSeen, x.name)
		delete(d.ops.restarts, x.name)
		d.ops.mu.Unlock()
		if err := d.savePersisted(x.name, p); err != nil {
			d.log.Error("persist service state", "service", x.name, "error", err)
		}
		d.log.Info("failure expired (failure_timeout)", "service", x.name, "was", was, "after", x.age.Round(time.Second))
		d.record(journal.Entry{Kind: "monitor", Service: x.name, Node: d.node.Local, Message: was + " expired after failure_timeout"})
		d.publishMaintenance()
		d.poke()
	}
}

// noteRestart keeps the monitor's restart count of a resource (called
// under the orchestrator's lock; ops.mu is a leaf).
func (d *Daemon) noteRestart(svc, rid string, attempts int) {
	d.ops.mu.Lock()
	defer d.ops.mu.Unlock()
	if attempts == 0 {
		delete(d.ops.restarts[svc], rid)
		return
	}
	if d.ops.restarts[svc] == nil {
		d.ops.restarts[svc] = map[string]int{}
	}
	d.ops.restarts[svc][rid] = attempts
}

// restartCounts is what a service's instance publishes of them.
func (d *Daemon) restartCounts(svc string) map[string]int {
	if d.ops == nil {
		return nil
	}
	d.ops.mu.Lock()
	defer d.ops.mu.Unlock()
	if len(d.ops.restarts[svc]) == 0 {
		return nil
	}
	out := make(map[string]int, len(d.ops.restarts[svc]))
	for k, v := range d.ops.restarts[svc] {
		out[k] = v
	}
	return out
}

// Ops implements api.OpsBackend.
func (d *Daemon) Ops(context.Context) *api.OpsStatus {
	st := &api.OpsStatus{Local: d.node.Local, Frozen: map[string]bool{}, AlertFailures: map[string]int{}}
	d.ops.mu.Lock()
	st.Frozen[d.node.Local] = d.ops.node.Frozen || d.ops.node.ClusterFreeze.Value == "frozen"
	st.ClusterFrozen = d.ops.node.ClusterFreeze.Value == "frozen"
	st.Draining = d.ops.node.Draining
	for _, c := range d.ops.checks {
		st.FenceChecks = append(st.FenceChecks, c)
	}
	for k, v := range d.ops.alertErr {
		st.AlertFailures[k] = v
	}
	d.ops.mu.Unlock()
	for name, p := range d.view.Snapshot().Peers {
		st.Frozen[name] = p.Dataset != nil && (p.Dataset.Frozen || p.Dataset.ClusterFreeze.Value == "frozen")
	}
	slices.SortFunc(st.FenceChecks, func(a, b api.FenceCheck) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return a.Level - b.Level
	})
	return st
}

// Journal implements api.OpsBackend.
func (d *Daemon) Journal(_ context.Context, f journal.Filter) ([]journal.Entry, error) {
	return d.ops.journal.Read(f)
}

// FollowJournal implements api.OpsBackend.
func (d *Daemon) FollowJournal(ctx context.Context) (<-chan journal.Entry, error) {
	ch, cancel := d.ops.journal.Subscribe()
	go func() {
		<-ctx.Done()
		cancel()
	}()
	return ch, nil
}

// NoteOperator implements api.OperatorNoter: an operator's action on a
// service, with its uid and outcome, goes to the journal.
func (d *Daemon) NoteOperator(ctx context.Context, svc, what string, err error) {
	uid, _ := api.CallerUID(ctx)
	msg := what + ": ok"
	if err != nil {
		msg = what + ": " + err.Error()
	}
	d.record(journal.Entry{Kind: "operator", Service: svc, Node: d.node.Local, UID: &uid, Message: msg})
}

var (
	_ api.OpsBackend    = (*Daemon)(nil)
	_ api.OperatorNoter = (*Daemon)(nil)
)

// avail of a local service, for the recorder.
func (d *Daemon) localAvail(name string) (status.Status, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.svcs[name]
	if s == nil {
		return status.Undef, time.Time{}
	}
	return s.status.Avail, s.monitorAt
}

// publishMaintenance publishes a maintenance change at once, when there
// are peers to tell.
func (d *Daemon) publishMaintenance() {
	if len(d.hbChans) > 0 {
		d.publish()
	}
}
