package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
)

// fixedBackend is a model of vigild serving a fixed cluster status: two
// nodes, registry up on node1, busybox up on node2, web on node2 only.
type fixedBackend struct {
	events chan api.Event
}

var _ api.Backend = (*fixedBackend)(nil)

func (b *fixedBackend) Status(context.Context) *api.ClusterStatus {
	inst := func(name string, st status.Status) *cluster.ServiceInstance {
		rs := []status.Resource{
			{RID: "ip#1", Group: "ip", Status: st},
			{RID: "fs#1", Group: "fs", Status: st},
			{RID: "sync#i0", Group: "sync", Status: status.Up},
		}
		return &cluster.ServiceInstance{Status: status.Summarize(name, rs), Nodes: []string{"node1", "node2"}}
	}
	return &api.ClusterStatus{
		Cluster: "lab", Local: "node1", Nodes: []string{"node1", "node2"},
		Node: map[string]*api.NodeStatus{
			"node1": {State: cluster.Ready, Services: map[string]*cluster.ServiceInstance{
				"registry": inst("registry", status.Up), "busybox": inst("busybox", status.Down),
			}},
			"node2": {State: cluster.Ready, HB: map[string]*cluster.HBSeen{"hb#1": {}}, Services: map[string]*cluster.ServiceInstance{
				"registry": inst("registry", status.Down), "busybox": inst("busybox", status.Up),
				"web": inst("web", status.Up),
			}},
		},
	}
}

func (b *fixedBackend) Action(context.Context, string, api.ActionRequest, func(string)) error {
	return errors.New("not in this test")
}
func (b *fixedBackend) ConfigGet(context.Context, string) ([]byte, error) { return nil, os.ErrNotExist }
func (b *fixedBackend) ConfigSet(context.Context, string, []string) error {
	return errors.New("not in this test")
}
func (b *fixedBackend) ConfigCommit(context.Context, string) error {
	return errors.New("not in this test")
}

