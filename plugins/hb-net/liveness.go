package hbnet

import "time"

// liveness decides when a peer turns stale. It holds no lock and reads no
// clock, so the rules are tested without a network; the session
// serializes calls.
//
// A peer is reported stale once per silence: again only after a dataset
// has come from it in between. A peer never heard since start is given
// the timeout from start before it is reported, whatever memberlist says,
// so a starting node does not report peers it simply has not met yet.
type liveness struct {
	timeout time.Duration
	start   time.Time
	peers   map[string]*peerLiveness
}

type peerLiveness struct {
	heard bool
	last  time.Time
	stale bool
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
	p.heard, p.last, p.stale = true, now, false
}

// gone records that the transport lost peer. It reports whether a Stale
// is due now.
func (l *liveness) gone(peer string, now time.Time) bool {
	p, ok := l.peers[peer]
	if !ok || p.stale {
		return false
	}
	if !p.heard && now.Sub(l.start) < l.timeout {
		return false // due() reports it when the start grace ends
	}
	p.stale = true
	return true
}

// due returns the peers silent for the timeout and not yet reported,
// and marks them reported.
func (l *liveness) due(now time.Time) []string {
	var out []string
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
			out = append(out, name)
		}
	}
	return out
}
