package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// statusChannel is the client of a plugin's status channel (resource.proto,
// OpenStatusChannel): status calls as one frame out and one frame back on
// a unix connection, on the caller's goroutine. gRPC hands a unary call
// through a writer and a reader goroutine on each side, about 25 system
// calls in all; on this project's 2-core VM that cost 170-250 µs a call,
// where the channel costs what the socket does.
//
// It keeps idle connections for the next calls and dials one more when
// all are busy (status calls of many services run at once). It belongs to
// one plugin process: a restart makes a new one.
type statusChannel struct {
	path string
	log  hclog.Logger

	mu     sync.Mutex
	idle   []*channelConn
	closed bool
	// broken is set when a dial failed: the plugin's socket is gone while
	// its process may live on, so calls go over gRPC until a restart.
	broken bool
}

// maxIdleChannelConns bounds the idle connections kept per plugin.
const maxIdleChannelConns = 8

// channelConn is one connection and its frame buffer.
type channelConn struct {
	c   *net.UnixConn
	buf []byte
}

// errChannelDown: the channel could not carry the call (the dial failed or
// the connection broke); the caller asks over gRPC, which tells a dead
// plugin from a live one.
var errChannelDown = errors.New("status channel down")

// errBadAnswer: the plugin answered with a frame core refuses.
var errBadAnswer = errors.New("bad answer on the status channel")

// longAgo is a deadline in the past: it ends a read or write at once.
var longAgo = time.Unix(1, 0)

// status makes one status call. ctx must carry a deadline.
func (s *statusChannel) status(ctx context.Context, req *proto.ResourceRequest) (*proto.StatusResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cc, err := s.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errChannelDown, err)
	}
	call := &proto.StatusCall{Request: req}
	dl, ok := ctx.Deadline()
	if ok {
		call.TimeoutNanos = int64(time.Until(dl))
	}
	cc.c.SetDeadline(dl) // zero when ctx has none: no deadline
	// A cancel before the deadline ends the call too.
	stop := context.AfterFunc(ctx, func() { cc.c.SetDeadline(longAgo) })
	var reply proto.StatusReply
	cc.buf, err = proto.WriteFrame(cc.c, cc.buf, call)
	if err == nil {
		cc.buf, err = proto.ReadFrame(cc.c, cc.buf, &reply)
	}
	intact := stop() // false: the AfterFunc spent the connection's deadline
	if err != nil {
		cc.c.Close()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The socket's deadline fired a hair before ctx's timer.
			return nil, context.DeadlineExceeded
		case errors.Is(err, proto.ErrFrameTooLarge), errors.Is(err, proto.ErrFrameMalformed):
			return nil, fmt.Errorf("%w: %v", errBadAnswer, err)
		}
		return nil, fmt.Errorf("%w: %v", errChannelDown, err)
	}
	if intact {
		s.put(cc)
	} else {
		cc.c.Close()
	}
	if reply.GetError() != "" {
		return nil, errors.New(reply.GetError())
	}
	if reply.GetResponse() == nil {
		return nil, fmt.Errorf("%w: no status in the reply", errBadAnswer)
	}
	return reply.GetResponse(), nil
}

// get returns an idle connection, or a new one.
func (s *statusChannel) get(ctx context.Context) (*channelConn, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, errors.New("status channel closed")
	case s.broken:
		s.mu.Unlock()
		return nil, errors.New("status channel unreachable")
	}
	if n := len(s.idle); n > 0 {
		cc := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		return cc, nil
	}
	s.mu.Unlock()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.path)
	if err != nil {
		if ctx.Err() == nil {
			s.mu.Lock()
			s.broken = true
			s.mu.Unlock()
			s.log.Warn("status channel unreachable; status calls go over gRPC until the plugin restarts", "error", err)
		}
		return nil, err
	}
	return &channelConn{c: c.(*net.UnixConn)}, nil
}

// put keeps cc for a later call, or closes it when enough are idle.
func (s *statusChannel) put(cc *channelConn) {
	s.mu.Lock()
	if s.closed || len(s.idle) >= maxIdleChannelConns {
		s.mu.Unlock()
		cc.c.Close()
		return
	}
	s.idle = append(s.idle, cc)
	s.mu.Unlock()
}

// close closes the idle connections; calls in flight end on their own.
func (s *statusChannel) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	idle := s.idle
	s.idle, s.closed = nil, true
	s.mu.Unlock()
	for _, cc := range idle {
		cc.c.Close()
	}
}

// openStatusChannel asks the plugin for its status channel; nil when it
// has none (a plugin built with an SDK before it, a heartbeat or fencing
// plugin), and status calls go over gRPC.
func (i *instance) openStatusChannel(rpc proto.ResourceDriverClient) *statusChannel {
	ctx, cancel := context.WithTimeout(context.Background(), i.host.cfg.StartTimeout)
	defer cancel()
	resp, err := rpc.OpenStatusChannel(ctx, &proto.StatusChannelRequest{})
	if err != nil {
		if !isUnimplemented(err) {
			i.host.log.Warn("plugin has no status channel; its status calls go over gRPC", "plugin", pluginName(i.binary), "error", err)
		}
		return nil
	}
	if resp.GetVersion() != proto.FrameVersion || resp.GetPath() == "" {
		i.host.log.Warn("plugin offers a status channel this vigil does not speak; its status calls go over gRPC",
			"plugin", pluginName(i.binary), "version", resp.GetVersion())
		return nil
	}
	return &statusChannel{path: resp.GetPath(), log: i.host.log.With("plugin", pluginName(i.binary))}
}
