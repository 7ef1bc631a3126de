package daemon

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/node"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
)

// orch is the daemon's side of orchestration: it builds the view the pure
// orchestrator decides on and carries out its actions.
type orch struct {
	mu          sync.Mutex
	fenced      map[string]bool      // lost node -> power-off confirmed since it was lost
	fencing     map[string]bool      // fence in progress
	busy        map[string]bool      // service -> an orchestrated action runs
	since       map[string]time.Time // service -> when the local state was entered
	lastWarn    map[string]time.Time // a rate-limited occasion's last: a service's warning, a retry (due)
	restarts    map[string]*restarts // service/rid -> monitor's restart budget
	quorum      bool
	quorumKnown bool
	// resumed: this daemon went unheard past the heartbeat timeout and has
	// heard the cluster again: its next decisions stop what a peer took
	// over (see node.Unheard).
	resumed bool
	// rereadUntil: after such a gap, the view is read again until then
	// before anything is decided.
	rereadUntil time.Time
	lastTick    time.Time
}

func newOrch() *orch {
	return &orch{fenced: map[string]bool{}, fencing: map[string]bool{}, busy: map[string]bool{},
		since: map[string]time.Time{}, lastWarn: map[string]time.Time{}, restarts: map[string]*restarts{}}
}

// readyWindow is how long a claim waits before starting: long enough for
// a racing claim to be seen here over the slowest heartbeat, should it be
// the only one that carries (a disk slot takes up to one interval to be
// written and one to be read: the window is two and a half of the longest
// interval). It is waited only when another node could claim, so a
// failover from a lost and fenced node does not wait it.
func (d *Daemon) readyWindow() time.Duration {
	return node.TimingsOf(d.node.Heartbeats).ReadyWindow
}

func (d *Daemon) orchestrateLoop(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		case <-d.wake:
			now = time.Now() // a peer lost or back, a fence confirmed: act now
		}
		d.forgetFences()
		if d.rereading(now) {
			continue
		}
		v := d.orchestratorView(now)
		d.noteQuorum(ctx, v)
		for _, a := range orchestrator.Decide(v) {
			d.execute(ctx, a)
		}
		d.orch.mu.Lock()
		d.orch.resumed = false
		d.orch.mu.Unlock()
	}
}

// rereading reports whether the daemon must read the cluster again before
// it decides: after a gap longer than the heartbeat timeout (it was frozen
// or starved), its view of the peers is as old as the gap. The peers are
// judged afresh from now (a peer is not lost because this node slept), and
// nothing is decided for a timeout, long enough for every live peer to be
// heard; the first decisions after that stop what a peer took over.
func (d *Daemon) rereading(now time.Time) bool {
	timeout := d.heartbeatTimeout()
	d.orch.mu.Lock()
	defer d.orch.mu.Unlock()
	last := d.orch.lastTick
	d.orch.lastTick = now
	if node.Unheard(last, now, timeout) || node.Unheard(d.lastPublished(), now, timeout) {
		d.log.Warn("this daemon went unheard longer than the heartbeat timeout: reading the cluster again before acting",
			"gap", now.Sub(last).Round(time.Millisecond), "timeout", timeout)
		d.view.Resume(now)
		d.orch.rereadUntil = now.Add(timeout)
		d.orch.resumed = true
	}
	return now.Before(d.orch.rereadUntil)
}

// forgetFences drops the fence confirmation of nodes that came back: a
// node lost again must be fenced again.
func (d *Daemon) forgetFences() {
	snap := d.view.Snapshot()
	d.orch.mu.Lock()
	defer d.orch.mu.Unlock()
	for n := range d.orch.fenced {
		if !node.FenceStillDue(snap.Peers[n]) {
			delete(d.orch.fenced, n)
		}
	}
}

