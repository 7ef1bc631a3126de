package arbitrator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Server defaults.
const (
	// DefaultLease is how long a grant lasts: several of a node's publish
	// intervals (500 ms by default), so a node renews it many times over,
	// and a side's failover waits at most this long for the vote.
	DefaultLease = 3 * time.Second
	// MinLease keeps a lease longer than a round trip and its margin.
	MinLease = 300 * time.Millisecond
	// DefaultIOTimeout bounds one exchange, from accept to answer.
	DefaultIOTimeout = 2 * time.Second
	// DefaultMaxConns bounds the exchanges in flight; more are closed at
	// once.
	DefaultMaxConns = 64
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Cluster is the cluster's name; requests for another are denied.
	Cluster string
	// Key authenticates requests and answers: Key(secret, Cluster).
	Key []byte
	// Nodes, when set, are the cluster's nodes: a request naming another
	// is denied. Empty: any name is taken (the arbitrator knows only the
	// cluster's name and secret).
	Nodes []string
	// Lease is how long a grant lasts from when the request arrives.
	// Default DefaultLease.
	Lease time.Duration
	// IOTimeout bounds one exchange. Default DefaultIOTimeout.
	IOTimeout time.Duration
	// MaxConns bounds the exchanges in flight. Default DefaultMaxConns.
	MaxConns int
	// Logger receives the grants and denials. Default: a null logger.
	Logger hclog.Logger
	// Now is the server's clock (time.Now, monotonic). For tests.
	Now func() time.Time
}

// grant is one vote given.
type grant struct {
	set   []string
	until time.Time
}

// Server grants the arbitrator's vote (see the package comment for the
// rule).
type Server struct {
	cfg   ServerConfig
	log   hclog.Logger
	sem   chan struct{}
	quiet time.Time // no grant before this: the restart wait

	mu     sync.Mutex
	grants map[string]grant  // holder → grant
	last   map[string]string // node → its last outcome logged
}

// NewServer returns a server that grants nothing for one lease: it may
// have been restarted, forgetting grants still counted by their holders.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.IOTimeout == 0 {
		cfg.IOTimeout = DefaultIOTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case checkName("cluster", cfg.Cluster) != nil:
		return nil, fmt.Errorf("arbitrator: cluster name %q: give the cluster's name, 1 to %d bytes", cfg.Cluster, MaxName)
	case len(cfg.Key) < 16:
		return nil, errors.New("arbitrator: no key (derive it from the cluster secret with Key)")
	case cfg.Lease < MinLease:
		return nil, fmt.Errorf("arbitrator: lease %s is below the %s minimum", cfg.Lease, MinLease)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, cfg.MaxConns), grants: map[string]grant{}, last: map[string]string{}}
	// Grants live in memory only: a grant given before a restart is
	// forgotten but may still be counted by its holder, until one lease
	// after it was given, so nothing is granted for one lease.
	s.quiet = cfg.Now().Add(cfg.Lease)
	return s, nil
}

// Lease is the server's lease.
func (s *Server) Lease() time.Duration { return s.cfg.Lease }

// Serve answers on ln until ctx ends; it closes ln and returns when every
// exchange in flight is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("arbitrator: accept on %s: %w", ln.Addr(), err)
			}
			// Out of descriptors or a connection reset before accept: the
			// vote must outlive it, so wait a moment and go on.
			s.log.Warn("accept failed; retrying", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.log.Warn("too many exchanges in flight: connection closed", "remote", c.RemoteAddr(), "max", s.cfg.MaxConns)
			c.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-s.sem }()
			defer c.Close()
			s.exchange(c)
		})
	}
}

