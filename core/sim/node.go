package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/core/arbitrator"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/node"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
)

// Model of a node: its power (the BMC's), the resources that exist on it
// while it is powered, its persisted state dir, the plugin processes, and
// the daemon process (which may crash, restart and freeze).

// rstate is a resource's real state on a node.
type rstate int

const (
	rDown rstate = iota
	rStarting
	rUp
	rStopping
)

func (s rstate) String() string { return [...]string{"down", "starting", "up", "stopping"}[s] }

// resource is one resource of one service on one node.
type resource struct {
	conf  resConf
	state rstate
	op    uint64 // the latest operation: an older one's effect is void
}

// persisted mirrors the daemon's persisted record (services.go).
type persisted struct {
	Expect cluster.Expectation
	State  string
}

type machine struct {
	w       *world
	name    string
	nc      *cluster.NodeConfig
	powered bool
	inc     int // power incarnation: a power-off voids what was under way
	daemon  *daemon
	boots   int
	// bootCounter is the state dir's boot file (daemon.nextBoot).
	bootCounter uint64
	// seen is the state dir's peers-seen.json (Daemon.seenLoop).
	seen    map[string]cluster.Seen
	persist map[string]persisted
	res     map[string][]*resource
	// wallOffset is the node's wall clock minus simulated time.
	wallOffset time.Duration
	// pluginDown: the plugin process is down (crashed) until then.
	pluginDown [2]time.Duration
	// pluginCrash: the last crash of each plugin process.
	pluginCrash [2]time.Duration
	// latest is the last envelope handed to the heartbeat plugins.
	latest []byte
	slot   diskSlot
	// diskBlocked: the node's disk I/O hangs until then.
	diskBlocked time.Duration
	// diskLag: extra latency of a slot read (a slow device).
	diskLag time.Duration
	// fenceFail: this node's BMC fails every fence until then.
	fenceFail time.Duration
}

func (w *world) build() {
	w.net = newNetwork(w)
	if w.cfg.arbitrator {
		w.arb = newArbiter(w)
	}
	for _, name := range w.cfg.nodes {
		nc := &cluster.NodeConfig{Cluster: "sim", Local: name, Nodes: w.cfg.nodes, ReadyPeriod: w.cfg.readyPeriod,
			Heartbeats: []cluster.HeartbeatConfig{
				{Name: hbNet, Type: "hb.net", Interval: w.cfg.netInterval, Timeout: w.cfg.netTimeout},
				{Name: hbDisk, Type: "hb.disk", Interval: w.cfg.dskInterval, Timeout: w.cfg.dskTimeout},
			}, SplitAction: "none"}
		if w.cfg.arbitrator {
			nc.Arbitrators = []string{"arbitrator:1"}
			if w.cfg.splitStop {
				nc.SplitAction = "stop"
			}
		}
		if w.cfg.stonith {
			nc.Stonith = map[string]cluster.StonithConfig{}
			for _, m := range w.cfg.nodes {
				if m != name {
					nc.Stonith[m] = cluster.StonithConfig{Node: m, Type: "stonith.sim"}
				}
			}
		}
		n := &machine{w: w, name: name, nc: nc, persist: map[string]persisted{}, res: map[string][]*resource{}}
		for _, s := range w.cfg.services {
			for _, rc := range s.resources {
				n.res[s.name] = append(n.res[s.name], &resource{conf: rc})
			}
		}
		w.nodes = append(w.nodes, n)
	}
}