// orchestratorView turns the cluster view and the local services into the
// orchestrator's input (core/node builds it, as in the simulation).
func (d *Daemon) orchestratorView(now time.Time) orchestrator.View {
	snap := d.view.Snapshot()
	d.mu.Lock()
	localState := d.state
	d.mu.Unlock()
	in := node.ViewInput{Local: d.node.Local, Now: now, LocalState: localState, Peers: snap.Peers,
		Stonith: map[string]time.Duration{}, ReadyWindow: d.readyWindow(), PriorityFenceDelay: d.node.PriorityFenceDelay,
		Order: d.node.Nodes}
	for n, st := range d.node.Stonith {
		in.Stonith[n] = st.Delay
	}
	d.orch.mu.Lock()
	in.Fenced = maps.Clone(d.orch.fenced)
	in.Resumed = d.orch.resumed
	since := maps.Clone(d.orch.since)
	d.orch.mu.Unlock()
	in.Quorum = d.quorum(len(node.Side(d.node.Local, snap.Peers)))
	in.Frozen = d.frozen()
	in.SelfStopWait = node.SelfStopWait(len(d.node.Nodes), len(d.node.Arbitrators), node.TimingsOf(d.node.Heartbeats).LongestTimeout)

	d.mu.Lock()
	for name, s := range d.svcs {
		if s.conf == nil {
			continue
		}
		in.Services = append(in.Services, node.Service{Name: name, Keywords: s.conf.Keywords, State: s.persist.State,
			Expect: s.persist.Expect, Status: s.status, Evaluated: !s.statusAt.IsZero(), Since: since[name]})
	}
	d.mu.Unlock()
	return node.BuildView(in)
}

// setState records the local instance's state and publishes it at once:
// peers must see a claim or a start as soon as possible.
func (d *Daemon) setState(name string, st orchestrator.InstanceState) {
	d.mu.Lock()
	s := d.svcs[name]
	if s == nil {
		d.mu.Unlock()
		return
	}
	s.persist.State = string(st)
	p := s.persist
	d.mu.Unlock()
	d.orch.mu.Lock()
	d.orch.since[name] = time.Now()
	d.orch.mu.Unlock()
	if err := d.savePersisted(name, p); err != nil {
		d.log.Error("persist service state", "service", name, "error", err)
	}
	if len(d.hbChans) > 0 {
		d.publish()
	}
}

func (d *Daemon) execute(ctx context.Context, a orchestrator.Action) {
	log := d.log.Named("orchestrator").With("service", a.Service)
	switch a.Kind {
	case orchestrator.Warn:
		d.orch.mu.Lock()
		last := d.orch.lastWarn[a.Service]
		if time.Since(last) > 10*time.Second {
			d.orch.lastWarn[a.Service] = time.Now()
			d.orch.mu.Unlock()
			log.Error(a.Reason)
			d.emit(api.Event{Kind: "warn", Service: a.Service, Message: a.Reason})
			return
		}
		d.orch.mu.Unlock()
	case orchestrator.Fence:
		d.fence(ctx, a.Node, a.Delay)
	case orchestrator.Claim:
		log.Info("claiming the start", "reason", a.Reason)
		d.flightClaim(a.Service, a.Reason)
		d.warnUnfenced(a)
		d.setState(a.Service, orchestrator.Ready)
	case orchestrator.Release:
		log.Info("releasing the claim", "reason", a.Reason)
		d.setState(a.Service, orchestrator.Idle)
	case orchestrator.Start, orchestrator.Stop:
		d.orch.mu.Lock()
		if d.orch.busy[a.Service] {
			d.orch.mu.Unlock()
			return
		}
		d.orch.busy[a.Service] = true
		d.orch.mu.Unlock()
		go func() {
			defer func() {
				d.orch.mu.Lock()
				delete(d.orch.busy, a.Service)
				d.orch.mu.Unlock()
			}()
			log.Info("orchestrated "+string(a.Kind), "reason", a.Reason)
			d.runAction(ctx, a.Service, string(a.Kind), nil, func(string) {})
		}()
	}
}