// exchange is one connection: challenge, request, answer.
func (s *Server) exchange(c net.Conn) {
	log := s.log.With("remote", c.RemoteAddr().String())
	c.SetDeadline(time.Now().Add(s.cfg.IOTimeout))
	var chal [nonceLen]byte
	rand.Read(chal[:])
	if err := writeFrame(c, encodeChallenge(chal)); err != nil {
		log.Debug("send the challenge", "error", err)
		return
	}
	frame, err := readFrame(c)
	if err != nil {
		log.Debug("read the request", "error", err)
		return
	}
	// The lease starts at the latest instant the request can have been
	// sent: now, as it is received.
	now := s.cfg.Now()
	q, err := DecodeRequest(s.cfg.Key, frame)
	if err != nil {
		// An unauthenticated peer gets no answer: it could not check one.
		log.Warn("request refused", "error", err)
		return
	}
	if q.Challenge != chal {
		log.Warn("request refused: it answers another connection's challenge (a replay?)", "node", q.Node)
		return
	}
	a := s.decide(now, q)
	a.Nonce = q.Nonce
	if err := writeFrame(c, EncodeReply(s.cfg.Key, &a)); err != nil {
		log.Debug("send the answer", "node", q.Node, "error", err)
	}
}

// decide applies the rule to one authenticated request received at now.
func (s *Server) decide(now time.Time, q *Request) Reply {
	log := s.log.With("node", q.Node, "set", strings.Join(q.Set, ","))
	deny := func(format string, args ...any) Reply {
		r := Reply{Lease: s.cfg.Lease, Reason: fmt.Sprintf(format, args...)}
		s.logOnce(log, q.Node, "denied", "vote denied", "reason", r.Reason)
		return r
	}
	switch {
	case q.Cluster != s.cfg.Cluster:
		return deny("this arbitrator serves cluster %s, not %s", s.cfg.Cluster, q.Cluster)
	case len(s.cfg.Nodes) > 0 && !slices.Contains(s.cfg.Nodes, q.Node):
		return deny("%s is not a node of cluster %s", q.Node, s.cfg.Cluster)
	case !slices.Contains(q.Set, q.Node):
		return deny("%s's set does not include itself", q.Node)
	case now.Before(s.quiet):
		return deny("arbitrator started %s ago: it grants nothing for one lease (%s), as it forgot the grants it gave before", now.Sub(s.quiet.Add(-s.cfg.Lease)).Round(time.Millisecond), s.cfg.Lease)
	}
	for _, n := range q.Set {
		if len(s.cfg.Nodes) > 0 && !slices.Contains(s.cfg.Nodes, n) {
			return deny("%s is not a node of cluster %s", n, s.cfg.Cluster)
		}
	}
	r, ok := s.grant(now, q)
	if !ok {
		return deny("%s", r)
	}
	s.logOnce(log, q.Node, "granted", "vote granted", "lease", s.cfg.Lease)
	return Reply{Granted: true, Lease: s.cfg.Lease}
}

// grant gives q the vote unless an unexpired grant conflicts; it returns
// the conflict.
func (s *Server) grant(now time.Time, q *Request) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for holder, g := range s.grants {
		if !now.Before(g.until) {
			delete(s.grants, holder)
		}
	}
	for _, holder := range slices.Sorted(maps.Keys(s.grants)) {
		g := s.grants[holder]
		if !slices.Contains(q.Set, holder) || !slices.Equal(g.set, q.Set) {
			return fmt.Sprintf("the vote is held by %s for {%s} for %s more", holder, strings.Join(g.set, ","), g.until.Sub(now).Round(time.Millisecond)), false
		}
	}
	s.grants[q.Node] = grant{set: q.Set, until: now.Add(s.cfg.Lease)}
	return "", true
}

// logOnce logs at info the first of a run of the same outcome for a
// node, and at debug the rest: a denied side asks every interval.
func (s *Server) logOnce(log hclog.Logger, node, outcome, msg string, args ...any) {
	s.mu.Lock()
	same := s.last[node] == outcome
	s.last[node] = outcome
	s.mu.Unlock()
	if same {
		log.Debug(msg, args...)
	} else {
		log.Info(msg, args...)
	}
}