func (b *fixedBackend) Subscribe(ctx context.Context) <-chan api.Event {
	ch := make(chan api.Event)
	go func() {
		defer close(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-b.events:
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch
}

// startDaemon serves b on a socket in a fresh run directory (short: unix
// socket paths are limited to 108 bytes) and returns the directory.
func startDaemon(t *testing.T, b api.Backend) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid := os.Getuid()
	srv, err := api.Listen(api.ServerConfig{Socket: filepath.Join(dir, api.SocketName), Backend: b, AllowUID: &uid})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return dir
}

// svcmon runs the command in-process and returns its stdout and stderr.
func svcmon(ctx context.Context, out, errOut *syncBuffer, args ...string) error {
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	return cmd.ExecuteContext(ctx)
}

// syncBuffer is a bytes.Buffer safe to read while svcmon --watch writes.
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

func TestSvcmon_AgainstDaemon(t *testing.T) {
	dir := startDaemon(t, &fixedBackend{})
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
		stderr  string
	}{
		{
			name: "local table, all services by name",
			want: `service              service container container ip        disk       fs         share      app        hb        sync      avail      overall
name                 type    type      status    status    status     status     status     status     status    status    status     status     frozen
-------              ------- --------- --------- ------    ------     ------     ------     ------     ------    ------    ------     -------    ------
busybox              -       hosted    n/a       down      n/a        down       n/a        n/a        n/a       up        down       down       False
registry             -       hosted    n/a       up        n/a        up         n/a        n/a        n/a       up        up         up         False
`,
		},
		{
			name: "service filter keeps its order",
			args: []string{"--service=registry,busybox"},
			want: `service              service container container ip        disk       fs         share      app        hb        sync      avail      overall
name                 type    type      status    status    status     status     status     status     status    status    status     status     frozen
-------              ------- --------- --------- ------    ------     ------     ------     ------     ------    ------    ------     -------    ------
registry             -       hosted    n/a       up        n/a        up         n/a        n/a        n/a       up        up         up         False
busybox              -       hosted    n/a       down      n/a        down       n/a        n/a        n/a       up        down       down       False
`,
		},
		{
			name: "cluster",
			args: []string{"--cluster", "-s", "busybox"},
			want: `cluster lab, seen from node1
  node1  ready  local
  node2  ready  hb#1 ok

service              service cluster  node1 (ready)         node2 (ready)
name                 type    avail    avail overall frozen  avail overall frozen
-------              ------- -------  ----- ------- ------  ----- ------- ------
busybox              -       up       down  down    False   up    up      False
`,
		},
		{
			name: "a service only peers run is named on stderr",
			args: []string{"--service=web,busybox"},
			want: `service              service container container ip        disk       fs         share      app        hb        sync      avail      overall
name                 type    type      status    status    status     status     status     status     status    status    status     status     frozen
-------              ------- --------- --------- ------    ------     ------     ------     ------     ------    ------    ------     -------    ------
busybox              -       hosted    n/a       down      n/a        down       n/a        n/a        n/a       up        down       down       False
`,
			stderr: "svcmon: web not on node1: see svcmon --cluster\n",
		},
		{
			name:    "unknown service",
			args:    []string{"--service=nope"},
			wantErr: "no node of the cluster has service nope (services: busybox, registry, web)",
		},
		{
			name:    "bad format",
			args:    []string{"--format=yaml"},
			wantErr: `--format "yaml": use text or json`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut syncBuffer
			err := svcmon(t.Context(), &out, &errOut, append([]string{"--run-dir", dir}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			if got := errOut.String(); got != tt.stderr {
				t.Errorf("stderr = %q, want %q", got, tt.stderr)
			}
		})
	}
}

func TestSvcmon_JSONIsTheFilteredClusterStatus(t *testing.T) {
	dir := startDaemon(t, &fixedBackend{})
	var out, errOut syncBuffer
	if err := svcmon(t.Context(), &out, &errOut, "--run-dir", dir, "--format", "json", "--service", "busybox"); err != nil {
		t.Fatal(err)
	}
	var cs api.ClusterStatus
	if err := json.Unmarshal([]byte(out.String()), &cs); err != nil {
		t.Fatalf("%v in:\n%s", err, out.String())
	}
	if cs.Cluster != "lab" || cs.Local != "node1" || len(cs.Node) != 2 {
		t.Fatalf("status = %+v", cs)
	}
	for n, ns := range cs.Node {
		if len(ns.Services) != 1 || ns.Services["busybox"] == nil {
			t.Errorf("%s services = %v, want busybox only", n, ns.Services)
		}
	}
	if got := cs.Node["node2"].Services["busybox"].Status.Avail; got != status.Up {
		t.Errorf("node2 busybox avail = %s", got)
	}
}

func TestSvcmon_NoDaemonSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	var out, errOut syncBuffer
	err := svcmon(t.Context(), &out, &errOut, "--run-dir", dir)
	want := "no vigild answers on " + filepath.Join(dir, api.SocketName) + ": start vigild, or use svcmgr -s NAME print status"
	if err == nil || err.Error() != want || !errors.Is(err, api.ErrNoDaemon) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	// A stale socket file with nobody behind it reads the same.
	if err := os.WriteFile(filepath.Join(dir, api.SocketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := svcmon(t.Context(), &out, &errOut, "--run-dir", dir); err == nil || err.Error() != want {
		t.Fatalf("stale socket: err = %v, want %q", err, want)
	}
}

func TestSvcmon_WatchRedrawsOnEventsUntilCancelled(t *testing.T) {
	b := &fixedBackend{events: make(chan api.Event)}
	dir := startDaemon(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- svcmon(ctx, &out, &errOut, "--run-dir", dir, "--watch", "--cluster") }()

	frames := func() int { return strings.Count(out.String(), clearScreen) }
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for frames() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d frames after 3s, want %d:\n%s", frames(), n, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(1)
	// The subscription may not be up yet when the first frame is drawn:
	// send until one event gets through.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		select {
		case b.events <- api.Event{Kind: "status", Node: "node2", Service: "busybox"}:
		case <-ctx.Done():
		}
	}()
	waitFor(2)
	cancel()
	<-sent
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch ended with %v, want nil on Ctrl-C", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("watch did not end after cancel")
	}
	last := out.String()[strings.LastIndex(out.String(), clearScreen):]
	for _, want := range []string{"cluster lab, seen from node1", "busybox ", "Ctrl-C quits"} {
		if !strings.Contains(last, want) {
			t.Errorf("frame lacks %q:\n%s", want, last)
		}
	}
}

func TestSvcmon_WatchRefusesJSON(t *testing.T) {
	var out, errOut syncBuffer
	err := svcmon(t.Context(), &out, &errOut, "--run-dir", t.TempDir(), "--watch", "--format", "json")
	if err == nil || !strings.Contains(err.Error(), "drop --format json") {
		t.Fatalf("err = %v", err)
	}
}

// TestNonRoot_SvcmonSaysRootIsNeeded: with vigild's run directory root's,
// another user is told to use root, not to start a vigild that runs.
func TestNonRoot_SvcmonSaysRootIsNeeded(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run svcmon as another user")
	}
	dir, err := os.MkdirTemp("", "vigil-svcmon-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "svcmon")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build svcmon: %v\n%s", err, out)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, api.SocketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "VIGIL_RUN_DIR=" + run}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "root's only: run this as root") || strings.Contains(string(out), "start vigild") {
		t.Fatalf("svcmon as nobody: %v\n%s\nwant it to say root is needed", err, out)
	}
}
