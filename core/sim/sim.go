// Package sim is a deterministic simulation of a Vigil cluster, in the
// manner of TigerBeetle's simulator: N nodes, each running Vigil's own
// decision code (the real cluster.View fed with envelopes sealed by the
// real cluster.Seal, the real orchestrator.Decide, and the daemon's glue
// that turns decisions into fences, starts and stops), over a simulated
// clock, network, heartbeat disk, BMCs and resources. Faults are drawn
// from a seed; after every event the checker looks at the ground truth
// (which resources are up on which powered-on node, who fenced whom) and
// reports the first violation of the safety invariants, and at the end
// whether every service converged once the faults stopped.
//
// Everything runs on one goroutine over a priority queue of timed events,
// and every random choice comes from one PCG generator seeded by the seed:
// a seed replays exactly. The package owns the models (links, disk slots,
// BMCs, resources, processes); it must not grow decision logic of its own
// beyond the glue (glue.go) that mirrors the daemon until core/node holds
// it. No goroutine, clock read, file or socket.
package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/orchestrator"
)

// Options select what a run simulates. The zero value draws the cluster's
// shape from the seed.
type Options struct {
	// Off switches orchestrator guards off, to show each one is needed.
	Off orchestrator.Disabled
	// Nodes forces the node count (2 or 3); 0 draws it.
	Nodes int
	// Services forces the service count (1 or 2); 0 draws it.
	Services int
	// Arbitrator forces an arbitrator in the cluster.
	Arbitrator bool
	// AnySideArbitrator switches the arbitrator's exclusive vote off: it
	// grants every request, as a reachability check would.
	AnySideArbitrator bool
	// NoStonith forces a cluster without fencing (and only the faults a
	// cluster without fencing can survive); otherwise drawn.
	NoStonith bool
	// Trace keeps every event's line (for a replay); without it only the
	// last lines are kept.
	Trace bool
	// Beats adds a line per heartbeat taken (with Trace).
	Beats bool
	// FaultTime is how long faults are injected (default 30 s simulated).
	FaultTime time.Duration
	// Converge is the liveness bound after the heal (default 60 s).
	Converge time.Duration
}

// Violation is a broken invariant.
type Violation struct {
	Kind string // "two-active", "start-beside", "unfenced-takeover", "liveness"
	At   time.Duration
	Msg  string
}

func (v *Violation) Error() string { return fmt.Sprintf("%s at %s: %s", v.Kind, fmtDur(v.At), v.Msg) }

// Result is what one seed did.
type Result struct {
	Seed      uint64
	Shape     string // the drawn configuration
	Violation *Violation
	// Trace holds the event lines (all with Options.Trace, else the last
	// traceTail).
	Trace  []string
	Events int
	// Excluded lists services the liveness check skipped (a failure state
	// everywhere, which by design waits for an operator).
	Excluded []string
}

const traceTail = 400

// event is one timed thing to do.
type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// base is the simulated epoch: every clock is base plus simulated time.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// world is one simulated cluster.
type world struct {
	seed  uint64
	opts  Options
	rng   *rand.Rand
	now   time.Duration
	q     queue
	seq   uint64
	cfg   shape
	nodes []*machine
	net   *network
	arb   *arbiter
	chk   *checker
	trace []string
	tail  int // ring start when not tracing all
	nev   int
	// healed: faults have stopped and everything is back.
	healed   bool
	healedAt time.Duration
	violated *Violation
	// sealedAt maps an envelope (its first byte's address) to when it was
	// sealed.
	sealedAt map[*byte]time.Duration
}

// Run simulates one seed.
func Run(seed uint64, opts Options) Result {
	if opts.FaultTime == 0 {
		opts.FaultTime = 30 * time.Second
	}
	if opts.Converge == 0 {
		opts.Converge = 60 * time.Second
	}
	w := &world{seed: seed, opts: opts, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		sealedAt: map[*byte]time.Duration{}}
	w.cfg = drawShape(w.rng, opts)
	w.build()
	w.chk = newChecker(w)
	w.logf("-", "shape: %s", w.cfg)
	for _, n := range w.nodes {
		n := n
		w.at(w.between(0, 500*time.Millisecond), func() { w.powerOn(n, "initial boot") })
	}
	w.scheduleFaults()
	w.at(opts.FaultTime, w.heal)
	end := opts.FaultTime + opts.Converge
	for w.q.Len() > 0 && w.violated == nil {
		e := heap.Pop(&w.q).(*event)
		if e.at > end {
			break
		}
		w.now = e.at
		w.nev++
		e.fn()
		if w.violated == nil {
			w.chk.afterEvent()
		}
		if w.healed && w.violated == nil && w.chk.converged() {
			break
		}
	}
	if w.violated == nil {
		w.chk.finalLiveness()
	}
	res := Result{Seed: seed, Shape: w.cfg.String(), Violation: w.violated, Events: w.nev, Excluded: w.chk.excluded}
	if opts.Trace {
		res.Trace = w.trace
	} else {
		res.Trace = append(append([]string(nil), w.trace[w.tail:]...), w.trace[:w.tail]...)
	}
	return res
}

// at runs fn at simulated time t.
func (w *world) at(t time.Duration, fn func()) {
	if t < w.now {
		t = w.now
	}
	w.seq++
	heap.Push(&w.q, &event{at: t, seq: w.seq, fn: fn})
}

// after runs fn after d.
func (w *world) after(d time.Duration, fn func()) { w.at(w.now+d, fn) }

// logf adds a trace line.
func (w *world) logf(who, format string, args ...any) {
	line := fmt.Sprintf("%10s %-3s ", fmtDur(w.now), who) + fmt.Sprintf(format, args...)
	if w.opts.Trace || len(w.trace) < traceTail {
		w.trace = append(w.trace, line)
		return
	}
	w.trace[w.tail] = line
	w.tail = (w.tail + 1) % traceTail
}