// warnUnfenced says, in the log and as an event, when a takeover goes on
// without fencing because none is configured (as the seed allows).
func (d *Daemon) warnUnfenced(a orchestrator.Action) {
	if !strings.HasPrefix(a.Reason, "taking over from lost ") {
		return
	}
	for _, n := range strings.Split(strings.TrimPrefix(a.Reason, "taking over from lost "), ", ") {
		if _, ok := d.node.Stonith[n]; !ok {
			msg := "no STONITH configured for " + n + ": taking over without fencing it"
			d.log.Warn(msg, "service", a.Service)
			d.emit(api.Event{Kind: "warn", Service: a.Service, Node: n, Message: msg})
		}
	}
}

// fence powers a lost (or never heard) node off through its
// [stonith#node] method, in the background, retrying with a capped backoff
// until it is confirmed or the node is heard again. No takeover happens
// before the confirmation. A target its BMC already reports off is
// confirmed at once; otherwise the fence waits its delay first (the side
// running the services wins a split), and the power-off is sent only while
// the target is still lost: an attempt in flight is cancelled as soon as
// the target is heard again.
func (d *Daemon) fence(ctx context.Context, target string, delay time.Duration) {
	d.orch.mu.Lock()
	if d.orch.fencing[target] || d.orch.fenced[target] {
		d.orch.mu.Unlock()
		return
	}
	d.orch.fencing[target] = true
	d.orch.mu.Unlock()
	cfg := d.node.Stonith[target]
	log := d.log.Named("stonith").With("target", target, "type", cfg.Type)
	// Due while the target is still lost (or never heard) and this side
	// still has quorum: a node that became the minority fences nothing.
	due := func() bool {
		d.orch.mu.Lock()
		q, known := d.orch.quorum, d.orch.quorumKnown
		d.orch.mu.Unlock()
		return node.FenceDue(q, known, d.view.Snapshot().Peers[target])
	}
	go func() {
		defer func() {
			d.orch.mu.Lock()
			delete(d.orch.fencing, target)
			d.orch.mu.Unlock()
		}()
		// Every call is cancelled once the target is heard again.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			t := time.NewTicker(d.tickInterval())
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if !due() {
						cancel()
						return
					}
				}
			}
		}()
		confirmed := func(begin time.Time, lines []string) {
			d.orch.mu.Lock()
			d.orch.fenced[target] = true
			d.orch.mu.Unlock()
			d.poke()
			log.Warn("node fenced: power-off confirmed", "took", time.Since(begin).Round(time.Millisecond), "log", strings.Join(lines, "; "))
			d.metrics.fence(true)
			d.emit(api.Event{Kind: "fence", Node: target, Message: "fenced"})
		}
		backoff := 500 * time.Millisecond
		d.flightFenceAsked(target)
		for attempt := 1; ; attempt++ {
			if d.operatorConfirmed(target) {
				return
			}
			if !due() {
				log.Info("node is heard again: fencing called off")
				return
			}
			begin := time.Now()
			fencer, err := d.host.Stonith(ctx, cfg.Type)
			if err == nil && attempt == 1 && delay > 0 {
				// Off already (powered off, dead PSU): no delay to wait,
				// the fence below confirms it at once. The delay counts
				// from the fence's start, the check included: a BMC
				// the plugin retries for a while does not add its
				// wait to the delay.
				pctx, pcancel := context.WithTimeout(ctx, min(delay, 5*time.Second))
				power, perr := fencer.PowerStatus(pctx, target, cfg.Keywords)
				pcancel()
				if perr != nil || power != "off" {
					left := time.Until(begin.Add(delay))
					log.Info("waiting the fence delay before the power-off", "delay", delay, "left", left.Round(time.Millisecond), "power", power)
					select {
					case <-ctx.Done():
						log.Info("node is heard again during the fence delay: fencing called off")
						return
					case <-time.After(max(left, 0)):
					}
					if !due() {
						log.Info("node is heard again: fencing called off")
						return
					}
				}
			}
			var lines []string
			if err == nil {
				lines, err = d.fenceLevels(ctx, target)
			}
			if err == nil {
				confirmed(begin, lines)
				return
			}
			if ctx.Err() != nil {
				log.Info("fencing called off", "reason", "node heard again or daemon stopping", "error", err)
				return
			}
			d.metrics.fence(false)
			log.Error("fencing failed: no takeover until it succeeds", "attempt", attempt, "error", err, "retry_in", backoff)
			d.emit(api.Event{Kind: "fence", Node: target, Message: "failed: " + err.Error()})
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			// Capped at a second: a fence call retries its own short
			// attempts for its whole budget (stonith-ipmi's timeout),
			// so a long pause here would only be time a BMC that came
			// back waits for nothing.
			backoff = min(backoff*2, time.Second)
		}
	}()
}

