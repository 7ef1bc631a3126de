package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// HBSeen is what one heartbeat says of one peer.
type HBSeen struct {
	LastBeat time.Time `json:"last_beat"`
	Stale    bool      `json:"stale"`
	Reason   string    `json:"reason,omitempty"`
}

// Peer is what this node knows of another.
type Peer struct {
	Name  string    `json:"name"`
	State NodeState `json:"state"`
	// Dataset is the latest the peer published (nil when never heard).
	Dataset *Dataset           `json:"dataset,omitempty"`
	HB      map[string]*HBSeen `json:"hb"`
	// Since is when State last changed.
	Since time.Time `json:"since"`
}

// Event is a change of the view worth acting on.
type Event struct {
	Kind string // "lost", "found", "dataset"
	Peer string
}

// View merges every heartbeat's beats into one picture of the peers. It
// checks each envelope (tag, membership, freshness per heartbeat) and
// counts what it rejects.
type View struct {
	cluster string
	local   string
	nodes   []string
	key     []byte
	timeout map[string]time.Duration // per heartbeat

	mu sync.Mutex
	// judgeFrom: no heartbeat is judged stale for silence before it (the
	// daemon's start, or its resumption after a freeze).
	judgeFrom time.Time
	peers     map[string]*Peer
	fresh     map[string]*freshness // peer + "/" + hb: liveness per heartbeat
	latest    map[string]freshness  // peer: the dataset in force
	// rejects counts by heartbeat and class ("hb#1/bad_tag"): a bounded
	// set of keys, whatever the senders; lastReject keeps the last reason
	// per heartbeat, apart.
	rejects    map[string]int
	lastReject map[string]string
}

// NewView returns an empty view for the nodes of c, judging each heartbeat
// by its timeout.
func NewView(c *NodeConfig, now time.Time) *View {
	v := &View{cluster: c.Cluster, local: c.Local, nodes: c.Nodes, key: c.Key("envelope"),
		timeout: map[string]time.Duration{}, judgeFrom: now,
		peers: map[string]*Peer{}, fresh: map[string]*freshness{}, latest: map[string]freshness{},
		rejects: map[string]int{}, lastReject: map[string]string{}}
	for _, hb := range c.Heartbeats {
		v.timeout[hb.Name] = hb.Timeout
	}
	for _, n := range c.Nodes {
		if n == c.Local {
			continue
		}
		p := &Peer{Name: n, State: Unknown, HB: map[string]*HBSeen{}, Since: now}
		for _, hb := range c.Heartbeats {
			p.HB[hb.Name] = &HBSeen{}
		}
		v.peers[n] = p
	}
	return v
}

// Key is the envelope key (for sealing this node's datasets).
func (v *View) Key() []byte { return v.key }

