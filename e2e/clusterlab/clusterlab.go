// Package clusterlab runs several vigild processes on this machine, each in
// a network namespace of its own plugged into a switch (e2e/lab's wiring:
// a bridge in a namespace of its own, out of the host's iptables), with a
// network and a disk heartbeat: the ground of the cluster end-to-end tests
// and of the peer-lost benchmark. Its nodes are bare daemons, not e2e/lab's
// nodes: no pid or mount namespace, BMC or docker, and no init restarting
// a vigild the test kills, since these tests kill it to make a peer lost.
// Everything it makes is removed in the test's cleanup.
package clusterlab

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
	"github.com/vigil-ha/vigil/e2e/lab"
	hbdisk "github.com/vigil-ha/vigil/plugins/hb-disk"
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
func Bins(t testing.TB) string {
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

// Cleanup removes the binaries Bins built; call it from TestMain.
func Cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2; run make deps)")
	}
}

func Sh(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Lab is a few vigild nodes in namespaces of their own.
type Lab struct {
	t      testing.TB
	id     string
	Nodes  []*Node
	subnet string
	// HBDisk is the file the disk heartbeat uses.
	HBDisk   string
	interval time.Duration
	timeout  time.Duration
}

// Node is one vigild of a Lab.
type Node struct {
	Name     string // n1, n2, ...
	NS       string // its network namespace
	Addr     string
	Etc      string // its config directory
	StateDir string
	RunDir   string
	Client   *api.Client // its API, once started
	cmd      *exec.Cmd
	done     chan struct{}
}

// New builds n nodes on a bridge that lives in a namespace of its own
// (the host's iptables FORWARD policy never sees the traffic).
func New(t testing.TB, n int, interval, timeout time.Duration) *Lab {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	l := &Lab{t: t, id: id, subnet: fmt.Sprintf("10.%d.%d", 100+int(b[0])%100, int(b[1])), interval: interval, timeout: timeout}
	sw := "vcsw" + id
	t.Cleanup(func() { exec.Command("ip", "netns", "del", sw).Run() })
	if err := lab.AddSwitch(context.Background(), sw, ""); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	l.HBDisk = filepath.Join(base, "hbdisk")
	Sh(t, "truncate", "-s", "8M", l.HBDisk)
	// Labelled once, as nodemgr hb-disk init does.
	if _, err := hbdisk.InitDevice(hbdisk.InitOptions{Dev: l.HBDisk, Cluster: "c" + id}); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	for i := 1; i <= n; i++ {
		nd := &Node{Name: fmt.Sprintf("n%d", i), NS: fmt.Sprintf("vc%s%d", id, i), Addr: fmt.Sprintf("%s.%d", l.subnet, i)}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", nd.NS).Run() })
		port := lab.Port{Switch: sw, Name: fmt.Sprintf("vc%s%dp", id, i), NS: nd.NS, Addr: nd.Addr + "/24"}
		if err := lab.Plug(context.Background(), port); err != nil {
			t.Fatal(err)
		}
		nd.Etc = filepath.Join(base, nd.Name, "etc")
		nd.StateDir = filepath.Join(base, nd.Name, "lib")
		run, err := os.MkdirTemp("", "vc")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(run) })
		nd.RunDir = run
		os.MkdirAll(nd.Etc, 0o700)
		os.WriteFile(filepath.Join(nd.Etc, "cluster.secret"), []byte(hex.EncodeToString(secret)+"\n"), 0o600)
		l.Nodes = append(l.Nodes, nd)
	}
	for _, nd := range l.Nodes {
		os.WriteFile(filepath.Join(nd.Etc, "cluster.conf"), []byte(l.clusterConf(nd)), 0o600)
	}
	return l
}

func (l *Lab) clusterConf(nd *Node) string {
	var names, addrs []string
	for _, o := range l.Nodes {
		names = append(names, o.Name)
		addrs = append(addrs, o.Name+"="+o.Addr)
	}
	return fmt.Sprintf(`[cluster]
name = c%s
nodes = %s
node = %s
secret_file = cluster.secret
ready_period = 3s
metrics = 127.0.0.1:9100

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
`, l.id, strings.Join(names, " "), nd.Name, strings.Join(addrs, " "), l.interval, l.timeout, l.HBDisk, l.interval, l.timeout)
}

// start runs a node's vigild inside its namespace.
func (l *Lab) Start(nd *Node) {
	t := l.t
	t.Helper()
	bin := Bins(t)
	nd.cmd = exec.Command("ip", "netns", "exec", nd.NS, filepath.Join(bin, "vigild"),
		"--config-dir", nd.Etc, "--state-dir", nd.StateDir, "--run-dir", nd.RunDir, "--plugin-dir", bin, "--log-level", "warn")
	logf, _ := os.Create(filepath.Join(filepath.Dir(nd.Etc), "vigild.log"))
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	if err := nd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nd.done = make(chan struct{})
	cmd, done := nd.cmd, nd.done
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { l.Kill(nd, syscall.SIGKILL) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := api.Dial(filepath.Join(nd.RunDir, api.SocketName))
		if err == nil {
			if _, err = c.Status(context.Background()); err == nil {
				nd.Client = c
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(nd.Etc), "vigild.log"))
			t.Fatalf("%s: vigild did not answer: %v\n%s", nd.Name, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill signals a node's vigild (by the pid we started) and waits for it.
func (l *Lab) Kill(nd *Node, sig syscall.Signal) {
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

func (l *Lab) StartAll() {
	for _, nd := range l.Nodes {
		l.Start(nd)
	}
}

func (nd *Node) Status(t testing.TB) *api.ClusterStatus {
	t.Helper()
	st, err := nd.Client.Status(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", nd.Name, err)
	}
	return st
}

func (nd *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(nd.Etc), "vigild.log"))
	return string(b)
}

// waitFor polls cond until it holds; on timeout it fails with what.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) time.Duration {
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

func WriteService(t testing.TB, nd *Node, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(nd.Etc, name+".conf"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
