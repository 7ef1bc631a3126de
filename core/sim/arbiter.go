package sim

import (
	"time"

	"github.com/vigil-ha/vigil/core/arbitrator"
)

// arbiter models the arbitrator process: reachable from each node unless
// a partition put it on the other side, restartable (it then forgets its
// grants and grants nothing for a lease). Its rule is glue.go's copy of
// arbitrator.Server's.
type arbiter struct {
	w      *world
	lease  time.Duration
	quiet  time.Duration
	grants map[string]arbGrant
	// cut: nodes that cannot reach it.
	cut map[string]bool
}

type arbGrant struct {
	set   []string
	until time.Duration
}

func newArbiter(w *world) *arbiter {
	return &arbiter{w: w, lease: w.cfg.lease, quiet: w.cfg.lease, grants: map[string]arbGrant{}, cut: map[string]bool{}}
}

// askArbitrator mirrors Daemon.askArbitrator's exchange: the request
// carries this node's side; a grant counts from before it was sent, for a
// lease less the margin, for that side only. No answer changes nothing.
func (w *world) askArbitrator(d *daemon) {
	a, n := w.arb, d.n
	if a.cut[n.name] {
		return
	}
	set := aliveSet(d)
	sent := w.now
	w.after(w.between(200*time.Microsecond, 5*time.Millisecond), func() {
		if a.cut[n.name] {
			return
		}
		ok, why := a.grant(w.now, n.name, set)
		if w.opts.AnySideArbitrator {
			ok = true // the guard off: a vote for whoever asks
		}
		w.after(w.between(200*time.Microsecond, 5*time.Millisecond), func() {
			if a.cut[n.name] {
				return
			}
			w.runOn(d, func() {
				if ok {
					d.vote = arbitrator.Vote{Granted: true, Set: set, Until: sent + a.lease - arbitrator.Margin(a.lease)}
					if w.tracing() {
						w.logf(n.name, "arbitrator granted %v until %s", set, fmtDur(d.vote.Until))
					}
				} else if w.tracing() {
					w.logf(n.name, "arbitrator denied %v: %s", set, why)
				}
			})
		})
	})
}

// restartArbiter forgets every grant.
func (w *world) restartArbiter() {
	w.logf("-", "ARBITRATOR RESTART")
	clear(w.arb.grants)
	w.arb.quiet = w.now + w.arb.lease
}
