package hbnet

import (
	"fmt"
	"time"
)

// liveness decides when a peer turns stale. It holds no lock and reads no
// clock, so the rules are tested without a network; the session
// serializes calls.
//
// Only silence makes a peer stale: no dataset for the timeout since its
// last one. What the transport says of a peer (it left, memberlist
// declared it dead) never shortens that: a clean stop is what a restart
// of vigild looks like, and fencing a node for it would turn every
// restart into a failover. It is only remembered, to say in the Stale why
// the peer went quiet.
//
// A peer is reported stale once per silence: again only after a dataset
// has come from it in between. A peer never heard since start is given
// the timeout from start before it is reported, so a starting node does
// not report peers it simply has not met yet.
type liveness struct {
	timeout time.Duration
	start   time.Time
	peers   map[string]*peerLiveness
}

type peerLiveness struct {
	heard bool
	last  time.Time
	stale bool
	// gone is what the transport said of the peer since its last
	// dataset ("" when nothing).
	gone string
}

// stale is a peer due to be reported, and why.
type stale struct {
	peer, reason string
}

func newLiveness(peers []string, timeout time.Duration, start time.Time) *liveness {
	l := &liveness{timeout: timeout, start: start, peers: make(map[string]*peerLiveness, len(peers))}
	for _, p := range peers {
		l.peers[p] = &peerLiveness{}
	}
	return l
}

// beat records a dataset from peer.
func (l *liveness) beat(peer string, now time.Time) {
	p, ok := l.peers[peer]
	if !ok {
		return
	}
	p.heard, p.last, p.stale, p.gone = true, now, false, ""
}

// left records what the transport said of a peer it lost; the peer
// stays judged by its timeout.
func (l *liveness) left(peer, how string) {
	if p, ok := l.peers[peer]; ok {
		p.gone = how
	}
}

// due returns the peers silent for the timeout and not yet reported,
// and marks them reported.
func (l *liveness) due(now time.Time) []stale {
	var out []stale
	for name, p := range l.peers {
		if p.stale {
			continue
		}
		ref := l.start
		if p.heard {
			ref = p.last
		}
		if now.Sub(ref) >= l.timeout {
			p.stale = true
			reason := fmt.Sprintf("no heartbeat for %s", l.timeout)
			if p.gone != "" {
				reason += " (" + p.gone + ")"
			}
			out = append(out, stale{peer: name, reason: reason})
		}
	}
	return out
}