// tracing reports whether detailed (per beat) lines are worth formatting.
func (w *world) tracing() bool { return w.opts.Trace && w.opts.Beats }

func (w *world) violate(kind, format string, args ...any) {
	if w.violated != nil {
		return
	}
	w.violated = &Violation{Kind: kind, At: w.now, Msg: fmt.Sprintf(format, args...)}
	w.logf("!!", "VIOLATION %s: %s", kind, w.violated.Msg)
}

// mono is the monotonic clock every daemon reads (differences only).
func (w *world) mono() time.Time { return base.Add(w.now) }

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%d.%03ds", d/time.Second, (d%time.Second)/time.Millisecond)
}

// between draws a duration in [lo, hi).
func (w *world) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(w.rng.Int64N(int64(hi-lo)))
}

func (w *world) chance(p float64) bool { return w.rng.Float64() < p }

// shape is the cluster a seed simulates.
type shape struct {
	nodes       []string
	services    []svcConf
	stonith     bool
	arbitrator  bool
	lease       time.Duration // the arbitrator's
	splitStop   bool          // split_action = stop
	netInterval time.Duration
	netTimeout  time.Duration
	dskInterval time.Duration
	dskTimeout  time.Duration
	readyPeriod time.Duration
	statusEvery time.Duration
	pStartFail  float64
	pStopFail   float64
	pFenceFail  float64
	faultEvery  time.Duration
}

// svcConf is one service's config.
type svcConf struct {
	name string
	// keywords are the DEFAULT section's, as core/node reads them.
	keywords  map[string]string
	nodes     []string
	stonith   bool
	resources []resConf
}

type resConf struct {
	rid    string
	group  string
	plugin int // which plugin process serves it
}

func (s shape) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodes=%s stonith=%v arbitrator=%v(lease %s, split_action stop %v) hb=net(%s/%s),disk(%s/%s) ready_period=%s status=%s",
		strings.Join(s.nodes, ","), s.stonith, s.arbitrator, s.lease, s.splitStop, s.netInterval, s.netTimeout, s.dskInterval, s.dskTimeout,
		s.readyPeriod, s.statusEvery)
	for _, sv := range s.services {
		var rs []string
		for _, r := range sv.resources {
			rs = append(rs, fmt.Sprintf("%s(p%d)", r.rid, r.plugin))
		}
		fmt.Fprintf(&b, " svc %s[nodes=%s stonith=%v %s]", sv.name, strings.Join(sv.nodes, ","), sv.stonith, strings.Join(rs, ","))
	}
	fmt.Fprintf(&b, " p(start fail)=%.2f p(stop fail)=%.2f p(fence fail)=%.2f fault every %s", s.pStartFail, s.pStopFail, s.pFenceFail, s.faultEvery)
	return b.String()
}

var groups = []string{"ip", "disk", "fs", "container"}

func drawShape(r *rand.Rand, o Options) shape {
	pick := func(ds ...time.Duration) time.Duration { return ds[r.IntN(len(ds))] }
	n := o.Nodes
	if n == 0 {
		n = 2 + r.IntN(2)
	}
	s := shape{stonith: !o.NoStonith && r.IntN(10) != 0}
	for i := range n {
		s.nodes = append(s.nodes, fmt.Sprintf("n%d", i+1))
	}
	s.netInterval = pick(500*time.Millisecond, 300*time.Millisecond)
	s.netTimeout = pick(2*time.Second, 1500*time.Millisecond, 3*time.Second)
	s.dskInterval = pick(500*time.Millisecond, time.Second)
	s.dskTimeout = pick(2*time.Second, 4*time.Second)
	s.readyPeriod = pick(5*time.Second, 3*time.Second, 10*time.Second)
	s.statusEvery = pick(2*time.Second, 5*time.Second, 10*time.Second)
	s.pStartFail = []float64{0, 0.02, 0.1}[r.IntN(3)]
	s.pStopFail = []float64{0, 0.01, 0.05}[r.IntN(3)]
	s.pFenceFail = []float64{0, 0.1, 0.4}[r.IntN(3)]
	s.faultEvery = pick(time.Second, 3*time.Second, 8*time.Second)
	// An arbitrator: often where it is the only thing between a split
	// and two active sides (no fencing, split_action = stop).
	if o.Arbitrator || (n == 2 && r.IntN(4) == 0) || (!s.stonith && n == 2 && r.IntN(3) != 0) {
		s.arbitrator = true
		s.lease = pick(3*time.Second, 1500*time.Millisecond)
		s.splitStop = !s.stonith || r.IntN(2) == 0
	}
	if !s.stonith {
		s.pStopFail = 0
	}
	ns := o.Services
	if ns == 0 {
		ns = 1 + r.IntN(2)
	}
	for i := range ns {
		sv := svcConf{name: fmt.Sprintf("s%d", i+1), stonith: s.stonith}
		// Placement orders differ between services, so that two
		// services may prefer different nodes.
		order := append([]string(nil), s.nodes...)
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		sv.nodes = order
		sv.keywords = map[string]string{"orchestrate": "ha", "nodes": strings.Join(order, " ")}
		if !sv.stonith {
			sv.keywords["stonith"] = "false"
		}
		nr := 1 + r.IntN(3)
		for j := range nr {
			g := groups[j%len(groups)]
			sv.resources = append(sv.resources, resConf{rid: fmt.Sprintf("%s#%d", g, j+1), group: g, plugin: r.IntN(2)})
		}
		s.services = append(s.services, sv)
	}
	return s
}
