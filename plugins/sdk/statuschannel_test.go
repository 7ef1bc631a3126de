package sdk

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// echoDriver answers status with its rid as label, and whether its
// context had a deadline as the log.
type echoDriver struct{ ResourceDriver }

func (echoDriver) Status(ctx context.Context, r Resource) ResourceStatus {
	_, ok := ctx.Deadline()
	log := "no deadline"
	if ok {
		log = "deadline"
	}
	return ResourceStatus{Status: StatusUp, Label: r.RID, Log: []string{log}}
}

// openChannel opens a status channel in a private directory, serving this
// process (the test is its own core).
func openChannel(t *testing.T, allow func(int32) bool) (*statusChannel, string) {
	t.Helper()
	t.Setenv(plugin.EnvUnixSocketDir, t.TempDir())
	c := &statusChannel{impl: echoDriver{}, allow: allow}
	path, err := c.open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, path
}

func self(pid int32) bool { return pid == int32(os.Getpid()) }

func dial(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func call(t *testing.T, c net.Conn, m *proto.StatusCall) (*proto.StatusReply, error) {
	t.Helper()
	if _, err := proto.WriteFrame(c, nil, m); err != nil {
		// The channel closed the connection first (a refused caller):
		// no answer, as a failed read would say.
		return nil, err
	}
	var reply proto.StatusReply
	_, err := proto.ReadFrame(c, nil, &reply)
	return &reply, err
}

func TestStatusChannel_AnswersCallsOnOneConnection(t *testing.T) {
	_, path := openChannel(t, self)
	c := dial(t, path)
	for _, tc := range []struct {
		rid     string
		timeout time.Duration
		log     string
	}{
		{"app#1", time.Minute, "deadline"},
		{"app#2", 0, "no deadline"},
	} {
		reply, err := call(t, c, &proto.StatusCall{Request: &proto.ResourceRequest{Rid: tc.rid}, TimeoutNanos: int64(tc.timeout)})
		if err != nil {
			t.Fatal(err)
		}
		r := reply.GetResponse()
		if reply.GetError() != "" || r.GetStatus() != proto.Status_STATUS_UP || r.GetLabel() != tc.rid || r.GetLog()[0] != tc.log {
			t.Fatalf("reply %v, want up labelled %s, %q", reply, tc.rid, tc.log)
		}
	}
}

func TestStatusChannel_MalformedCallGetsAnErrorAndTheConnectionStays(t *testing.T) {
	_, path := openChannel(t, self)
	c := dial(t, path)
	if _, err := c.Write(binary.BigEndian.AppendUint32(nil, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte{0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	var reply proto.StatusReply
	if _, err := proto.ReadFrame(c, nil, &reply); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reply.GetError(), "could not read the status call") {
		t.Fatalf("reply to a malformed call: %v", &reply)
	}
	if reply, err := call(t, c, &proto.StatusCall{Request: &proto.ResourceRequest{Rid: "app#1"}}); err != nil || reply.GetResponse().GetLabel() != "app#1" {
		t.Fatalf("the call after a malformed one: %v, %v", reply, err)
	}
}

func TestStatusChannel_OversizedCallClosesTheConnection(t *testing.T) {
	_, path := openChannel(t, self)
	c := dial(t, path)
	if _, err := c.Write(binary.BigEndian.AppendUint32(nil, proto.MaxFrame+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after an oversized call: %v, want EOF", err)
	}
}

// By default only the plugin's parent (core) may call: this test process
// is not its own parent.
func TestStatusChannel_RefusesAProcessOtherThanItsParent(t *testing.T) {
	_, path := openChannel(t, nil)
	c := dial(t, path)
	if _, err := call(t, c, &proto.StatusCall{Request: &proto.ResourceRequest{Rid: "app#1"}}); err == nil {
		t.Fatal("a process other than the parent was answered")
	}
}

func TestStatusChannel_NeedsAPrivateSocketDirectory(t *testing.T) {
	t.Setenv(plugin.EnvUnixSocketDir, "")
	c := &statusChannel{impl: echoDriver{}}
	if _, err := c.open(); err == nil || !strings.Contains(err.Error(), plugin.EnvUnixSocketDir) {
		t.Fatalf("open without a socket directory: %v", err)
	}
}

func TestStatusChannel_CloseRemovesTheSocket(t *testing.T) {
	c, path := openChannel(t, self)
	c.close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket %s after close: %v", path, err)
	}
}