// Beat takes a dataset received on heartbeat hb. It returns the events the
// beat causes; a rejected envelope is counted and its error returned. The
// payload is decoded before anything is believed: a message that does not
// decode refreshes no liveness. Each heartbeat delivers its own copy of a
// peer's datasets, so freshness per heartbeat is for liveness only; the
// dataset in force is the newest (boot, generation) from any heartbeat,
// never an older copy arriving late on another.
func (v *View) Beat(hb, claimed string, raw []byte, now time.Time) ([]Event, error) {
	env, err := Open(v.key, raw)
	if err != nil {
		v.reject(hb, err)
		return nil, fmt.Errorf("from %s on %s: %w", claimed, hb, err)
	}
	var ds Dataset
	err = json.Unmarshal(env.Payload, &ds)
	if err == nil {
		err = ds.validate()
	}
	if err != nil {
		v.reject(hb, ErrMalformed)
		return nil, fmt.Errorf("from %s on %s: %w: %v", env.Node, hb, ErrMalformed, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.peers[env.Node]
	if !ok || env.Cluster != v.cluster || (claimed != "" && claimed != env.Node) || ds.Node != env.Node {
		v.rejectLocked(hb, ErrForeign)
		return nil, fmt.Errorf("from %s on %s: %w (cluster %q, node %q)", claimed, hb, ErrForeign, env.Cluster, env.Node)
	}
	fk := env.Node + "/" + hb
	f := v.fresh[fk]
	if f == nil {
		f = &freshness{}
		v.fresh[fk] = f
	}
	if err := f.check(env); err != nil {
		if errors.Is(err, errDuplicateHB) {
			return nil, nil
		}
		v.rejectLocked(hb, ErrReplay)
		return nil, fmt.Errorf("from %s on %s: %w", env.Node, hb, err)
	}
	seen := p.HB[hb]
	if seen == nil {
		seen = &HBSeen{}
		p.HB[hb] = seen
	}
	seen.LastBeat, seen.Stale, seen.Reason = now, false, ""
	var events []Event
	if p.State == Lost || p.State == Unknown {
		events = append(events, Event{Kind: "found", Peer: p.Name})
	}
	if !v.latest[p.Name].newer(env) {
		// An older dataset than the one in force (the slower heartbeat's
		// copy): the peer is alive, its news is not.
		if p.State == Lost || p.State == Unknown {
			p.State, p.Since = v.latest[p.Name].state, now
		}
		return events, nil
	}
	v.latest[p.Name] = freshness{boot: env.Boot, gen: env.Gen, state: ds.State}
	if ds.State != p.State {
		p.State, p.Since = ds.State, now
	}
	p.Dataset = &ds
	events = append(events, Event{Kind: "dataset", Peer: p.Name})
	return events, nil
}

// Resume makes the view judge every heartbeat's silence from now: the
// daemon was frozen (or starved) and did not read its heartbeats, so a
// silence it did not watch proves nothing. A peer already lost stays lost.
func (v *View) Resume(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.judgeFrom = now
	for _, p := range v.peers {
		if p.State == Lost {
			continue
		}
		for _, s := range p.HB {
			s.Stale, s.Reason = false, ""
		}
	}
}

// Stale records that heartbeat hb says peer went quiet.
func (v *View) Stale(hb, peer, reason string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p, ok := v.peers[peer]; ok {
		if s := p.HB[hb]; s != nil {
			s.Stale, s.Reason = true, reason
		}
	}
}

// rejectClasses are the classes a plugin's reject reason may start with
// ("bad_tag: from 10.0.0.9:4711"); any other reason counts as "plugin".
var rejectClasses = []string{"bad_tag", "unencrypted", "foreign", "duplicate_name", "replay", "malformed", "oversized"}

// Reject counts something a heartbeat plugin refused, by its class; the
// reason (which may name the sender) is kept apart as the last one.
func (v *View) Reject(hb, reason string) {
	class, _, _ := strings.Cut(reason, ":")
	if !slices.Contains(rejectClasses, class) {
		class = "plugin"
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rejects[hb+"/"+class]++
	v.lastReject[hb] = reason
}

func (v *View) reject(hb string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rejectLocked(hb, err)
}

func (v *View) rejectLocked(hb string, err error) {
	kind := "malformed"
	switch {
	case errors.Is(err, ErrBadMAC):
		kind = "bad_tag"
	case errors.Is(err, ErrForeign):
		kind = "foreign"
	case errors.Is(err, ErrReplay):
		kind = "replay"
	}
	v.rejects[hb+"/"+kind]++
	v.lastReject[hb] = err.Error()
}

// Tick judges each peer at now: a peer is lost when every heartbeat is
// stale for it (told so, or unheard for its timeout). A peer never heard
// stays unknown until every heartbeat's timeout has passed since start.
func (v *View) Tick(now time.Time) []Event {
	v.mu.Lock()
	defer v.mu.Unlock()
	var events []Event
	for _, p := range v.peers {
		allStale := len(p.HB) > 0
		for hb, s := range p.HB {
			to := v.timeout[hb]
			last := s.LastBeat
			if last.Before(v.judgeFrom) {
				last = v.judgeFrom
			}
			if now.Sub(last) > to {
				if !s.Stale {
					s.Stale, s.Reason = true, fmt.Sprintf("no heartbeat for %s", to)
				}
			}
			if !s.Stale {
				allStale = false
			}
		}
		if allStale && p.State != Lost && p.State != Unknown {
			p.State, p.Since = Lost, now
			events = append(events, Event{Kind: "lost", Peer: p.Name})
		}
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Peer < events[j].Peer })
	return events
}

// Snapshot is a copy of the view.
type Snapshot struct {
	Local   string           `json:"local"`
	Peers   map[string]*Peer `json:"peers"`
	Rejects map[string]int   `json:"rejects"`
	// LastReject is the last reject's reason per heartbeat.
	LastReject map[string]string `json:"last_reject,omitempty"`
}

// Snapshot copies the view for readers.
func (v *View) Snapshot() Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Snapshot{Local: v.local, Peers: map[string]*Peer{}, Rejects: map[string]int{}}
	for n, p := range v.peers {
		cp := *p
		cp.HB = map[string]*HBSeen{}
		for hb, seen := range p.HB {
			c := *seen
			cp.HB[hb] = &c
		}
		s.Peers[n] = &cp
	}
	for k, n := range v.rejects {
		s.Rejects[k] = n
	}
	s.LastReject = maps.Clone(v.lastReject)
	return s
}

// Heard reports whether every peer that answers has been heard: the end
// of joining. A peer counts as answering once any heartbeat beat for it.
func (v *View) Heard() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.peers {
		if p.State == Unknown {
			return false
		}
	}
	return true
}

// Nodes returns the cluster's nodes in config order.
func (v *View) Nodes() []string { return slices.Clone(v.nodes) }

// Seen is the newest (boot, generation) accepted from one peer.
type Seen struct {
	Boot uint64 `json:"boot"`
	Gen  uint64 `json:"gen"`
}

// Seen returns the newest (boot, generation) accepted from each peer, for
// the daemon to keep across its restarts.
func (v *View) Seen() map[string]Seen {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]Seen{}
	for n, f := range v.latest {
		out[n] = Seen{Boot: f.boot, Gen: f.gen}
	}
	return out
}

// Restore takes what Seen returned in a former life of the daemon: an
// envelope captured before the restart is then a replay on every
// heartbeat, not news accepted once.
func (v *View) Restore(seen map[string]Seen) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for n, s := range seen {
		p, ok := v.peers[n]
		if !ok {
			continue
		}
		v.latest[n] = freshness{boot: s.Boot, gen: s.Gen, state: Unknown}
		for hb := range p.HB {
			v.fresh[n+"/"+hb] = &freshness{boot: s.Boot, gen: s.Gen}
		}
	}
}
