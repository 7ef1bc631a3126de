package sim

// The daemon's glue between the cluster view and the orchestrator that is
// not exported (core/daemon as of commit 1b4796b): each function names the
// one it mirrors, and calls core/node for every decision core/node holds
// (the view, the read-back of a persisted state, whether a daemon went
// unheard, whether a fence is still due). What is left here is plumbing;
// when core/node takes it, the copy goes.

import (
	"maps"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/core/arbitrator"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/node"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
)

// initialState mirrors Daemon.loadNodeConfig: a daemon of a cluster of
// several nodes starts joining.
func initialState(nc *cluster.NodeConfig) cluster.NodeState {
	if len(nc.Nodes) > 1 {
		return cluster.Joining
	}
	return cluster.Ready
}

// nextBoot mirrors daemon.nextBoot: the boot number only grows, whatever
// the wall clock does.
func nextBoot(last uint64, wall time.Time) uint64 { return max(last+1, uint64(wall.Unix())) }

// loadPersisted mirrors Daemon.loadService's reading back of a persisted
// state (node.Recover).
func loadPersisted(p persisted, rebooted bool) persisted {
	p.State = node.Recover(p.State, rebooted)
	return p
}

// orchestratorView mirrors Daemon.orchestratorView: core/node builds the
// view from what the daemon knows.
func orchestratorView(d *daemon, now time.Time) orchestrator.View {
	nc := d.n.nc
	snap := d.view.Snapshot()
	in := node.ViewInput{Local: nc.Local, Now: now, LocalState: d.state, Peers: snap.Peers,
		Stonith: map[string]time.Duration{}, ReadyWindow: node.TimingsOf(nc.Heartbeats).ReadyWindow, PriorityFenceDelay: nc.PriorityFenceDelay,
		Order: nc.Nodes}
	for n, st := range nc.Stonith {
		in.Stonith[n] = st.Delay
	}
	in.Fenced = maps.Clone(d.fenced)
	in.Resumed = d.resumed
	in.Quorum = node.HasQuorum(len(nc.Nodes), len(nc.Arbitrators), len(node.Side(nc.Local, snap.Peers)), arbitratorVotesNow(d))
	in.SelfStopWait = node.SelfStopWait(len(nc.Nodes), len(nc.Arbitrators), node.TimingsOf(nc.Heartbeats).LongestTimeout)
	for _, s := range d.svcs {
		in.Services = append(in.Services, node.Service{Name: s.conf.name, Keywords: s.conf.keywords, State: s.persist.State,
			Expect: s.persist.Expect, Status: s.status, Evaluated: !s.statusAt.IsZero(), Since: d.since[s.conf.name]})
	}
	return node.BuildView(in)
}

// forgetFences mirrors Daemon.forgetFences: a node heard again must be
// fenced again when lost again.
func forgetFences(d *daemon) {
	if len(d.fenced) == 0 {
		return // (the simulation's shortcut: no snapshot for nothing)
	}
	snap := d.view.Snapshot()
	for n := range d.fenced {
		if !node.FenceStillDue(snap.Peers[n]) {
			delete(d.fenced, n)
		}
	}
}

// rereading mirrors Daemon.rereading: after a gap longer than the
// heartbeat timeout the view is judged afresh and nothing is decided for
// a timeout; the first decisions after it run with Resumed.
func rereading(d *daemon, now time.Time) bool {
	timeout := node.TimingsOf(d.n.nc.Heartbeats).Timeout // Daemon.heartbeatTimeout
	last := d.lastTick
	d.lastTick = now
	if node.Unheard(last, now, timeout) || node.Unheard(d.pubAt, now, timeout) {
		d.n.w.logf(d.n.name, "unheard for longer than the heartbeat timeout: reading the cluster again before acting")
		d.view.Resume(now)
		d.rereadUntil = now.Add(timeout)
		d.resumed = true
	}
	return now.Before(d.rereadUntil)
}

// updateJoining mirrors Daemon.updateJoining; it reports whether the
// daemon just became ready.
func updateJoining(d *daemon, now time.Time) bool {
	if d.state != cluster.Joining {
		return false
	}
	ready := d.view.Heard()
	if !ready && now.Sub(d.started) >= d.n.nc.ReadyPeriod {
		ready = true
	}
	if ready {
		d.state = cluster.Ready
	}
	return ready
}

// datasetOf mirrors Daemon.dataset and instanceLocked.
func datasetOf(d *daemon) *cluster.Dataset {
	ds := &cluster.Dataset{Node: d.n.name, State: d.state, Services: map[string]*cluster.ServiceInstance{}, Sees: node.Sees(d.view.Snapshot().Peers)}
	for _, s := range d.svcs {
		var updated time.Time
		if !s.statusAt.IsZero() {
			// The daemon's statusAt is its wall clock's; peers only
			// ask whether it is set.
			updated = s.statusAt.Add(d.n.wallOffset)
		}
		ds.Services[s.conf.name] = &cluster.ServiceInstance{Status: s.status, Frozen: s.persist.Expect.Value == "frozen",
			Updated: updated, State: s.persist.State, Expect: s.persist.Expect, Nodes: slices.Clone(s.conf.nodes)}
	}
	return ds
}

// aliveSet mirrors Daemon.aliveSet: node.Side, normalized.
func aliveSet(d *daemon) []string {
	return arbitrator.NormalizeSet(node.Side(d.n.name, d.view.Snapshot().Peers))
}

// arbitratorVotesNow mirrors Daemon.arbitratorVotesNow (one arbitrator;
// the vote's clock is the simulated monotonic one).
func arbitratorVotesNow(d *daemon) int {
	if len(d.n.nc.Arbitrators) == 0 || !d.vote.Valid(d.n.w.now, aliveSet(d)) {
		return 0
	}
	return 1
}

// grant mirrors arbitrator.Server's decide and grant (unexported there):
// it returns whether the vote is granted to node for set at now.
func (a *arbiter) grant(now time.Duration, node string, set []string) (bool, string) {
	switch {
	case !slices.Contains(set, node):
		return false, "set does not include the requester"
	case now < a.quiet:
		return false, "arbitrator started less than a lease ago"
	}
	for holder, g := range a.grants {
		if now >= g.until {
			delete(a.grants, holder)
		}
	}
	for _, holder := range slices.Sorted(maps.Keys(a.grants)) {
		g := a.grants[holder]
		if !slices.Contains(set, holder) || !slices.Equal(g.set, set) {
			return false, "held by " + holder
		}
	}
	a.grants[node] = arbGrant{set: set, until: now + a.lease}
	return true, ""
}

// noteQuorum mirrors Daemon.noteQuorum: with split_action = stop, a side
// without quorum stops what runs there.
func (d *daemon) noteQuorum(v orchestrator.View) {
	w := d.n.w
	if d.quorum == nil || *d.quorum != v.Quorum {
		if d.quorum != nil || !v.Quorum {
			w.logf(d.n.name, "quorum %v", v.Quorum)
		}
		q := v.Quorum
		d.quorum = &q
	}
	if v.Quorum || d.n.nc.SplitAction != "stop" {
		return
	}
	for _, s := range v.Services {
		inst := s.Instances[v.Local]
		if inst.Avail != status.Up && inst.Avail != status.Warn && inst.State != orchestrator.Starting {
			continue
		}
		d.execute(orchestrator.Action{Kind: orchestrator.Stop, Service: s.Name, Reason: "quorum lost (split_action = stop)"})
	}
}