func (w *world) node(name string) *machine {
	for _, n := range w.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// wall is the node's wall clock.
func (n *machine) wall() time.Time { return base.Add(n.w.now + n.wallOffset) }

// anyUp reports whether any resource of svc is (or may be) up here.
func (n *machine) anyUp(svc string) bool {
	if !n.powered {
		return false
	}
	for _, r := range n.res[svc] {
		if r.state != rDown {
			return true
		}
	}
	return false
}

// allUp reports whether every resource of svc is up here.
func (n *machine) allUp(svc string) bool {
	if !n.powered {
		return false
	}
	for _, r := range n.res[svc] {
		if r.state != rUp {
			return false
		}
	}
	return true
}

func (n *machine) resString(svc string) string {
	s := ""
	for i, r := range n.res[svc] {
		if i > 0 {
			s += ","
		}
		s += r.conf.rid + "=" + r.state.String()
	}
	return s
}

// powerOff cuts the node's power: its daemon, plugins and resources stop
// existing.
func (w *world) powerOff(n *machine, why string) {
	if !n.powered {
		return
	}
	w.logf(n.name, "POWER OFF (%s)", why)
	n.powered = false
	n.inc++
	n.daemon = nil
	n.latest = nil
	for _, rs := range n.res {
		for _, r := range rs {
			r.state, r.op = rDown, r.op+1
		}
	}
	if w.healed {
		// After the heal, a fenced node is powered on again (by the
		// operator, or a fence that reboots), so the run can converge.
		inc := n.inc
		w.after(5*time.Second, func() {
			if n.inc == inc {
				w.powerOn(n, "after the heal")
			}
		})
	}
}

// powerOn boots the node: its daemon starts after the boot, with its
// persisted state dir and nothing else.
func (w *world) powerOn(n *machine, why string) {
	if n.powered {
		return
	}
	w.logf(n.name, "POWER ON (%s)", why)
	n.powered = true
	n.inc++
	inc := n.inc
	w.after(w.between(time.Second, 4*time.Second), func() {
		if n.powered && n.inc == inc && n.daemon == nil {
			w.startDaemon(n, "boot")
		}
	})
}

// daemon is one life of a node's vigild: its memory.
type daemon struct {
	n       *machine
	life    int
	boot    uint64
	gen     uint64
	started time.Time
	view    *cluster.View
	state   cluster.NodeState
	svcs    []*svcRec
	fenced  map[string]bool
	fencing map[string]bool
	busy    map[string]bool
	since   map[string]time.Time
	warned  map[string]bool
	// rereading's memory (Daemon.orch's lastTick, rereadUntil, resumed)
	// and publish's pubAt.
	lastTick, rereadUntil, pubAt time.Time
	resumed                      bool
	// vote is the arbitrator's last grant (Daemon.arbitratorVotes).
	vote    arbitrator.Vote
	quorum  *bool // the last quorum noted (Daemon.noteQuorum)
	frozen  bool
	pending []func()
	// the disk heartbeat plugin's reader: the last slot generation read
	// per peer (absent until the first, baseline, read).
	diskSeen map[string]uint64
	diskLast map[string][]byte
}

// svcRec mirrors the daemon's service record (daemon.go).
type svcRec struct {
	conf       *svcConf
	status     status.Service
	statusAt   time.Time
	evalBegin  time.Time
	refreshing bool
	persist    persisted
}

func (d *daemon) alive() bool { return d.n.daemon == d }

// dafter runs fn on daemon d after delay: not at all if d died meanwhile,
// later if it is frozen then.
func (w *world) dafter(d *daemon, delay time.Duration, fn func()) {
	w.after(delay, func() { w.runOn(d, fn) })
}

func (w *world) runOn(d *daemon, fn func()) {
	if !d.alive() {
		return
	}
	if d.frozen {
		d.pending = append(d.pending, fn)
		return
	}
	fn()
}

func (w *world) startDaemon(n *machine, why string) {
	rebooted := why == "boot"
	n.boots++
	n.bootCounter = nextBoot(n.bootCounter, n.wall())
	d := &daemon{n: n, life: n.boots, boot: n.bootCounter, started: w.mono(),
		fenced: map[string]bool{}, fencing: map[string]bool{}, busy: map[string]bool{}, since: map[string]time.Time{},
		warned: map[string]bool{}}
	d.view = cluster.NewView(n.nc, w.mono())
	d.view.Restore(n.seen) // Daemon.restoreSeen
	d.state = initialState(n.nc)
	for i := range w.cfg.services {
		sc := &w.cfg.services[i]
		d.svcs = append(d.svcs, &svcRec{conf: sc, persist: loadPersisted(n.persist[sc.name], rebooted)})
	}
	n.daemon = d
	w.logf(n.name, "daemon start #%d (%s) boot %d, persisted %s", d.life, why, d.boot, d.persistString())
	// The loops of Daemon.Run, each first run after its own interval
	// (publishLoop publishes at once).
	tm := node.TimingsOf(n.nc.Heartbeats) // Daemon.publishInterval, tickInterval
	w.loop(d, 0, tm.Publish, d.publish)
	w.loop(d, tm.Tick, tm.Tick, d.tick)
	w.loop(d, 50*time.Millisecond, 50*time.Millisecond, d.orchestrate)
	w.loop(d, 100*time.Millisecond, 100*time.Millisecond, d.statusLoop)
	w.loop(d, time.Second, time.Second, func() { n.seen = d.view.Seen() }) // Daemon.seenLoop
	if w.arb != nil {
		w.loop(d, 0, tm.Publish, func() { w.askArbitrator(d) }) // Daemon.arbitratorLoop
	}
	w.startDiskPlugin(d)
}

func (d *daemon) persistString() string {
	s := ""
	for _, r := range d.svcs {
		s += fmt.Sprintf("%s=%q ", r.conf.name, d.n.persist[r.conf.name].State)
	}
	return s
}

// loop runs fn on d every interval (a time.Ticker drops ticks a frozen
// reader misses: so does this, one pending run at most).
func (w *world) loop(d *daemon, first, every time.Duration, fn func()) {
	var run func()
	run = func() {
		fn()
		w.dafter(d, every, run)
	}
	w.dafter(d, first, run)
}

// crash kills the daemon (SIGKILL): memory gone, resources untouched.
func (w *world) crashDaemon(n *machine, restartIn time.Duration) {
	if n.daemon == nil {
		return
	}
	w.logf(n.name, "DAEMON CRASH #%d (restart in %s)", n.daemon.life, restartIn)
	n.daemon = nil
	n.latest = nil
	inc := n.inc
	w.after(restartIn, func() {
		if n.powered && n.inc == inc && n.daemon == nil {
			w.startDaemon(n, "restart")
		}
	})
}

// freeze stops the daemon (SIGSTOP) for dur; its plugins run on.
func (w *world) freezeDaemon(n *machine, dur time.Duration) {
	d := n.daemon
	if d == nil || d.frozen {
		return
	}
	w.logf(n.name, "DAEMON FREEZE #%d for %s", d.life, dur)
	d.frozen = true
	w.after(dur, func() { w.resume(d) })
}

func (w *world) resume(d *daemon) {
	if !d.alive() || !d.frozen {
		return
	}
	w.logf(d.n.name, "daemon resumed #%d (%d things pending)", d.life, len(d.pending))
	d.frozen = false
	pending := d.pending
	d.pending = nil
	for _, fn := range pending {
		w.after(0, func() { w.runOn(d, fn) })
	}
}

// publish mirrors Daemon.publish: seal the dataset, hand it to every
// heartbeat.
func (d *daemon) publish() {
	w := d.n.w
	payload, err := json.Marshal(datasetOf(d))
	if err != nil {
		panic(err)
	}
	d.gen++
	raw, err := cluster.Seal(d.view.Key(), &cluster.Envelope{Cluster: d.n.nc.Cluster, Node: d.n.name, Boot: d.boot,
		Gen: d.gen, Time: d.n.wall().UnixNano(), Payload: payload})
	if err != nil {
		panic(err)
	}
	w.sealedAt[&raw[0]] = w.now
	d.pubAt = w.mono()
	d.n.latest = raw
	w.net.send(d.n, raw)
}

// beat mirrors Daemon.onHeartbeat for a beat.
func (d *daemon) beat(hb, from string, raw []byte) {
	w := d.n.w
	events, err := d.view.Beat(hb, from, raw, w.mono())
	if err != nil {
		w.logf(d.n.name, "dropped a beat from %s on %s: %v", from, hb, err)
		return
	}
	if len(events) == 0 {
		return
	}
	w.chk.heard(d.n, from, w.sealedAt[&raw[0]])
	for _, ev := range events {
		if ev.Kind == "found" {
			w.logf(d.n.name, "peer %s heard on %s", ev.Peer, hb)
		}
	}
	if w.tracing() {
		w.logf(d.n.name, "beat from %s on %s sealed at %s: %s", from, hb, fmtDur(w.sealedAt[&raw[0]]), peerString(d.view.Snapshot().Peers[from]))
	}
}

func peerString(p *cluster.Peer) string {
	if p == nil || p.Dataset == nil {
		return "-"
	}
	s := string(p.State)
	for _, name := range slices.Sorted(mapsKeys(p.Dataset.Services)) {
		inst := p.Dataset.Services[name]
		s += fmt.Sprintf(" %s=%s/%s", name, inst.State, inst.Status.Avail)
	}
	return s
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// tick mirrors Daemon.tickLoop.
func (d *daemon) tick() {
	w := d.n.w
	for _, ev := range d.view.Tick(w.mono()) {
		w.logf(d.n.name, "peer %s lost: every heartbeat is stale", ev.Peer)
		d.poke()
	}
	if updateJoining(d, w.mono()) {
		w.logf(d.n.name, "joined the cluster (state ready)")
		d.poke()
	}
}

// poke mirrors Daemon.poke: decide now rather than at the next tick.
func (d *daemon) poke() { d.n.w.dafter(d, 0, d.orchestrate) }

// orchestrate mirrors Daemon.orchestrateLoop's body.
func (d *daemon) orchestrate() {
	w := d.n.w
	forgetFences(d)
	if rereading(d, w.mono()) {
		return
	}
	v := orchestratorView(d, w.mono())
	v.Off = w.opts.Off
	d.noteQuorum(v)
	for _, a := range orchestrator.Decide(v) {
		d.execute(a)
	}
	d.resumed = false
}

// execute mirrors Daemon.execute.
func (d *daemon) execute(a orchestrator.Action) {
	w := d.n.w
	switch a.Kind {
	case orchestrator.Warn:
		if !d.warned[a.Service] {
			d.warned[a.Service] = true
			w.logf(d.n.name, "warn %s: %s", a.Service, a.Reason)
		}
	case orchestrator.Fence:
		d.fence(a.Node, a.Delay, a.Reason)
	case orchestrator.Claim:
		w.logf(d.n.name, "claim %s: %s", a.Service, a.Reason)
		d.setState(a.Service, orchestrator.Ready)
	case orchestrator.Release:
		w.logf(d.n.name, "release %s: %s", a.Service, a.Reason)
		d.setState(a.Service, orchestrator.Idle)
	case orchestrator.Start, orchestrator.Stop:
		if d.busy[a.Service] {
			return
		}
		d.busy[a.Service] = true
		w.logf(d.n.name, "orchestrated %s %s: %s", a.Kind, a.Service, a.Reason)
		d.runAction(a.Service, string(a.Kind), func() { delete(d.busy, a.Service) })
	}
}

func (d *daemon) svc(name string) *svcRec {
	for _, s := range d.svcs {
		if s.conf.name == name {
			return s
		}
	}
	return nil
}

// setState mirrors Daemon.setState: record, persist, publish at once.
func (d *daemon) setState(name string, st orchestrator.InstanceState) {
	s := d.svc(name)
	s.persist.State = string(st)
	d.since[name] = d.n.w.mono()
	d.n.persist[name] = s.persist
	d.publish()
}

// fence mirrors Daemon.fence: in the background; a target its BMC
// reports off is confirmed at once, else the fence waits its delay, then
// powers off, retrying with a capped backoff; it is called off (an
// attempt in flight too) as soon as the target is heard again.
func (d *daemon) fence(target string, delay time.Duration, reason string) {
	if d.fencing[target] || d.fenced[target] {
		return
	}
	d.fencing[target] = true
	w := d.n.w
	w.logf(d.n.name, "fence %s (delay %s): %s", target, delay, reason)
	due := func() bool {
		return node.FenceDue(d.quorum == nil || *d.quorum, d.quorum != nil, d.view.Snapshot().Peers[target])
	}
	stop := func(why string) {
		w.logf(d.n.name, "fence of %s called off: %s", target, why)
		delete(d.fencing, target)
	}
	confirmed := func(how string) {
		d.fenced[target] = true
		delete(d.fencing, target)
		w.logf(d.n.name, "fenced %s: %s", target, how)
		d.poke()
	}
	backoff := 500 * time.Millisecond
	var attempt func(n int)
	powerOff := func(n int) {
		w.bmcFence(d, target, func(err error) {
			switch {
			case !due():
				// The watcher cancelled the call: whatever the BMC did,
				// it is not a confirmation.
				stop("node heard again (the call was cancelled)")
			case err == nil:
				confirmed("power-off confirmed")
			default:
				w.logf(d.n.name, "fencing %s failed: %v (retry in %s)", target, err, backoff)
				w.dafter(d, backoff, func() { attempt(n + 1) })
				backoff = min(backoff*2, 5*time.Second)
			}
		})
	}
	attempt = func(n int) {
		if !due() {
			stop("node heard again")
			return
		}
		if n > 1 {
			powerOff(n)
			return
		}
		w.bmcStatus(d, target, func(off bool) {
			if off {
				confirmed("its BMC reports it off")
				return
			}
			if delay <= 0 {
				powerOff(n)
				return
			}
			w.dafter(d, delay, func() {
				if !due() {
					stop("node heard again during the fence delay")
					return
				}
				powerOff(n)
			})
		})
	}
	attempt(1)
}

// bmcStatus is the stonith plugin's power status of target: off is
// reliable (a BMC that fails answers nothing, which reads as not off).
func (w *world) bmcStatus(d *daemon, target string, done func(off bool)) {
	t := w.node(target)
	w.after(w.between(20*time.Millisecond, 500*time.Millisecond), func() {
		off := !t.powered && !(!w.healed && t.fenceFail > w.now)
		if off {
			w.chk.fenceConfirmed(t)
		}
		w.runOn(d, func() { done(off) })
	})
}

// bmcFence is the stonith plugin asking the target's BMC for a power-off
// and reading back its status: it takes time, may hang for a while, may
// fail (sometimes after the power-off happened).
func (w *world) bmcFence(d *daemon, target string, done func(error)) {
	t := w.node(target)
	dur := w.between(50*time.Millisecond, 1500*time.Millisecond)
	if !w.healed && w.chance(0.05) {
		dur = w.between(5*time.Second, 20*time.Second) // a BMC that hangs
	}
	from := d.n.name
	w.after(dur, func() {
		failing := !w.healed && (t.fenceFail > w.now || w.chance(w.cfg.pFenceFail))
		var err error
		if failing {
			err = fmt.Errorf("BMC of %s: no answer", target)
			if w.chance(0.3) {
				// The power-off went through, the answer did not.
				w.powerOff(t, "fence by "+from+", unconfirmed")
			}
		} else {
			w.powerOff(t, "fenced by "+from)
			w.chk.fenceConfirmed(t)
		}
		w.runOn(d, func() { done(err) })
	})
}

// runAction mirrors Daemon.runAction for start and stop: the state
// around the engine's action, then a fresh status, then the result.
func (d *daemon) runAction(name, verb string, done func()) {
	w := d.n.w
	s := d.svc(name)
	before := orchestrator.InstanceState(s.persist.State)
	finish := func(err error) {
		d.refreshNow(s, func() {
			var st orchestrator.InstanceState
			switch {
			case verb == "start" && err == nil:
				st = orchestrator.Started
			case verb == "start":
				st = orchestrator.StartFailed
			case err == nil && (before == orchestrator.StartFailed || before == orchestrator.Failed):
				st = before // stopping what a failure left keeps the failure
			case err == nil:
				st = orchestrator.Stopped
			default:
				st = orchestrator.StopFailed
			}
			d.setState(name, st)
			w.logf(d.n.name, "%s %s: %s (err %v) resources %s", verb, name, st, err, d.n.resString(name))
			done()
		})
	}
	if verb == "start" {
		d.setState(name, orchestrator.Starting)
		w.chk.starting(d.n, name)
		d.startFrom(s, 0, nil, finish)
	} else {
		d.setState(name, orchestrator.Stopping)
		d.stopFrom(s, len(s.conf.resources)-1, finish)
	}
}

// startFrom mirrors action.Engine.Start: resources in order; a failure
// stops what was started (the failed one too) in reverse, then fails.
func (d *daemon) startFrom(s *svcRec, i int, started []int, done func(error)) {
	if i == len(s.conf.resources) {
		done(nil)
		return
	}
	d.resOp(s, i, "start", func(err error) {
		if err == nil {
			d.startFrom(s, i+1, append(started, i), done)
			return
		}
		d.rollback(s, append(started, i), err, done)
	})
}

func (d *daemon) rollback(s *svcRec, todo []int, failed error, done func(error)) {
	if len(todo) == 0 {
		done(failed)
		return
	}
	last := todo[len(todo)-1]
	d.resOp(s, last, "stop", func(error) { d.rollback(s, todo[:len(todo)-1], failed, done) })
}

// stopFrom mirrors action.Engine.Stop: reverse order, stop at the first
// failure.
func (d *daemon) stopFrom(s *svcRec, i int, done func(error)) {
	if i < 0 {
		done(nil)
		return
	}
	d.resOp(s, i, "stop", func(err error) {
		if err != nil {
			done(err)
			return
		}
		d.stopFrom(s, i-1, done)
	})
}

// resOp is one plugin call on a resource: it takes time, may fail, and a
// plugin crash in flight fails the call whatever it did.
func (d *daemon) resOp(s *svcRec, i int, verb string, done func(error)) {
	w, n := d.n.w, d.n
	r := n.res[s.conf.name][i]
	p := r.conf.plugin
	if n.pluginDown[p] > w.now {
		w.dafter(d, time.Millisecond, func() { done(fmt.Errorf("%s %s: plugin %d is down", verb, r.conf.rid, p)) })
		return
	}
	begin, inc := w.now, n.inc
	r.op++
	op := r.op
	switch {
	case verb == "start" && r.state == rDown:
		r.state = rStarting
	case verb == "stop" && r.state == rUp:
		r.state = rStopping
	}
	was := r.state
	w.after(w.between(20*time.Millisecond, 400*time.Millisecond), func() {
		if n.inc != inc || r.op != op {
			return // powered off meanwhile, or a newer call superseded it
		}
		var err error
		pfail := w.cfg.pStartFail
		if verb == "stop" {
			pfail = w.cfg.pStopFail
		}
		ok := w.healed || !w.chance(pfail)
		if n.pluginCrash[p] > begin {
			err = fmt.Errorf("%s %s: plugin %d crashed during the call", verb, r.conf.rid, p)
			ok = w.chance(0.5)
		} else if !ok {
			err = fmt.Errorf("%s %s: failed", verb, r.conf.rid)
		}
		switch {
		case was == rDown || (was == rUp && verb == "start"):
			// Nothing to do (a stop of what is down, a start of what
			// is up): the state stays, whatever the call returns.
		case verb == "start" && ok:
			r.state = rUp
		case verb == "start" && err != nil && w.chance(0.3):
			r.state = rUp // half happened
		case verb == "start":
			r.state = rDown
		case ok:
			r.state = rDown
		default:
			r.state = rUp
		}
		w.runOn(d, func() { done(err) })
	})
}

// statusLoop mirrors Daemon.statusLoop/maybeRefresh (full evaluations:
// no monitored resources are simulated).
func (d *daemon) statusLoop() {
	w := d.n.w
	now := w.mono()
	for _, s := range d.svcs {
		if s.refreshing || now.Sub(s.statusAt) < w.cfg.statusEvery {
			continue
		}
		s.refreshing = true
		begin := now
		st := d.evaluate(s)
		w.dafter(d, w.between(5*time.Millisecond, 100*time.Millisecond), func() {
			s.refreshing = false
			if s.evalBegin.After(begin) {
				return
			}
			s.evalBegin = begin
			if st.Avail != s.status.Avail {
				w.logf(d.n.name, "status %s: %s", s.conf.name, st.Avail)
			}
			s.status = st
			s.statusAt = now
		})
	}
}

// refreshNow mirrors Daemon.refreshNow: evaluate at once, then publish.
func (d *daemon) refreshNow(s *svcRec, then func()) {
	w := d.n.w
	begin := w.mono()
	st := d.evaluate(s)
	w.dafter(d, w.between(5*time.Millisecond, 100*time.Millisecond), func() {
		if !s.evalBegin.After(begin) {
			s.status, s.statusAt, s.evalBegin = st, w.mono(), begin
		}
		d.publish()
		then()
	})
}

// evaluate reads every resource's status through its plugin (undef when
// the plugin is down) and merges them with the real status code.
func (d *daemon) evaluate(s *svcRec) status.Service {
	n := d.n
	var rs []status.Resource
	for _, r := range n.res[s.conf.name] {
		st := status.Down
		switch {
		case n.pluginDown[r.conf.plugin] > n.w.now:
			st = status.Undef
		case r.state == rUp || r.state == rStopping:
			st = status.Up
		}
		rs = append(rs, status.Resource{RID: r.conf.rid, Group: r.conf.group, Type: r.conf.group + ".sim", Status: st})
	}
	return status.Summarize(s.conf.name, rs)
}
