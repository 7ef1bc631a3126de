package configsync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/config"
)

// Defaults for Config and ClientConfig.
const (
	// DefaultMaxSize is the largest config carried: the largest file the
	// config parser takes.
	DefaultMaxSize = config.MaxFileSize
	// DefaultHandshakeTimeout bounds a connection from accept to an
	// authenticated request: a request is a few hundred bytes, and an
	// unauthenticated peer holds a connection slot no longer than this.
	DefaultHandshakeTimeout = 2 * time.Second
	// DefaultTimeout bounds one whole exchange, the reply included
	// (DefaultMaxSize at a megabit per second and a margin).
	DefaultTimeout = 15 * time.Second
	// DefaultMaxConns bounds the connections served at once; more are
	// closed at once.
	DefaultMaxConns = 16
	// DefaultDialTimeout bounds a client's connect.
	DefaultDialTimeout = 2 * time.Second
)

// Config configures a Server.
type Config struct {
	// Key authenticates both ends and seals the replies: derived from the
	// cluster secret (NodeConfig.Key("configsync")), at least 16 bytes.
	Key []byte
	// Cluster is the cluster's name; a request for another is refused.
	Cluster string
	// Local is this node's name, for the logs.
	Local string
	// Lookup returns the config in force for a service: its content,
	// version and hex sha256 sum, ok false when the node has no such
	// service. It is called on the connection goroutines, concurrently:
	// it must be safe for concurrent use and quick (no I/O on the
	// daemon's loop), and the content it returns must not be modified
	// afterwards.
	Lookup func(name string) (content []byte, version int64, sum string, ok bool)
	// Logger receives the fetches served and refused. Default: a null
	// logger.
	Logger hclog.Logger
	// MaxSize is the largest config served, in bytes. Default
	// DefaultMaxSize; at most MaxMaxSize.
	MaxSize int64
	// HandshakeTimeout bounds a connection until its request is
	// authenticated. Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Timeout bounds one exchange, from accept to the reply's last byte.
	// Default DefaultTimeout.
	Timeout time.Duration
	// MaxConns bounds the connections served at once. Default
	// DefaultMaxConns.
	MaxConns int
}

// Server answers peers' fetches of this node's service configs.
type Server struct {
	cfg    Config
	log    hclog.Logger
	reqKey []byte
	sem    chan struct{}

	// ctx ends on Close, stopping every Serve and every connection.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // every Serve, each waiting for its connections
}

// NewServer checks cfg, applies its defaults and returns a server that
// serves nothing until Serve.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	switch {
	case len(cfg.Key) < 16:
		return nil, errors.New("config sync server: no key (derive it from the cluster secret: NodeConfig.Key(\"configsync\"))")
	case checkWireName("cluster", cfg.Cluster) != nil:
		return nil, fmt.Errorf("config sync server: cluster name %q: give the cluster's name, 1 to %d bytes", cfg.Cluster, maxName)
	case cfg.Lookup == nil:
		return nil, errors.New("config sync server: no Lookup")
	case cfg.MaxSize < 0 || cfg.MaxSize > MaxMaxSize:
		return nil, fmt.Errorf("config sync server: MaxSize %d: give 1 to %d bytes", cfg.MaxSize, MaxMaxSize)
	case cfg.HandshakeTimeout < 0 || cfg.Timeout < 0 || cfg.MaxConns < 0:
		return nil, errors.New("config sync server: negative timeout or MaxConns")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:    cfg,
		log:    cfg.Logger.Named("configsync").With("node", cfg.Local),
		reqKey: requestKey(cfg.Key),
		sem:    make(chan struct{}, cfg.MaxConns),
		ctx:    ctx,
		cancel: cancel,
	}, nil
}

// Serve answers on ln until ctx ends or Close is called, then closes ln
// and every connection it accepted and returns nil once their goroutines
// are done. It may be called for several listeners at once; they share
// MaxConns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopOnClose := context.AfterFunc(s.ctx, cancel)
	defer stopOnClose()
	defer ln.Close()
	stopLn := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopLn()

	var conns sync.WaitGroup
	defer conns.Wait()
	backoff := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("config sync: listener %s closed under the server: %w", ln.Addr(), err)
			}
			// Out of file descriptors and the like: wait, the condition
			// may pass, rather than stop serving for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "addr", ln.Addr().String(), "error", err, "wait", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		select {
		case s.sem <- struct{}{}:
		default:
			s.log.Warn("too many config fetches in flight: connection closed", "remote", c.RemoteAddr().String(), "max", s.cfg.MaxConns)
			c.Close()
			continue
		}
		conns.Go(func() {
			defer func() { <-s.sem }()
			s.exchange(ctx, c)
		})
	}
}

