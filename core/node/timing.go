package node

import (
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
)

// Timings are the daemon's periods and windows, all derived from the
// heartbeats' intervals and timeouts (the defaults without heartbeats).
type Timings struct {
	// Publish is the shortest interval: datasets are sealed afresh that
	// often, so a replayed copy never passes for a live node.
	Publish time.Duration
	// Tick is how often peers are judged: a twentieth of the shortest
	// timeout, between 10 and 100 ms, so that it adds little to it.
	Tick time.Duration
	// Timeout is the shortest timeout: a daemon silent longer than this
	// may have been declared lost by its peers.
	Timeout time.Duration
	// ReadyWindow is how long a claim waits before its start: two and a
	// half of the longest interval, for one dataset to be written and
	// one to be read on the slowest heartbeat.
	ReadyWindow time.Duration
	// LongestTimeout is the longest timeout: the latest a peer can judge
	// this node lost.
	LongestTimeout time.Duration
}

// TimingsOf derives the timings from a node configuration's heartbeats.
func TimingsOf(hbs []cluster.HeartbeatConfig) Timings {
	pick := func(def time.Duration, of func(cluster.HeartbeatConfig) time.Duration, better func(a, b time.Duration) bool) time.Duration {
		for i, hb := range hbs {
			if i == 0 || better(of(hb), def) {
				def = of(hb)
			}
		}
		return def
	}
	less := func(a, b time.Duration) bool { return a < b }
	more := func(a, b time.Duration) bool { return a > b }
	interval := func(hb cluster.HeartbeatConfig) time.Duration { return hb.Interval }
	timeout := func(hb cluster.HeartbeatConfig) time.Duration { return hb.Timeout }
	t := Timings{
		Publish:        pick(cluster.DefaultInterval, interval, less),
		Timeout:        pick(cluster.DefaultTimeout, timeout, less),
		ReadyWindow:    pick(cluster.DefaultInterval, interval, more) * 5 / 2,
		LongestTimeout: pick(cluster.DefaultTimeout, timeout, more),
	}
	t.Tick = min(max(t.Timeout/20, 10*time.Millisecond), 100*time.Millisecond)
	return t
}

// HasQuorum is the quorum rule: two nodes without arbitrators always
// orchestrate (fencing settles a split); otherwise a side needs a strict
// majority of the votes, one per node and one per arbitrator (votes is how
// many arbitrators granted theirs to this side, unexpired).
func HasQuorum(nodes, arbitrators, alive, votes int) bool {
	if nodes < 3 && arbitrators == 0 {
		return true
	}
	return 2*(alive+votes) > nodes+arbitrators
}
