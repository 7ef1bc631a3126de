package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// statusChannel serves the status channel of resource.proto
// (OpenStatusChannel) for one driver: status calls over a unix socket of
// their own, a frame in and a frame out on the connection's goroutine.
// A gRPC unary call hands each request through four goroutines on the
// two sides (the reader, the handler, the writer of each end) and costs
// about 25 system calls; on a 2-core VM that was 170-250 µs a call, where
// a write and a read each way cost 20-40 µs.
//
// The socket is made on first request, in the private directory core
// gives the plugin (PLUGIN_UNIX_SOCKET_DIR, the one go-plugin's own socket
// is in), and only the plugin's parent may call on it.
type statusChannel struct {
	impl ResourceDriver
	// allow says whether a connecting process may call; nil: the
	// plugin's parent alone (tests in one process allow themselves).
	allow func(pid int32) bool

	once sync.Once
	path string
	err  error
	ln   *net.UnixListener
}

// open makes the socket and starts accepting, once; it returns the
// socket's path.
func (c *statusChannel) open() (string, error) {
	c.once.Do(func() {
		dir := os.Getenv(plugin.EnvUnixSocketDir)
		if dir == "" {
			// Never a shared directory: others could reach, or
			// plant, the socket.
			c.err = fmt.Errorf("no private socket directory (%s unset)", plugin.EnvUnixSocketDir)
			return
		}
		f, err := os.CreateTemp(dir, "status") // as long as go-plugin's name: fits wherever its socket does
		if err != nil {
			c.err = fmt.Errorf("status channel: %w", err)
			return
		}
		path := f.Name()
		f.Close()
		os.Remove(path)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			c.err = fmt.Errorf("status channel: %w", err)
			return
		}
		c.path, c.ln = path, ln
		go c.accept(ln)
	})
	return c.path, c.err
}

// close removes the socket (a listener made by ListenUnix unlinks its
// file on Close); connections in flight end with the process.
func (c *statusChannel) close() {
	if c.ln != nil {
		c.ln.Close()
	}
}

func (c *statusChannel) accept(ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: core falls back to gRPC
			// meanwhile; try again shortly.
			logger.Warn("status channel: accept failed", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !c.allowed(conn) {
			conn.Close()
			continue
		}
		go c.serve(conn)
	}
}

// allowed checks the connecting process (SO_PEERCRED).
func (c *statusChannel) allowed(conn *net.UnixConn) bool {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return false
	}
	if c.allow != nil {
		return c.allow(cred.Pid)
	}
	if cred.Pid != int32(os.Getppid()) {
		logger.Warn("status channel: refused a connection from a process other than core", "pid", cred.Pid)
		return false
	}
	return true
}

// serve answers the calls of one connection until core closes it.
func (c *statusChannel) serve(conn *net.UnixConn) {
	defer conn.Close()
	var (
		buf  []byte
		call proto.StatusCall
		err  error
	)
	for {
		call.Reset()
		buf, err = proto.ReadFrame(conn, buf, &call)
		var reply *proto.StatusReply
		switch {
		case err == nil:
			reply = c.status(&call)
		case errors.Is(err, proto.ErrFrameMalformed):
			// Framed, but not a StatusCall: say so, the
			// connection stays usable.
			reply = &proto.StatusReply{Error: "plugin could not read the status call: " + err.Error()}
		default:
			return // closed, or a length past proto.MaxFrame: no way to resync
		}
		if buf, err = proto.WriteFrame(conn, buf, reply); err != nil {
			return
		}
	}
}

func (c *statusChannel) status(call *proto.StatusCall) *proto.StatusReply {
	ctx := context.Background()
	if t := call.GetTimeoutNanos(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t))
		defer cancel()
	}
	st := c.impl.Status(ctx, resourceFromProto(call.GetRequest()))
	return &proto.StatusReply{Response: statusToProto(st)}
}
