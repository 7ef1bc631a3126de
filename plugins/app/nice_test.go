package app

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

func TestSimple_RunsAtNormalPriorityUnderANicedPlugin(t *testing.T) {
	requireRoot(t)
	// The test plays vigild's plugin at Nice=-10, put back after. A
	// niceness is a thread's: the start forks from this goroutine, kept
	// on this thread.
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	before := ownNiceness()
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, -10); err != nil {
		t.Skipf("cannot renice the test process: %v", err)
	}
	t.Cleanup(func() { _ = unix.Setpriority(unix.PRIO_PROCESS, 0, before) })
	out := filepath.Join(t.TempDir(), "nice")
	r := resource(t, TypeSimple, map[string]string{"start": `/bin/sh -c '/usr/bin/nice > ` + out + `; exec /bin/sleep 600'`})
	d := New(Config{})
	t.Cleanup(func() { _, _ = d.Stop(testCtx(t, 30*time.Second), r) })
	if _, err := d.Start(testCtx(t, 30*time.Second), r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusUp)
	b, _ := os.ReadFile(out)
	if got := strings.TrimSpace(string(b)); got != "0" {
		t.Errorf("the app runs at niceness %q, want 0", got)
	}
}
