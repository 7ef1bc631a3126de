package daemon

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/journal"
	"github.com/vigil-ha/vigil/core/status"
)

// The failover flight recorder: every takeover, move and orchestrated
// start this node makes is timed phase by phase (the peer's last beat,
// lost, fence asked and confirmed, claim, each resource's start, service
// up, first good monitor) and written to the journal as one "failover"
// entry, whose Data is an api.Flight.

type peerTimes struct {
	lastBeat, lost, fenceAsked, fenced time.Time
}

type pendingFlight struct {
	f          api.Flight
	claim      time.Time
	startBegin time.Time
	startEnd   time.Time
	up         time.Time
	steps      map[string]time.Time // rid -> begin
	peers      []peerTimes
}

type flightRecorder struct {
	mu      sync.Mutex
	peers   map[string]*peerTimes
	pending map[string]*pendingFlight
}

func newFlightRecorder() *flightRecorder {
	return &flightRecorder{peers: map[string]*peerTimes{}, pending: map[string]*pendingFlight{}}
}

func (r *flightRecorder) peer(n string) *peerTimes {
	p := r.peers[n]
	if p == nil {
		p = &peerTimes{}
		r.peers[n] = p
	}
	return p
}

// event takes the times it needs from the daemon's events.
func (r *flightRecorder) event(d *Daemon, ev api.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ev.Kind == "peer" && ev.Message == "lost":
		p := &peerTimes{lost: ev.Time}
		if snap := d.view.Snapshot().Peers[ev.Node]; snap != nil {
			p.lastBeat = lastBeat(snap)
		}
		r.peers[ev.Node] = p
	case ev.Kind == "fence" && ev.Message == "fenced":
		if p := r.peer(ev.Node); p.fenced.IsZero() {
			p.fenced = ev.Time
		}
	case ev.Kind == "action" && strings.HasPrefix(ev.Message, "start: "):
		pf := r.pending[ev.Service]
		if pf == nil || !pf.startEnd.IsZero() {
			return
		}
		pf.startEnd = ev.Time
		if ev.Message != "start: ok" {
			pf.f.Failed = strings.TrimPrefix(ev.Message, "start: ")
		}
	}
}

// fenceAsked is fence's hook: a fence of target begins.
func (r *flightRecorder) fenceAsked(target string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.peer(target); p.fenceAsked.IsZero() {
		p.fenceAsked = at
	}
}

// fenced: target's power-off confirmed (by its fence, or an operator).
func (r *flightRecorder) fenced(target string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.peer(target); p.fenced.IsZero() {
		p.fenced = at
	}
}

// flightFenceAsked is fence's hook.
func (d *Daemon) flightFenceAsked(target string) {
	if d.ops != nil {
		d.ops.flight.fenceAsked(target, time.Now())
	}
}

// flightClaim is execute's hook: a claim opens a flight.
func (d *Daemon) flightClaim(svc, reason string) {
	if d.ops == nil {
		return
	}
	r := d.ops.flight
	now := time.Now()
	pf := &pendingFlight{f: api.Flight{Service: svc, Node: d.node.Local, Kind: "start", Reason: reason}, claim: now, steps: map[string]time.Time{}}
	if from, ok := strings.CutPrefix(reason, "taking over from lost "); ok {
		pf.f.Kind = "takeover"
		pf.f.From = strings.Split(from, ", ")
	} else if s, err := d.lookup(svc); err == nil {
		d.mu.Lock()
		if s.persist.Expect.Target == d.node.Local {
			pf.f.Kind = "move"
		}
		d.mu.Unlock()
	}
	r.mu.Lock()
	for _, n := range pf.f.From {
		if p := r.peers[n]; p != nil {
			pf.peers = append(pf.peers, *p)
		}
	}
	r.pending[svc] = pf
	r.mu.Unlock()
	d.record(journal.Entry{Kind: "claim", Service: svc, Node: d.node.Local, Message: reason})
}

