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

// BenchmarkLockDaemon_Handoff is how long a waiter (a sibling container's
// start behind the daemon's start) takes to get the lock once it is
// released: the polling period's share of a takeover.
func BenchmarkLockDaemon_Handoff(b *testing.B) {
	p := pathsFor(b.TempDir())
	if err := prepareDaemonDir(p); err != nil {
		b.Fatal(err)
	}
	d := New(Config{})
	ctx := context.Background()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		unlock, err := d.lockDaemon(ctx, p, true)
		if err != nil {
			b.Fatal(err)
		}
		got := make(chan time.Time)
		go func() {
			u, err := d.lockDaemon(ctx, p, false)
			if err != nil {
				b.Error(err)
			}
			got <- time.Now()
			u()
		}()
		time.Sleep(3 * time.Millisecond) // the waiter is polling
		released := time.Now()
		unlock()
		total += (<-got).Sub(released)
	}
	b.ReportMetric(float64(total)/float64(b.N)/float64(time.Millisecond), "handoff-ms")
}
