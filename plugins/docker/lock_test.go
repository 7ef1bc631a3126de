package docker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Two Drivers share nothing in memory, like two plugin processes: only
// the flock on daemon.lock keeps them apart.
func TestLockDaemon_ExcludesAcrossDrivers(t *testing.T) {
	p := pathsFor(t.TempDir())
	if err := prepareDaemonDir(p); err != nil {
		t.Fatal(err)
	}
	d1, d2 := New(Config{}), New(Config{})
	ctx := context.Background()

	unlock, err := d1.lockDaemon(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := d2.lockDaemon(short, p, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shared lock while another driver holds it exclusive: err = %v, want a deadline error", err)
	}
	unlock()

	u1, err := d1.lockDaemon(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := d2.lockDaemon(ctx, p, false)
	if err != nil {
		t.Fatalf("two shared holders: %v", err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := d1.lockDaemon(short2, p, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exclusive lock while shared holders remain: err = %v, want a deadline error", err)
	}
	u1()
	u2()
	u3, err := d2.lockDaemon(ctx, p, true)
	if err != nil {
		t.Fatalf("exclusive lock once released: %v", err)
	}
	u3()
}

func TestPrepareDaemonDir_RejectsLongSocketPath(t *testing.T) {
	long := "/tmp/" + strings.Repeat("x", 120)
	if err := prepareDaemonDir(pathsFor(long)); err == nil {
		t.Fatal("a socket path over the unix limit was accepted")
	}
}