// flightStep is runAction's hook: each resource's start, timed.
func (d *Daemon) flightStep(st action.Step) {
	if d.ops == nil || st.Action != "start" {
		return
	}
	r := d.ops.flight
	r.mu.Lock()
	defer r.mu.Unlock()
	pf := r.pending[st.Service]
	if pf == nil || !pf.startEnd.IsZero() {
		return
	}
	now := time.Now()
	switch st.Phase {
	case "begin":
		if pf.startBegin.IsZero() {
			pf.startBegin = now
		}
		pf.steps[st.RID] = now
	case "done", "failed":
		begin, ok := pf.steps[st.RID]
		if !ok {
			begin = now.Add(-st.Elapsed)
		}
		pf.f.Resources = append(pf.f.Resources, api.Phase{Name: st.RID, Start: begin, End: now, Seconds: now.Sub(begin).Seconds()})
	}
}

// finishFlights writes the flights whose service is up and monitored good
// once (or that failed, or waited too long for it).
func (d *Daemon) finishFlights(now time.Time) {
	r := d.ops.flight
	r.mu.Lock()
	var done []*pendingFlight
	for svc, pf := range r.pending {
		switch {
		case pf.startEnd.IsZero():
			if now.Sub(pf.claim) > 10*time.Minute {
				delete(r.pending, svc) // a claim released, never started
			}
			continue
		case pf.f.Failed != "":
		default:
			avail, evalAt := d.localAvail(svc)
			if avail == status.Up && pf.up.IsZero() {
				pf.up = pf.startEnd
			}
			if pf.up.IsZero() || (!evalAt.After(pf.startEnd) && now.Sub(pf.startEnd) < 30*time.Second) {
				continue // waiting for the first good monitor
			}
			if avail == status.Up && evalAt.After(pf.startEnd) {
				pf.f.End = evalAt
			}
		}
		delete(r.pending, svc)
		done = append(done, pf)
	}
	r.mu.Unlock()
	for _, pf := range done {
		f := pf.build()
		data, _ := json.Marshal(f)
		msg := f.Kind + " " + strings.Join(f.From, ",")
		if f.Failed != "" {
			msg += ": failed: " + f.Failed
		} else {
			msg += ": up after " + time.Duration(f.Total*float64(time.Second)).Round(time.Millisecond).String()
		}
		d.record(journal.Entry{Kind: "failover", Service: f.Service, Node: d.node.Local, Message: strings.Replace(msg, "  ", " ", 1), Data: data})
		d.metrics.failover(f)
	}
}

// build lays the phases end to end, from the earliest known time (the
// lost peer's last beat) to the service up, then the first good monitor.
func (pf *pendingFlight) build() api.Flight {
	f := pf.f
	var p peerTimes
	if len(pf.peers) > 0 {
		p = pf.peers[0]
	}
	type mark struct {
		name string
		at   time.Time
	}
	marks := []mark{{"", p.lastBeat}, {"detect", p.lost}, {"fence_wait", p.fenceAsked}, {"fence", p.fenced},
		{"decide", pf.claim}, {"claim_window", pf.startBegin}, {"start", pf.startEnd}}
	if !pf.up.IsZero() {
		marks = append(marks, mark{"up", pf.up})
	}
	if !f.End.IsZero() {
		marks = append(marks, mark{"first_monitor", f.End})
	}
	var prev time.Time
	for _, m := range marks {
		if m.at.IsZero() {
			continue
		}
		if prev.IsZero() {
			f.Begin = m.at
		} else if m.name != "" && m.name != "up" {
			f.Phases = append(f.Phases, api.Phase{Name: m.name, Start: prev, End: m.at, Seconds: m.at.Sub(prev).Seconds()})
		}
		prev = m.at
	}
	if !pf.up.IsZero() {
		f.Total = pf.up.Sub(f.Begin).Seconds()
	} else {
		f.Total = pf.startEnd.Sub(f.Begin).Seconds()
	}
	if f.End.IsZero() {
		f.End = prev
	}
	return f
}
