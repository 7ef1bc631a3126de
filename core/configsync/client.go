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
	"time"

	"github.com/vigil-ha/vigil/core/config"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Key is the servers' key: NodeConfig.Key("configsync").
	Key []byte
	// Cluster is the cluster's name.
	Cluster string
	// Local is this node's name, sent to the server for its logs.
	Local string
	// DialTimeout bounds the connect. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// Timeout bounds one whole fetch, the connect included. Default
	// DefaultTimeout.
	Timeout time.Duration
	// MaxSize is the largest config accepted, in bytes. Default
	// DefaultMaxSize; at most MaxMaxSize. Keep it at least the peers'.
	MaxSize int64
}

// Request names the config a Fetch asks for.
type Request struct {
	// Service is the service's name.
	Service string
	// Sum is the hex sha256 of the version wanted, as the peer's
	// heartbeat announced it (cluster.ConfigVersion.Sum).
	Sum string
}

// Client fetches service configs from peers' Servers. It holds no
// connection: one per Fetch.
type Client struct {
	cfg    ClientConfig
	reqKey []byte
}

// NewClient checks cfg and applies its defaults.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	switch {
	case len(cfg.Key) < 16:
		return nil, errors.New("config sync client: no key (derive it from the cluster secret: NodeConfig.Key(\"configsync\"))")
	case checkWireName("cluster", cfg.Cluster) != nil:
		return nil, fmt.Errorf("config sync client: cluster name %q: give the cluster's name, 1 to %d bytes", cfg.Cluster, maxName)
	case checkWireName("node", cfg.Local) != nil:
		return nil, fmt.Errorf("config sync client: node name %q: give this node's name, 1 to %d bytes", cfg.Local, maxName)
	case cfg.MaxSize < 0 || cfg.MaxSize > MaxMaxSize:
		return nil, fmt.Errorf("config sync client: MaxSize %d: give 1 to %d bytes", cfg.MaxSize, MaxMaxSize)
	case cfg.DialTimeout < 0 || cfg.Timeout < 0:
		return nil, errors.New("config sync client: negative timeout")
	}
	return &Client{cfg: cfg, reqKey: requestKey(cfg.Key)}, nil
}

// Fetch asks the server at addr (host:port) for req's config and returns
// its content, which hashes to req.Sum, and the server's version number
// for it. It blocks on the network for up to the client's Timeout (less
// if ctx ends first): never call it on the heartbeat path.
func (c *Client) Fetch(ctx context.Context, addr string, req Request) (content []byte, version int64, err error) {
	if err := config.CheckServiceName(req.Service); err != nil {
		return nil, 0, fmt.Errorf("fetch a config from %s: %w: %w", addr, ErrBadName, err)
	}
	raw, err := hex.DecodeString(req.Sum)
	if err != nil || len(raw) != sumLen {
		return nil, 0, fmt.Errorf("fetch %s's config from %s: sum %q is not a hex sha256 (give the sum the peer's heartbeat announced)", req.Service, addr, req.Sum)
	}
	return c.fetch(ctx, addr, req.Service, [sumLen]byte(raw))
}

// fetch is Fetch without the checks on the request, so that tests can
// send what a client would not.
func (c *Client) fetch(ctx context.Context, addr, service string, sum [sumLen]byte) ([]byte, int64, error) {
	fail := func(format string, args ...any) ([]byte, int64, error) {
		return nil, 0, fmt.Errorf("fetch %s's config from %s: "+format, append([]any{service, addr}, args...)...)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail("%w", err)
	}
	defer conn.Close()
	// Closing interrupts a read or write in flight when ctx ends; the
	// deadline bounds them otherwise.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	dl, _ := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return fail("%w", err)
	}
	// ioErr says why a read or write failed: ctx's end reads better than
	// "use of closed network connection".
	ioErr := func(what string, err error) ([]byte, int64, error) {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return fail("%s: %w", what, err)
	}

	frame, err := readFrame(conn, challengeFrameLen)
	if err != nil {
		if errors.Is(err, errFrameTooLarge) {
			return fail("%w: %w (is this address a vigil daemon's config sync port?)", ErrMalformed, err)
		}
		if errors.Is(err, io.EOF) {
			return fail("read its challenge: %w (the peer closed at once: too many fetches in flight there?)", err)
		}
		return ioErr("read its challenge", err)
	}
	q := &request{Cluster: c.cfg.Cluster, Node: c.cfg.Local, Service: service, Sum: sum}
	if q.Challenge, err = decodeChallenge(frame); err != nil {
		return fail("%w", err)
	}
	_, _ = rand.Read(q.Nonce[:]) // never fails (crypto/rand crashes the program rather)
	reqFrame, err := encodeRequest(c.reqKey, q)
	if err != nil {
		return fail("%w", err)
	}
	if err := writeFrame(conn, reqFrame); err != nil {
		return ioErr("send the request", err)
	}
	frame, err = readFrame(conn, int(c.cfg.MaxSize)+ReplyOverhead)
	if err != nil {
		if errors.Is(err, errFrameTooLarge) {
			return fail("%w: %w (raise MaxSize if the peer's is larger)", ErrTooLarge, err)
		}
		return ioErr("read the reply", err)
	}
	if kindOf(frame) == kindRefusal {
		code, err := decodeRefusal(frame)
		switch {
		case err != nil:
			return fail("%w", err)
		case code == refuseAuth:
			return fail("%w: the peer refused the request", ErrAuth)
		default:
			return fail("%w: the peer could not read the request (refusal %d)", ErrMalformed, code)
		}
	}
	a, err := openReply(c.cfg.Key, reqFrame, q, frame)
	if err != nil {
		return fail("%w", err)
	}
	switch a.Status {
	case statusOK:
	case statusNotFound:
		return fail("%w: %s", ErrNotFound, a.Message)
	case statusBadName:
		return fail("%w: %s", ErrBadName, a.Message)
	case statusStale, statusCorrupt:
		return fail("%w: %s (wait for the peer's next heartbeat)", ErrSumMismatch, a.Message)
	case statusTooLarge:
		return fail("%w: %s", ErrTooLarge, a.Message)
	case statusWrongCluster:
		return fail("%w: %s", ErrAuth, a.Message)
	default:
		return fail("%w: status %d", ErrMalformed, a.Status)
	}
	if int64(len(a.Content)) > c.cfg.MaxSize {
		return fail("%w: %d bytes, over the %d accepted", ErrTooLarge, len(a.Content), c.cfg.MaxSize)
	}
	// The reply is authentic, but only the checksum says it is the
	// version asked for.
	if got := sha256.Sum256(a.Content); got != sum || a.Sum != sum {
		return fail("%w: asked for sum %.12s, the peer says %.12s, the content hashes to %.12s",
			ErrSumMismatch, hex.EncodeToString(sum[:]), hex.EncodeToString(a.Sum[:]), hex.EncodeToString(got[:]))
	}
	return a.Content, a.Version, nil
}