// runAction runs start or stop on a local service under its lock, keeping
// the instance state and the persisted record. It is what the API's start
// and stop and the orchestrator's actions share.
func (d *Daemon) runAction(ctx context.Context, name, verb string, rids []string, progress func(string)) error {
	s, err := d.lookup(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	conf, before := s.conf, orchestrator.InstanceState(s.persist.State)
	d.mu.Unlock()
	unlock, err := d.engine.Lock(ctx, name, verb, true)
	if err != nil {
		return err
	}
	defer unlock()
	begin := time.Now()
	opts := action.Options{RIDs: rids, Progress: func(st action.Step) {
		d.flightStep(st)
		if line := action.FormatStep(st); line != "" {
			progress(line)
		}
	}}
	if verb == "start" {
		d.setState(name, orchestrator.Starting)
		err = d.engine.Start(ctx, conf, opts)
	} else {
		d.setState(name, orchestrator.Stopping)
		err = d.engine.Stop(ctx, conf, opts)
	}
	// The status first: a "started" instance must never be seen with the
	// status from before the start, or it would read as down and idle.
	d.refreshNow(ctx, name)
	switch {
	case verb == "start" && err == nil:
		d.setState(name, orchestrator.Started)
		d.clearReachedTarget(name)
	case verb == "start":
		d.noteFailure(name, err.Error())
		d.setState(name, orchestrator.StartFailed)
	case err == nil && (before == orchestrator.StartFailed || before == orchestrator.Failed):
		// Stopping what a failure left keeps the failure: the node stays
		// out of the candidates until an operator starts it again.
		d.setState(name, before)
	case err == nil:
		d.setState(name, orchestrator.Stopped)
	default:
		d.noteFailure(name, err.Error())
		d.setState(name, orchestrator.StopFailed)
	}
	result := "ok"
	if err != nil {
		result = err.Error()
		d.log.Error("action failed", "service", name, "action", verb, "error", err)
	} else {
		d.log.Info("action done", "service", name, "action", verb)
	}
	d.metrics.action(verb, err == nil, time.Since(begin))
	d.mu.Lock()
	s.persist.LastAction, s.persist.LastResult, s.persist.LastAt = verb, result, time.Now()
	p := s.persist
	d.mu.Unlock()
	if perr := d.savePersisted(name, p); perr != nil {
		d.log.Error("persist service state", "service", name, "error", perr)
	}
	d.emit(api.Event{Kind: "action", Service: name, Node: d.node.Local, Message: verb + ": " + result})
	return err
}

// refreshNow evaluates a service at once (after an action) and publishes.
func (d *Daemon) refreshNow(ctx context.Context, name string) {
	d.mu.Lock()
	s := d.svcs[name]
	if s == nil || s.conf == nil {
		d.mu.Unlock()
		return
	}
	conf, prev := s.conf, s.status
	d.mu.Unlock()
	begin := time.Now()
	st := d.engine.Refresh(ctx, conf, &prev, nil)
	d.mu.Lock()
	if s.conf == conf && !s.evalBegin.After(begin) {
		s.status = d.finishStatusLocked(s, st)
		s.statusAt, s.evalBegin = time.Now(), begin
	}
	d.mu.Unlock()
	if len(d.hbChans) > 0 {
		d.publish()
	}
}

// adoptExpectations takes from a peer's dataset the operator expectations
// newer than ours.
func (d *Daemon) adoptExpectations(peer string) {
	p := d.view.Snapshot().Peers[peer]
	if p == nil || p.Dataset == nil {
		return
	}
	for name, inst := range p.Dataset.Services {
		d.mu.Lock()
		s := d.svcs[name]
		if s == nil || !inst.Expect.Newer(s.persist.Expect) {
			d.mu.Unlock()
			continue
		}
		d.mu.Unlock()
		d.log.Info("operator expectation from peer", "service", name, "peer", peer, "expect", inst.Expect.Value, "target", inst.Expect.Target)
		if err := d.setExpect(name, inst.Expect); err != nil {
			d.log.Error("persist service state", "service", name, "error", err)
		}
	}
}

// quorum reports whether this node's side of a partition may orchestrate:
// with three nodes or more, or arbitrators, it needs a strict majority of
// the votes (each node one, each arbitrator one while the vote it granted
// this side is unexpired, judged now).
func (d *Daemon) quorum(alive int) bool {
	return node.HasQuorum(len(d.node.Nodes), len(d.node.Arbitrators), alive, d.arbitratorVotesNow())
}

// arbitratorLoop asks each arbitrator for its vote every publish interval,
// with the set of nodes this node sees, and keeps the grants.
func (d *Daemon) arbitratorLoop(ctx context.Context) {
	if len(d.node.Arbitrators) == 0 {
		return
	}
	d.askArbitrators(ctx, d.publishInterval())
}

// noteQuorum logs quorum changes and, with split_action = stop, stops the
// services running here when quorum is lost.
func (d *Daemon) noteQuorum(ctx context.Context, v orchestrator.View) {
	d.orch.mu.Lock()
	changed := d.orch.quorumKnown && d.orch.quorum != v.Quorum
	first := !d.orch.quorumKnown
	d.orch.quorum, d.orch.quorumKnown = v.Quorum, true
	d.orch.mu.Unlock()
	if changed || (first && !v.Quorum) {
		if v.Quorum {
			d.log.Warn("quorum regained: orchestrating again")
		} else {
			d.log.Error("quorum lost: this side of the partition orchestrates nothing", "split_action", d.node.SplitAction)
		}
		d.emit(api.Event{Kind: "quorum", Node: d.node.Local, Message: fmt.Sprint(v.Quorum)})
	}
	if v.Quorum || d.node.SplitAction != "stop" {
		return
	}
	for _, s := range v.Services {
		inst := s.Instances[v.Local]
		if inst.Avail != status.Up && inst.Avail != status.Warn && inst.Avail != status.Undef && !inst.Unreadable &&
			inst.State != orchestrator.Starting && inst.State != orchestrator.Interrupted {
			continue
		}
		// A stop that failed is tried again, but not at every tick.
		if inst.State == orchestrator.StopFailed && !d.orch.due("splitstop/"+s.Name, splitStopRetry, v.Now) {
			continue
		}
		d.execute(ctx, orchestrator.Action{Kind: orchestrator.Stop, Service: s.Name, Reason: "quorum lost (split_action = stop)"})
	}
}

// splitStopRetry is how often a failed stop of split_action = stop is
// tried again.
const splitStopRetry = 5 * time.Second

// due reports whether key's last occasion is every or more before now
// (the decision's time, not the clock's), and if so records now as its
// last.
func (o *orch) due(key string, every time.Duration, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if last, ok := o.lastWarn[key]; ok && now.Sub(last) < every {
		return false
	}
	o.lastWarn[key] = now
	return true
}

// poke makes the orchestrator decide at once instead of at its next tick.
func (d *Daemon) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// clearReachedTarget drops an operator's target (switch, takeover,
// giveback) once the service runs there: left in force, it would move the
// service back there after a later failover, an automatic failback.
func (d *Daemon) clearReachedTarget(name string) {
	d.mu.Lock()
	s := d.svcs[name]
	if s == nil || s.persist.Expect.Target != d.node.Local {
		d.mu.Unlock()
		return
	}
	e := s.persist.Expect
	d.mu.Unlock()
	e.Target, e.Version, e.By = "", e.Version+1, d.node.Local
	if err := d.setExpect(name, e); err != nil {
		d.log.Error("persist service state", "service", name, "error", err)
	}
}
