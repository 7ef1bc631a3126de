package plugin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
)

// channelOf returns the status channel the host holds for a binary, nil
// when its status calls go over gRPC.
func channelOf(h *Host, binary string) *statusChannel {
	h.mu.Lock()
	inst := h.plugins[binary]
	h.mu.Unlock()
	if inst == nil {
		return nil
	}
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.channel
}

func TestStatus_AnsweredOverTheStatusChannel(t *testing.T) {
	h, d := testDriver(t)
	ctx := context.Background()
	if channelOf(h, BinaryPrefix+"test") == nil {
		t.Fatal("an SDK plugin offers no status channel")
	}
	marker := filepath.Join(t.TempDir(), "marker")
	if st := d.Status(ctx, testRequest(marker, nil)); st.Status != status.Down || st.Label != marker {
		t.Fatalf("status without the marker: %+v, want down labelled %s", st, marker)
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(ctx, testRequest(marker, nil)); st.Status != status.Up {
		t.Fatalf("status with the marker: %+v, want up", st)
	}
}

// A plugin stalled in its status is bounded by the caller's deadline, on
// the status channel as over gRPC; it is not taken for dead, and the next
// call is answered.
func TestStatus_StalledPluginTimesOutAndIsNotRestarted(t *testing.T) {
	h, d := testDriver(t)
	ctx := context.Background()
	marker := filepath.Join(t.TempDir(), "marker")
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	st := d.Status(short, testRequest(marker, map[string]string{"status_delay": "1h"}))
	if st.Status != status.Undef || len(st.Log) == 0 || !strings.Contains(st.Log[0], context.DeadlineExceeded.Error()) {
		t.Fatalf("a stalled status = %+v, want undef with the deadline as reason", st)
	}
	// Cancelled rather than timed out: the same.
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); ccancel() }()
	st = d.Status(cctx, testRequest(marker, map[string]string{"status_delay": "1h"}))
	if st.Status != status.Undef || len(st.Log) == 0 || !strings.Contains(st.Log[0], context.Canceled.Error()) {
		t.Fatalf("a cancelled status = %+v, want undef with the cancel as reason", st)
	}
	if st := d.Status(ctx, testRequest(marker, nil)); st.Status != status.Down {
		t.Fatalf("status after the stalls: %+v, want down", st)
	}
	if got := h.Restarts()[BinaryPrefix+"test"]; got != 0 {
		t.Fatalf("a stalled call restarted the plugin %d times", got)
	}
}

// A plugin killed between two status calls leaves idle connections of its
// channel behind: the next call must not hang on them nor read a wrong
// status, and the plugin is restarted with a channel of its own.
func TestStatus_PluginKilledBetweenCallsIsRestarted(t *testing.T) {
	h, d := testDriver(t)
	ctx := context.Background()
	marker := filepath.Join(t.TempDir(), "marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(ctx, testRequest(marker, nil)); st.Status != status.Up {
		t.Fatalf("status: %+v", st)
	}
	before := channelOf(h, BinaryPrefix+"test")
	pid := h.PIDs()[BinaryPrefix+"test"]
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	// The call that meets the dead process may read undef (plugin
	// died); the one after it is answered by a new process.
	st := d.Status(ctx, testRequest(marker, nil))
	if st.Status == status.Undef {
		if len(st.Log) == 0 || !strings.Contains(st.Log[0], ErrPluginDied.Error()) {
			t.Fatalf("the call meeting the dead plugin: %+v, want undef naming the death", st)
		}
		st = d.Status(ctx, testRequest(marker, nil))
	}
	if st.Status != status.Up {
		t.Fatalf("status after the kill: %+v, want up", st)
	}
	if got := h.Restarts()[BinaryPrefix+"test"]; got != 1 {
		t.Fatalf("restarts = %d, want 1", got)
	}
	if after := channelOf(h, BinaryPrefix+"test"); after == nil || after == before {
		t.Fatalf("the restarted plugin's status channel: %p (before %p)", after, before)
	}
}

// A plugin built before the status channel answers Unimplemented to
// OpenStatusChannel: its status goes over gRPC, without a warning.
func TestStatus_PluginWithoutStatusChannelAnsweredOverGRPC(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "oldsdk", "old")
	h := newTestHost(t, dir)
	ctx := context.Background()
	d, err := h.Driver(ctx, "app.old")
	if err != nil {
		t.Fatal(err)
	}
	if ch := channelOf(h, BinaryPrefix+"old"); ch != nil {
		t.Fatalf("an old plugin has a status channel: %s", ch.path)
	}
	marker := filepath.Join(t.TempDir(), "marker")
	req := Request{Service: ServiceEnv{Name: "svc"}, RID: "app#1", Type: "app.old", Keywords: map[string]string{"file": marker}}
	if st := d.Status(ctx, req); st.Status != status.Down || st.Label != "old" {
		t.Fatalf("status: %+v, want down", st)
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(ctx, req); st.Status != status.Up {
		t.Fatalf("status: %+v, want up", st)
	}
}

// The status channel's socket gone while the plugin lives: calls go over
// gRPC and are still answered.
func TestStatus_ChannelSocketGoneFallsBackToGRPC(t *testing.T) {
	h, d := testDriver(t)
	ctx := context.Background()
	ch := channelOf(h, BinaryPrefix+"test")
	if ch == nil {
		t.Fatal("no status channel")
	}
	ch.mu.Lock() // no idle connection left to reuse...
	idle := ch.idle
	ch.idle = nil
	ch.mu.Unlock()
	for _, cc := range idle {
		cc.c.Close()
	}
	if err := os.Remove(ch.path); err != nil { // ...and none to dial
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "marker")
	for range 2 {
		if st := d.Status(ctx, testRequest(marker, nil)); st.Status != status.Down {
			t.Fatalf("status with the channel gone: %+v, want down", st)
		}
	}
	if got := h.Restarts()[BinaryPrefix+"test"]; got != 0 {
		t.Fatalf("a missing channel restarted the plugin %d times", got)
	}
	if _, err := ch.get(ctx); err == nil {
		t.Fatalf("the channel is not marked unreachable: %v", err)
	}
}

// testDriver is a host over the test plugin alone and its app.test driver.
func testDriver(t *testing.T) (*Host, Driver) {
	t.Helper()
	dir := t.TempDir()
	buildPlugin(t, dir, "testplugin", "test")
	h := newTestHost(t, dir)
	d, err := h.Driver(context.Background(), "app.test")
	if err != nil {
		t.Fatal(err)
	}
	return h, d
}
