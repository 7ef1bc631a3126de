package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/plugin/plugintest"
	"github.com/vigil-ha/vigil/core/status"
)

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}

type testNode struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan error
	client *api.Client
}

// startDaemon runs a daemon in this process on dirs of its own.
func startDaemon(t *testing.T, configDir string) *testNode {
	t.Helper()
	run, err := os.MkdirTemp("", "vd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	uid := os.Getuid()
	n := &testNode{cfg: Config{ConfigDir: configDir, StateDir: filepath.Join(configDir, "..", "state"), RunDir: run,
		PluginDir: plugintest.Dir(t), AllowUID: &uid, ScanInterval: 200 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})}}
	n.start(t)
	return n
}

func (n *testNode) start(t *testing.T) {
	t.Helper()
	d, err := New(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- d.Run(ctx) }()
	t.Cleanup(n.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n.client, err = api.Dial(filepath.Join(n.cfg.RunDir, api.SocketName)); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *testNode) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func localService(t *testing.T, c *api.Client, name string) *status.Service {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if inst := st.Node[st.Local].Services[name]; inst != nil {
		return &inst.Status
	}
	return nil
}

func TestDaemon_ActionsStatusStateAndConfigSet(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	marker := filepath.Join(base, "marker")
	svcPath := filepath.Join(etc, "web.conf")
	os.WriteFile(svcPath, []byte("[DEFAULT]\nnodes = "+hostName(t)+"\nstatus_schedule = 1s\n\n[app#1]\ntype = test\nfile = "+marker+"\n"), 0o600)
	n := startDaemon(t, etc)
	ctx := context.Background()

	waitFor(t, "a first evaluation", 5*time.Second, func() bool {
		s := localService(t, n.client, "web")
		return s != nil && s.Avail == status.Down
	})
	var lines []string
	if err := n.client.Action(ctx, "web", api.ActionRequest{Action: "start"}, func(l string) { lines = append(lines, l) }); err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "start app#1") {
		t.Fatalf("no progress lines: %v", lines)
	}
	waitFor(t, "web up", 5*time.Second, func() bool { return localService(t, n.client, "web").Avail == status.Up })

	// The action's result survives a restart of the daemon.
	n.stop()
	b, err := os.ReadFile(filepath.Join(n.cfg.StateDir, "services", "web", "state.json"))
	if err != nil || !strings.Contains(string(b), `"last_action": "start"`) {
		t.Fatalf("state not persisted: %v %s", err, b)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("stopping the daemon stopped the service")
	}
	n.start(t)
	waitFor(t, "web up after restart", 5*time.Second, func() bool {
		s := localService(t, n.client, "web")
		return s != nil && s.Avail == status.Up
	})

	// A change that does not validate is refused and changes nothing.
	before, _ := os.ReadFile(svcPath)
	err = n.client.ConfigSet(ctx, "web", []string{"orchestrate=sometimes"})
	if err == nil || !strings.Contains(err.Error(), "orchestrate") {
		t.Fatalf("invalid set accepted: %v", err)
	}
	if after, _ := os.ReadFile(svcPath); string(after) != string(before) {
		t.Fatal("a refused set changed the file")
	}
	if err := n.client.ConfigSet(ctx, "web", []string{"orchestrate=ha"}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(svcPath); !strings.Contains(string(after), "orchestrate = ha") {
		t.Fatalf("set not written:\n%s", after)
	}
	if err := n.client.Action(ctx, "web", api.ActionRequest{Action: "stop"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("stop did not stop")
	}
	// The status JSON carries everything svcmon needs.
	st, _ := n.client.Status(ctx)
	js, _ := json.Marshal(st)
	if !strings.Contains(string(js), `"sync#i0"`) {
		t.Fatalf("status lacks the sync branch: %s", js)
	}
}

func TestDaemon_RefusesNonRootCallers(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	n := startDaemon(t, etc)
	fi, err := os.Stat(filepath.Join(n.cfg.RunDir, api.SocketName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	// A daemon that only lets another uid in refuses us.
	other := os.Getuid() + 1
	n2 := &testNode{cfg: n.cfg}
	n2.cfg.AllowUID = &other
	run, _ := os.MkdirTemp("", "vd")
	defer os.RemoveAll(run)
	n2.cfg.RunDir = run
	d, err := New(n2.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sock := filepath.Join(run, api.SocketName)
	waitFor(t, "socket", 5*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	c, err := api.Dial(sock)
	if err == nil {
		if _, err = c.Status(context.Background()); err == nil {
			t.Fatal("a caller of another uid was served")
		}
	}
}

func TestDaemon_MonitorRestartsThenFailsOver(t *testing.T) {
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	marker := filepath.Join(base, "marker")
	os.WriteFile(filepath.Join(etc, "web.conf"), []byte("[DEFAULT]\nnodes = "+hostName(t)+"\nmonitor_schedule = 0.2s\n\n[app#1]\ntype = test\nfile = "+marker+"\nmonitor = true\nrestart = 1\n"), 0o600)
	n := startDaemon(t, etc)
	ctx := context.Background()
	if err := n.client.Action(ctx, "web", api.ActionRequest{Action: "start"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		b, _ := os.ReadFile(filepath.Join(n.cfg.StateDir, "services", "web", "state.json"))
		var p persisted
		json.Unmarshal(b, &p)
		return p.State
	}
	waitFor(t, "started", 5*time.Second, func() bool { return state() == "started" })

	// Down once: restarted in place.
	os.Remove(marker)
	waitFor(t, "the monitor to restart it", 10*time.Second, func() bool { _, err := os.Stat(marker); return err == nil })
	if s := state(); s != "started" {
		t.Fatalf("after a restart the instance is %q", s)
	}
	// Down again, past its budget of one restart: stopped here, and this
	// node leaves the candidates (failover).
	waitFor(t, "the status to see it up again", 10*time.Second, func() bool {
		s := localService(t, n.client, "web")
		return s != nil && s.Avail == status.Up
	})
	os.Remove(marker)
	waitFor(t, "failover (instance failed)", 10*time.Second, func() bool { return state() == "failed" })
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("restarted past its budget")
	}
}
