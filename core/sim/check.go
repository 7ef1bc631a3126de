package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/orchestrator"
)

// checker judges the ground truth (the resources' real states, the power,
// who heard what when) against the invariants, after every event.
type checker struct {
	w *world
	// lastUp[svc][node]: the last instant any resource of svc was up (or
	// on its way) on node; absent when never.
	lastUp map[string]map[string]time.Duration
	// heardAt[x][y]: when the newest envelope of y that x's daemon took
	// was sealed (across x's lives: what x learnt, it learnt).
	heardAt map[string]map[string]time.Duration
	// fencedAt[y]: the last confirmed fence of y (y was off then: what
	// ran on it before is gone).
	fencedAt map[string]time.Duration
	// liveness
	nextCheck time.Duration
	owner     map[string]string
	stableAt  time.Duration
	excluded  []string
}

func newChecker(w *world) *checker {
	c := &checker{w: w, lastUp: map[string]map[string]time.Duration{}, heardAt: map[string]map[string]time.Duration{},
		fencedAt: map[string]time.Duration{}, owner: map[string]string{}}
	for _, n := range w.nodes {
		c.heardAt[n.name] = map[string]time.Duration{}
	}
	for _, s := range w.cfg.services {
		c.lastUp[s.name] = map[string]time.Duration{}
	}
	return c
}

// afterEvent checks invariant 1: no service's resources up on two
// powered-on nodes at the same instant.
func (c *checker) afterEvent() {
	w := c.w
	for _, s := range w.cfg.services {
		var on []string
		for _, n := range w.nodes {
			if n.anyUp(s.name) {
				on = append(on, n.name)
				c.lastUp[s.name][n.name] = w.now
			}
		}
		if len(on) > 1 {
			var parts []string
			for _, name := range on {
				parts = append(parts, name+"["+w.node(name).resString(s.name)+"]")
			}
			w.violate("two-active", "service %s is up on %s at once", s.name, strings.Join(parts, " and "))
			return
		}
	}
}

// starting checks invariants 2 and 3 when node n begins to start svc.
func (c *checker) starting(n *machine, svc string) {
	w := c.w
	var conf *svcConf
	for i := range w.cfg.services {
		if w.cfg.services[i].name == svc {
			conf = &w.cfg.services[i]
		}
	}
	for _, p := range w.nodes {
		if p != n && p.anyUp(svc) {
			w.violate("start-beside", "%s starts %s while %s has it [%s]", n.name, svc, p.name, p.resString(svc))
			return
		}
	}
	if !conf.stonith {
		return
	}
	for _, p := range w.nodes {
		if p == n {
			continue
		}
		up, ran := c.lastUp[svc][p.name]
		if !ran {
			continue
		}
		heard, ok := c.heardAt[n.name][p.name]
		if ok && up < heard {
			continue // p's newest report n took shows it stopped
		}
		if f, fenced := c.fencedAt[p.name]; fenced && (!ok || f > heard) && up <= f {
			continue // fenced since last heard, and not run since
		}
		h := "never"
		if ok {
			h = "last sealed " + fmtDur(heard)
		}
		w.violate("unfenced-takeover", "%s starts %s, which %s ran at %s (%s heard %s), without a confirmed fence of %s since",
			n.name, svc, p.name, fmtDur(up), n.name, h, p.name)
		return
	}
}

func (c *checker) heard(n *machine, from string, sealed time.Duration) {
	if prev, ok := c.heardAt[n.name][from]; !ok || sealed > prev {
		c.heardAt[n.name][from] = sealed
	}
}

func (c *checker) fenceConfirmed(n *machine) { c.fencedAt[n.name] = c.w.now }

// excludedSvc reports whether the liveness check must skip svc: a stop
// failed somewhere (the resources left up there wait for an operator) or
// it failed on every node of it.
func (c *checker) excludedSvc(s svcConf) bool {
	failed := 0
	for _, name := range s.nodes {
		m := c.w.node(name)
		st := m.persist[s.name].State
		if d := m.daemon; d != nil {
			st = d.svc(s.name).persist.State // as read back
		}
		switch orchestrator.InstanceState(st) {
		case orchestrator.StopFailed:
			return true
		case orchestrator.StartFailed, orchestrator.Failed:
			failed++
		}
	}
	return failed == len(s.nodes)
}

// owners returns, per service, the one node running it whole with no
// resource of it anywhere else ("" otherwise).
func (c *checker) owners() map[string]string {
	out := map[string]string{}
	for _, s := range c.w.cfg.services {
		owner, other := "", false
		for _, n := range c.w.nodes {
			switch {
			case n.allUp(s.name) && owner == "":
				owner = n.name
			case n.anyUp(s.name):
				other = true
			}
		}
		if other {
			owner = ""
		}
		out[s.name] = owner
	}
	return out
}

// stableFor is how long the placement must hold for a run to end early.
const stableFor = 5 * time.Second

// converged reports, after the heal, whether every service has run on one
// node for stableFor.
func (c *checker) converged() bool {
	w := c.w
	if w.now < c.nextCheck {
		return false
	}
	c.nextCheck = w.now + 250*time.Millisecond
	own := c.owners()
	for _, s := range w.cfg.services {
		if c.excludedSvc(s) {
			continue
		}
		if own[s.name] == "" || own[s.name] != c.owner[s.name] {
			c.owner = own
			c.stableAt = w.now
			return false
		}
	}
	return w.now-c.stableAt >= stableFor
}

// finalLiveness checks invariant 4 at the end of a run: every service
// with orchestrate = ha runs on exactly one node.
func (c *checker) finalLiveness() {
	w := c.w
	own := c.owners()
	var bad []string
	for _, s := range w.cfg.services {
		if c.excludedSvc(s) {
			c.excluded = append(c.excluded, s.name)
			continue
		}
		if own[s.name] != "" {
			continue
		}
		var parts []string
		for _, n := range w.nodes {
			st := "off"
			if d := n.daemon; d != nil {
				st = string(d.state)
				if d.frozen {
					st += ",frozen"
				}
			}
			parts = append(parts, fmt.Sprintf("%s(%s %q [%s])", n.name, st, n.persist[s.name].State, n.resString(s.name)))
		}
		bad = append(bad, fmt.Sprintf("%s not running on exactly one node: %s", s.name, strings.Join(parts, " ")))
	}
	if len(bad) > 0 {
		w.violate("liveness", "%s after the heal at %s: %s", fmtDur(w.opts.Converge), fmtDur(w.healedAt), strings.Join(bad, "; "))
	}
}