// Close stops every Serve and every connection, and returns when their
// goroutines are done. Serve returns ErrServerClosed afterwards.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// exchange serves one connection: challenge, request, reply.
func (s *Server) exchange(ctx context.Context, c net.Conn) {
	defer c.Close()
	// Closing the connection is what interrupts a read or write in
	// flight when the server stops.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	start := time.Now()
	log := s.log.With("remote", c.RemoteAddr().String())
	if err := c.SetDeadline(start.Add(min(s.cfg.HandshakeTimeout, s.cfg.Timeout))); err != nil {
		return
	}

	var chal [nonceLen]byte
	_, _ = rand.Read(chal[:]) // never fails (crypto/rand crashes the program rather)
	if err := writeFrame(c, encodeChallenge(chal)); err != nil {
		log.Debug("send the challenge", "error", err)
		return
	}
	frame, err := readFrame(c, maxRequestFrame)
	switch {
	case errors.Is(err, io.EOF):
		// A hang-up before a request: a port probe, or a client that
		// gave up.
		log.Debug("connection closed before a request")
		return
	case errors.Is(err, errFrameTooLarge):
		log.Warn("request refused", "error", err)
		_ = writeFrame(c, encodeRefusal(refuseMalformed))
		return
	case err != nil:
		log.Warn("read the request", "error", err)
		return
	}
	q, err := decodeRequest(s.reqKey, frame)
	switch {
	case errors.Is(err, ErrAuth):
		log.Warn("request refused: it does not authenticate (another cluster's secret?)")
		_ = writeFrame(c, encodeRefusal(refuseAuth))
		return
	case err != nil:
		log.Warn("request refused", "error", err)
		_ = writeFrame(c, encodeRefusal(refuseMalformed))
		return
	case q.Challenge != chal:
		log.Warn("request refused: it answers another connection's challenge (a replay?)", "peer", q.Node)
		_ = writeFrame(c, encodeRefusal(refuseAuth))
		return
	}

	// Authenticated: the reply may take the rest of the exchange's time.
	if err := c.SetDeadline(start.Add(s.cfg.Timeout)); err != nil {
		return
	}
	log = log.With("peer", q.Node, "service", q.Service)
	a := s.answer(log, q)
	if err := writeFrame(c, sealReply(s.cfg.Key, frame, q, &a)); err != nil {
		log.Warn("send the config", "error", err)
		return
	}
	if a.Status == statusOK {
		log.Info("config sent", "version", a.Version, "bytes", len(a.Content))
	}
}

// answer decides the reply to an authenticated request.
func (s *Server) answer(log hclog.Logger, q *request) reply {
	refuse := func(status byte, format string, args ...any) reply {
		a := reply{Status: status, Message: fmt.Sprintf(format, args...)}
		log.Warn("config not sent", "reason", a.Message)
		return a
	}
	if q.Cluster != s.cfg.Cluster {
		return refuse(statusWrongCluster, "node %s serves cluster %s, not %s", s.cfg.Local, s.cfg.Cluster, q.Cluster)
	}
	if err := config.CheckServiceName(q.Service); err != nil {
		return refuse(statusBadName, "%v", err)
	}
	content, version, sumHex, ok := s.cfg.Lookup(q.Service)
	if !ok {
		return refuse(statusNotFound, "node %s has no service %s", s.cfg.Local, q.Service)
	}
	if int64(len(content)) > s.cfg.MaxSize {
		return refuse(statusTooLarge, "%s's config on node %s is %d bytes, over the %d bytes carried", q.Service, s.cfg.Local, len(content), s.cfg.MaxSize)
	}
	a := reply{Version: version}
	got := sha256.Sum256(content)
	if sum, err := hex.DecodeString(sumHex); err != nil || len(sum) != sumLen || [sumLen]byte(sum) != got {
		// The daemon handed a content and a sum that do not go together:
		// a bug here, not the peer's fault; never send such a content.
		log.Error("the config in force does not match its own sum; not sent", "version", version, "sum", sumHex)
		a.Status, a.Message = statusCorrupt, fmt.Sprintf("%s's config on node %s does not match its own checksum", q.Service, s.cfg.Local)
		return a
	}
	a.Sum = got
	if got != q.Sum {
		a.Status, a.Message = statusStale, fmt.Sprintf("node %s has version %d of %s (sum %.12s), not sum %.12s", s.cfg.Local, version, q.Service, sumHex, hex.EncodeToString(q.Sum[:]))
		log.Info("config not sent: another version was asked for", "version", version)
		return a
	}
	a.Content = content
	return a
}
