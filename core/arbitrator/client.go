package arbitrator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Now is the clock a vote's validity is read on: CLOCK_BOOTTIME, which is
// monotonic and, unlike Go's monotonic clock, keeps counting while the
// host is suspended, so a node that slept never wakes up believing it
// still holds a vote the server has let go.
func Now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic(fmt.Sprintf("clock_gettime(CLOCK_BOOTTIME): %v", err))
	}
	return time.Duration(ts.Nano())
}

// Margin is what a client takes off a lease: the server's lease starts
// later than the client's count (when the request arrives), and the margin
// covers the two clocks running at different rates.
func Margin(lease time.Duration) time.Duration { return lease / 5 }

// Vote is an arbitrator's answer as a client holds it.
type Vote struct {
	Granted bool
	// Set is the set the vote was asked for.
	Set []string
	// Until is when the vote stops counting, on Now's clock: the request's
	// send time + lease − Margin(lease).
	Until time.Duration
	// Reason is the server's, for a denial.
	Reason string
}

// Valid reports whether the vote counts at now for a side that sees set
// (sorted, as NormalizeSet gives): granted, unexpired, and for that very
// set.
func (v Vote) Valid(now time.Duration, set []string) bool {
	if !v.Granted || now >= v.Until || len(set) != len(v.Set) {
		return false
	}
	for i := range set {
		if set[i] != v.Set[i] {
			return false
		}
	}
	return true
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Addr is the arbitrator's host:port.
	Addr string
	// Key is Key(secret, Cluster).
	Key     []byte
	Cluster string
	// Node is this node's name.
	Node string
	// Timeout bounds one exchange. Default 1s.
	Timeout time.Duration
	// Now is the clock votes are timed on. Default Now.
	Now func() time.Duration
}

// Client asks one arbitrator for its vote.
type Client struct {
	cfg ClientConfig
}

// NewClient returns a client; it opens nothing until Ask.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = Now
	}
	return &Client{cfg: cfg}
}

// ErrBadReply: the arbitrator's answer does not verify or does not answer
// this request.
var ErrBadReply = errors.New("arbitrator answer rejected")

// Ask asks for the vote for set (this node's side, itself included). A
// denial is a Vote with Granted false and the server's reason; an error
// means no answer.
func (c *Client) Ask(ctx context.Context, set []string) (Vote, error) {
	set = NormalizeSet(set)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return Vote{}, fmt.Errorf("arbitrator %s: %w", c.cfg.Addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)

	frame, err := readFrame(conn)
	if err != nil {
		return Vote{}, fmt.Errorf("arbitrator %s: read its challenge: %w", c.cfg.Addr, err)
	}
	q := &Request{Cluster: c.cfg.Cluster, Node: c.cfg.Node, Set: set}
	if q.Challenge, err = decodeChallenge(frame); err != nil {
		return Vote{}, fmt.Errorf("arbitrator %s: %w", c.cfg.Addr, err)
	}
	rand.Read(q.Nonce[:])
	body, err := EncodeRequest(c.cfg.Key, q)
	if err != nil {
		return Vote{}, fmt.Errorf("arbitrator %s: %w", c.cfg.Addr, err)
	}
	// The vote is timed from before the request leaves: the server's lease
	// starts later, when it arrives.
	sent := c.cfg.Now()
	if err := writeFrame(conn, body); err != nil {
		return Vote{}, fmt.Errorf("arbitrator %s: send the request: %w", c.cfg.Addr, err)
	}
	if frame, err = readFrame(conn); err != nil {
		return Vote{}, fmt.Errorf("arbitrator %s: read its answer (no answer: is its secret and cluster name this cluster's?): %w", c.cfg.Addr, err)
	}
	a, err := DecodeReply(c.cfg.Key, frame)
	if err != nil {
		return Vote{}, fmt.Errorf("%w: arbitrator %s: %w", ErrBadReply, c.cfg.Addr, err)
	}
	if a.Nonce != q.Nonce {
		return Vote{}, fmt.Errorf("%w: arbitrator %s answered another request", ErrBadReply, c.cfg.Addr)
	}
	v := Vote{Granted: a.Granted, Set: set, Reason: a.Reason}
	if a.Granted {
		v.Until = sent + a.Lease - Margin(a.Lease)
	}
	return v, nil
}
