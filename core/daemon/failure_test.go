package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/status"
)

// hostName is this node's name for a daemon without cluster.conf.
func hostName(t testing.TB) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// syncBuffer is a log sink read while the daemon writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDaemon_FailedStartShowsItsReasonAndOutlivesARestart(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	conf := "[DEFAULT]\nnodes = " + hostName(t) + "\norchestrate = start\n\n[app#1]\ntype = test\nfile = " + filepath.Join(base, "m") + "\nfail = true\n"
	os.WriteFile(filepath.Join(etc, "web.conf"), []byte(conf), 0o600)
	n := startDaemon(t, etc)
	logs := &syncBuffer{}
	ctx := context.Background()
	err := n.client.Action(ctx, "web", api.ActionRequest{Action: "start"}, func(string) {})
	if err == nil {
		t.Fatal("a start that fails succeeded")
	}
	check := func(when string) {
		t.Helper()
		var s *status.Service
		waitFor(t, "the failed state "+when, 5*time.Second, func() bool {
			s = localService(t, n.client, "web")
			return s != nil && s.State == "start failed"
		})
		if !s.Failed() || !strings.Contains(s.Reason, "app#1") || !strings.Contains(s.Reason, "svcmgr -s web start") {
			t.Fatalf("%s: state %q reason %q; want start failed, the error and what clears it", when, s.State, s.Reason)
		}
	}
	check("after the start")

	// vigild restarts: orchestrate = start does not retry a failed start,
	// and says why in the log.
	n.stop()
	n.cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: logs})
	n.start(t)
	check("after a vigild restart")
	waitFor(t, "the log line", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "service left failed by a former run") && strings.Contains(logs.String(), "svcmgr -s web start")
	})
}

func TestDaemon_RefusesToStartOnANodeNotInNodes(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	marker := filepath.Join(base, "m")
	os.WriteFile(filepath.Join(etc, "web.conf"), []byte("[DEFAULT]\nnodes = othernode\n\n[app#1]\ntype = test\nfile = "+marker+"\n"), 0o600)
	n := startDaemon(t, etc)
	err := n.client.Action(context.Background(), "web", api.ActionRequest{Action: "start"}, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "may run on othernode only") {
		t.Fatalf("start on a node not in nodes: %v; want a refusal naming the nodes", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the service started anyway")
	}
}

func TestDaemon_RefusesAnActionWhileTheFileDoesNotValidate(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	marker := filepath.Join(base, "m")
	path := filepath.Join(etc, "web.conf")
	good := "[DEFAULT]\nnodes = " + hostName(t) + "\n\n[app#1]\ntype = test\nfile = " + marker + "\n"
	os.WriteFile(path, []byte(good), 0o600)
	n := startDaemon(t, etc)
	waitFor(t, "a first evaluation", 5*time.Second, func() bool { return localService(t, n.client, "web") != nil })

	// A hand edit with a typo on line 7, made just now: the action reads
	// the file as it is, whatever the last scan saw.
	os.WriteFile(path, []byte(good+"fiel = x\n"), 0o600)
	future := time.Now().Add(time.Minute) // a new mtime even on a coarse clock
	os.Chtimes(path, future, future)
	err := n.client.Action(context.Background(), "web", api.ActionRequest{Action: "start"}, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), path+":7") {
		t.Fatalf("start with a file that does not validate: %v; want a refusal naming %s:7", err, path)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("started with the last valid version")
	}
	// A stop still goes ahead, saying which version it uses.
	var lines []string
	if err := n.client.Action(context.Background(), "web", api.ActionRequest{Action: "stop"}, func(l string) { lines = append(lines, l) }); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "stopping with the last valid version") {
		t.Fatalf("stop said %q; want it to say the file does not validate", lines)
	}
}

func TestDaemon_NewServiceFileIsKnownAtOnce(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	n := startDaemon(t, etc)
	n.cfg.ScanInterval = time.Hour // not relied upon: the daemon runs already with 200ms
	marker := filepath.Join(base, "m")
	os.WriteFile(filepath.Join(etc, "fresh.conf"), []byte("[DEFAULT]\nnodes = "+hostName(t)+"\n\n[app#1]\ntype = test\nfile = "+marker+"\n"), 0o600)
	if err := n.client.Action(context.Background(), "fresh", api.ActionRequest{Action: "start"}, func(string) {}); err != nil {
		t.Fatalf("start of a file written just now: %v", err)
	}
	err := n.client.Action(context.Background(), "frsh", api.ActionRequest{Action: "start"}, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "did you mean fresh?") || !errors.Is(action.ErrNoService, action.ErrNoService) {
		t.Fatalf("a typo in the name: %v; want a suggestion", err)
	}
}

func TestDaemon_MonitoredResourceIsRestartedByDefault(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	marker := filepath.Join(base, "m")
	// monitor = true and nothing else: one crash must not leave a
	// single-node service down for good.
	os.WriteFile(filepath.Join(etc, "web.conf"), []byte("[DEFAULT]\nnodes = "+hostName(t)+"\nmonitor_schedule = 0.2s\n\n[app#1]\ntype = test\nfile = "+marker+"\nmonitor = true\n"), 0o600)
	n := startDaemon(t, etc)
	if err := n.client.Action(context.Background(), "web", api.ActionRequest{Action: "start"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "up", 5*time.Second, func() bool {
		s := localService(t, n.client, "web")
		return s != nil && s.Avail == status.Up && s.State == "started"
	})
	os.Remove(marker)
	waitFor(t, "the monitor to restart it in place", 10*time.Second, func() bool { _, err := os.Stat(marker); return err == nil })
	// The restart's end too (its state written), before the test's
	// directories go.
	waitFor(t, "the restart to finish", 10*time.Second, func() bool {
		s := localService(t, n.client, "web")
		return s != nil && (s.State == "started" || s.Failed())
	})
	if s := localService(t, n.client, "web"); s.Failed() {
		t.Fatalf("state %q after one crash, want it restarted", s.State)
	}
}
