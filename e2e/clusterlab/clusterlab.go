// Package cluster_test runs several vigild processes on this machine, each
// in a network namespace of its own on a bridge, with a network and a disk
// heartbeat, and checks what the cluster daemon must show.
package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// bins holds vigild, the heartbeat plugins and the test resource plugin.
func bins(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "vigil-e2e-bin-")
		if binErr != nil {
			return
		}
		build := func(out, pkg string) {
			if binErr != nil {
				return
			}
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, out), pkg)
			cmd.Dir = repoRoot()
			if b, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("build %s: %v\n%s", pkg, err, b)
			}
		}
		build("vigild", "./cmd/vigild")
		build("vigil-plugin-hb-net", "./plugins/hb-net/cmd/vigil-plugin-hb-net")
		build("vigil-plugin-hb-disk", "./plugins/hb-disk/cmd/vigil-plugin-hb-disk")
		build("vigil-plugin-test", "./core/plugin/testdata/testplugin")
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2; run make deps)")
	}
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// lab is a few vigild nodes in namespaces of their own.
type lab struct {
	t        *testing.T
	id       string
	nodes    []*node
	subnet   string
	hbDisk   string
	interval time.Duration
	timeout  time.Duration
}

type node struct {
	name   string
	ns     string
	addr   string
	etc    string
	state  string
	run    string
	cmd    *exec.Cmd
	done   chan struct{}
	client *api.Client
}

// newLab builds n nodes on a bridge that lives in a namespace of its own
// (the host's iptables FORWARD policy never sees the traffic).
func newLab(t *testing.T, n int, interval, timeout time.Duration) *lab {
	t.Helper()
	requireRoot(t)
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	l := &lab{t: t, id: id, subnet: fmt.Sprintf("10.%d.%d", 100+int(b[0])%100, int(b[1])), interval: interval, timeout: timeout}
	sw := "vcsw" + id
	sh(t, "ip", "netns", "add", sw)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", sw).Run() })
	sh(t, "ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", sw, "link", "set", "br0", "up")
	base := t.TempDir()
	l.hbDisk = filepath.Join(base, "hbdisk")
	sh(t, "truncate", "-s", "8M", l.hbDisk)
	secret := make([]byte, 32)
	rand.Read(secret)
	for i := 1; i <= n; i++ {
		nd := &node{name: fmt.Sprintf("n%d", i), ns: fmt.Sprintf("vc%s%d", id, i), addr: fmt.Sprintf("%s.%d", l.subnet, i)}
		sh(t, "ip", "netns", "add", nd.ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", nd.ns).Run() })
		peer := fmt.Sprintf("vc%s%dp", id, i)
		sh(t, "ip", "link", "add", "eth0", "netns", nd.ns, "type", "veth", "peer", "name", peer, "netns", sw)
		sh(t, "ip", "-n", sw, "link", "set", peer, "master", "br0", "up")
		sh(t, "ip", "-n", nd.ns, "addr", "add", nd.addr+"/24", "dev", "eth0")
		sh(t, "ip", "-n", nd.ns, "link", "set", "eth0", "up")
		sh(t, "ip", "-n", nd.ns, "link", "set", "lo", "up")
		nd.etc = filepath.Join(base, nd.name, "etc")
		nd.state = filepath.Join(base, nd.name, "lib")
		run, err := os.MkdirTemp("", "vc")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(run) })
		nd.run = run
		os.MkdirAll(nd.etc, 0o700)
		os.WriteFile(filepath.Join(nd.etc, "cluster.secret"), []byte(hex.EncodeToString(secret)+"\n"), 0o600)
		l.nodes = append(l.nodes, nd)
	}
	for _, nd := range l.nodes {
		os.WriteFile(filepath.Join(nd.etc, "cluster.conf"), []byte(l.clusterConf(nd)), 0o600)
	}
	return l
}

func (l *lab) clusterConf(nd *node) string {
	var names, addrs []string
	for _, o := range l.nodes {
		names = append(names, o.name)
		addrs = append(addrs, o.name+"="+o.addr)
	}
	return fmt.Sprintf(`[cluster]
name = c%s
nodes = %s
node = %s
secret_file = cluster.secret
ready_period = 3s

[hb#1]
type = net
port = 10000
addrs = %s
interval = %s
timeout = %s

[hb#2]
type = disk
dev = %s
interval = %s
timeout = %s
`, l.id, strings.Join(names, " "), nd.name, strings.Join(addrs, " "), l.interval, l.timeout, l.hbDisk, l.interval, l.timeout)
}

// start runs a node's vigild inside its namespace.
func (l *lab) start(nd *node) {
	t := l.t
	t.Helper()
	bin := bins(t)
	nd.cmd = exec.Command("ip", "netns", "exec", nd.ns, filepath.Join(bin, "vigild"),
		"--config-dir", nd.etc, "--state-dir", nd.state, "--run-dir", nd.run, "--plugin-dir", bin, "--log-level", "warn")
	logf, _ := os.Create(filepath.Join(filepath.Dir(nd.etc), "vigild.log"))
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	if err := nd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nd.done = make(chan struct{})
	cmd, done := nd.cmd, nd.done
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { l.kill(nd, syscall.SIGKILL) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := api.Dial(filepath.Join(nd.run, api.SocketName))
		if err == nil {
			if _, err = c.Status(context.Background()); err == nil {
				nd.client = c
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(nd.etc), "vigild.log"))
			t.Fatalf("%s: vigild did not answer: %v\n%s", nd.name, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill signals a node's vigild (by the pid we started) and waits for it.
func (l *lab) kill(nd *node, sig syscall.Signal) {
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	select {
	case <-nd.done:
		return
	default:
	}
	nd.cmd.Process.Signal(sig)
	select {
	case <-nd.done:
	case <-time.After(10 * time.Second):
		nd.cmd.Process.Kill()
		<-nd.done
	}
}

func (l *lab) startAll() {
	for _, nd := range l.nodes {
		l.start(nd)
	}
}

func (nd *node) status(t *testing.T) *api.ClusterStatus {
	t.Helper()
	st, err := nd.client.Status(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", nd.name, err)
	}
	return st
}

func (nd *node) log() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(nd.etc), "vigild.log"))
	return string(b)
}

// waitFor polls cond until it holds; on timeout it fails with what.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for !cond() {
		if time.Since(begin) > d {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(begin)
}

func writeService(t *testing.T, nd *node, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(nd.etc, name+".conf"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
