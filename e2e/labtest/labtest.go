// Package labtest is the harness of the end-to-end suites that run in
// labs (e2e/failover, e2e/ha): it finds or builds the binaries, skips when
// the host cannot run a lab, brings a lab of its own up for a test through
// e2e/lab (the seed's two services up on n1 under orchestrate = ha) and
// tears it down in the test's cleanup, and reads and drives the lab
// through e2e/lab, the vigil-lab command, the nodes' APIs and their logs.
// The lab's types and layout are e2e/lab's; what a suite alone does with
// its labs stays in its own files.
package labtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/lab"
)

// The seed's services, as the lab installs them.
const (
	Registry = lab.Registry
	Busybox  = lab.Busybox
	// RegistryMount is the registry's first filesystem: mounted where the
	// service runs and nowhere else (on two nodes at once would be a
	// split brain).
	RegistryMount = "/opt/registry.opensvc.com"
)

// SeedServices are the seed's services, both under orchestrate = ha in
// every lab New brings up.
var SeedServices = []string{Registry, Busybox}

// Heartbeat settings of every lab.
const (
	HBInterval = 200 * time.Millisecond
	HBTimeout  = time.Second
)

// Generous bounds: a wait that ends early is a pass, never a figure.
const (
	StartTimeout    = 180 * time.Second // a fresh lab's services up
	FailoverTimeout = 120 * time.Second
	RejoinTimeout   = 90 * time.Second
)

// BaseDir is where vigil-lab keeps its labs.
const BaseDir = lab.BaseDir

// labBins are the binaries every lab runs: vigil-lab and, beside it (its
// nodes find them there), vigild and the plugins the seed's lab uses.
var labBins = []string{"vigil-lab", "vigild", "vigil-plugin-docker", "vigil-plugin-fs", "vigil-plugin-ip",
	"vigil-plugin-lvm", "vigil-plugin-hb-net", "vigil-plugin-hb-disk", "vigil-plugin-stonith-ipmi"}

// labTools are the host's programs vigil-lab needs.
var labTools = []string{"ip", "nsenter", "losetup", "mkfs.ext4", "vgcreate", "ipmi_sim", "ipmitool", "dockerd", "docker", "docker-registry"}

// Suite is one test package's labs. Declare it as a package variable and
// call its Main from TestMain.
type Suite struct {
	// Name names the suite's temporary directories:
	// vigil-e2e-NAME-bin-* for the binaries it builds,
	// vigil-e2e-NAME-LAB-* for the logs of a failed test's lab.
	Name string
	// Build are the packages, relative to the repository's root, built
	// beside vigild, vigil-lab and every plugin when VIGIL_BIN_DIR is
	// unset.
	Build []string
	// Need are the binaries the suite needs beside the lab's own; its
	// tests skip without them.
	Need []string
	// Poll is how often Lab.WaitFor checks its condition (100 ms when 0).
	Poll time.Duration

	binOnce sync.Once
	binDir  string
	binTmp  string
	binErr  error
}

// Main runs the package's tests, removes the binaries BinDir built for
// them, if it built them, and exits with the tests' code.
func (s *Suite) Main(m *testing.M) {
	code := m.Run()
	if s.binTmp != "" {
		os.RemoveAll(s.binTmp)
	}
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BinDir returns the directory of the binaries: VIGIL_BIN_DIR (make test
// sets it), or a temporary directory they are built into once. It skips
// the test when a binary the suite needs is missing.
func (s *Suite) BinDir(t *testing.T) string {
	t.Helper()
	s.binOnce.Do(func() {
		if d := os.Getenv("VIGIL_BIN_DIR"); d != "" {
			s.binDir = d
			return
		}
		if _, err := exec.LookPath("go"); err != nil {
			s.binErr = errors.New("VIGIL_BIN_DIR is unset and there is no go to build the binaries with")
			return
		}
		s.binTmp, s.binErr = os.MkdirTemp("", "vigil-e2e-"+s.Name+"-bin-")
		if s.binErr != nil {
			return
		}
		root := repoRoot()
		pkgs := append([]string{"./cmd/vigild", "./cmd/vigil-lab"}, s.Build...)
		plugins, _ := filepath.Glob(filepath.Join(root, "plugins", "*", "cmd", "vigil-plugin-*"))
		for _, p := range plugins {
			rel, _ := filepath.Rel(root, p)
			pkgs = append(pkgs, "./"+rel)
		}
		cmd := exec.Command("go", append([]string{"build", "-o", s.binTmp + "/"}, pkgs...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			s.binErr = fmt.Errorf("build the binaries: %v\n%s", err, out)
			return
		}
		s.binDir = s.binTmp
	})
	if s.binErr != nil {
		t.Skip(s.binErr)
	}
	for _, b := range slices.Concat(labBins, s.Need) {
		if _, err := os.Stat(filepath.Join(s.binDir, b)); err != nil {
			t.Skipf("no %s in %s (run make build)", b, s.binDir)
		}
	}
	return s.binDir
}

// requireLab skips unless this host can run a lab with opts.
func requireLab(t *testing.T, opts Options) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (vigil-lab: namespaces, loop devices, mounts)")
	}
	for _, tool := range labTools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (run make deps)", tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static; run make deps)")
	}
	if opts.Stonith == "fence_agent" {
		if _, err := os.Stat("/usr/sbin/fence_ipmilan"); err != nil {
			t.Skip("needs /usr/sbin/fence_ipmilan (Debian: apt-get install fence-agents)")
		}
	}
}

// Options is what a test asks of `vigil-lab up`.
type Options struct {
	// Prefix begins the lab's name: a lower-case letter, then up to 6
	// lower-case letters or digits. Random hex digits fill the name to
	// the 8 characters vigil-lab allows.
	Prefix      string
	Nodes       int    // 2 when 0
	Stonith     string // "" (vigil-lab's default, ipmi), ipmi or fence_agent
	SplitAction string // "" or stop
	// ArbitratorPort lists an arbitrator in cluster.conf, in the lab's
	// client namespace on this port (lab.Config.ArbitratorPort); the test
	// runs it.
	ArbitratorPort int
	// NoSeed brings the lab up without the seed's services and images:
	// the test installs its own services (Lab.InstallService).
	NoSeed bool
}

// validPrefix is a lab name's beginning that leaves room for a random
// character (vigil-lab: 1 to 8 lower-case letters or digits, starting
// with a letter).
var validPrefix = regexp.MustCompile(`^[a-z][a-z0-9]{0,6}$`)

// Lab is one vigil-lab lab, of nodes n1, n2, ...
type Lab struct {
	// T is the test the lab's failures are reported to; a test that runs
	// subtests on one lab points it at the running subtest.
	T     *testing.T
	Name  string
	Bin   string   // the binaries' directory
	Nodes []string // n1, n2, ...

	suite *Suite
	// lab is the lab's layout (its names, directories, addresses), as
	// Up recorded it; Lab.State reads its current state.
	lab *lab.Lab
}

// New builds a lab with a name of its own, torn down in the test's cleanup
// (the lab's logs are kept when the test failed), and brings it to the
// scenarios' starting point: both seed services up on n1, orchestrate =
// ha on both, every peer holding that config.
func (s *Suite) New(t *testing.T, opts Options) *Lab {
	t.Helper()
	if !validPrefix.MatchString(opts.Prefix) {
		t.Fatalf("lab name prefix %q: use 1 to 7 lower-case letters or digits, starting with a letter", opts.Prefix)
	}
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	requireLab(t, opts)
	b := make([]byte, 4)
	rand.Read(b)
	l := &Lab{T: t, Name: opts.Prefix + hex.EncodeToString(b)[:8-len(opts.Prefix)], Bin: s.BinDir(t), suite: s}
	for k := 1; k <= opts.Nodes; k++ {
		l.Nodes = append(l.Nodes, lab.NodeName(k))
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.keepLogs(t)
		}
		var out bytes.Buffer
		if err := lab.Down(context.Background(), l.Name, &out); err != nil {
			t.Logf("lab down: %v\n%s", err, out.String())
		}
	})
	begin := time.Now()
	var out bytes.Buffer
	built, err := lab.Up(context.Background(), lab.Config{
		Name: l.Name, Nodes: opts.Nodes, HBInterval: HBInterval, HBTimeout: HBTimeout,
		Images: !opts.NoSeed, Services: !opts.NoSeed, Stonith: opts.Stonith, SplitAction: opts.SplitAction,
		Tool: filepath.Join(l.Bin, "vigil-lab"), ArbitratorPort: opts.ArbitratorPort,
	}, &out)
	l.lab = built // nil when nothing was made
	if err != nil {
		t.Fatalf("lab up: %v\n%s", err, out.String())
	}
	t.Logf("lab %s (%d nodes, stonith %s) up in %s", l.Name, opts.Nodes, or(opts.Stonith, "ipmi"), time.Since(begin).Round(time.Millisecond))
	if opts.NoSeed {
		return l
	}
	for _, svc := range SeedServices {
		l.WaitAvail("n1", "n1", svc, status.Up, StartTimeout)
	}
	t.Logf("seed services up on n1 %s after the lab's start", time.Since(begin).Round(time.Millisecond))
	l.setHA()
	return l
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

var orchestrateHA = regexp.MustCompile(`(?m)^orchestrate\s*=\s*ha\s*$`)

// setHA sets orchestrate = ha on both seed services through n1's API and
// waits until every peer has it in its config files.
func (l *Lab) setHA() {
	t := l.T
	t.Helper()
	c := l.Client("n1")
	for _, svc := range SeedServices {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.ConfigSet(ctx, svc, []string{"orchestrate=ha"})
		cancel()
		if err != nil {
			t.Fatalf("n1: %s set orchestrate=ha: %v", svc, err)
		}
	}
	l.WaitFor("orchestrate = ha in every peer's config files", 30*time.Second, func() (bool, string) {
		for _, n := range l.Nodes[1:] {
			for _, svc := range SeedServices {
				b, _ := os.ReadFile(filepath.Join(l.NodeDir(n), "etc", svc+".env"))
				if !orchestrateHA.Match(b) {
					return false, svc + " has no orchestrate = ha on " + n
				}
			}
		}
		return true, ""
	})
}

// keepLogs copies the lab's logs out of it before `down` removes them,
// and says where to t.
func (l *Lab) keepLogs(t *testing.T) {
	if l.lab == nil {
		return
	}
	dir, err := os.MkdirTemp("", "vigil-e2e-"+l.suite.Name+"-"+l.Name+"-")
	if err != nil {
		return
	}
	for _, n := range l.Nodes {
		for _, f := range []string{"vigild.log", "console.log"} {
			if b, err := os.ReadFile(filepath.Join(l.NodeDir(n), f)); err == nil {
				os.WriteFile(filepath.Join(dir, n+"-"+f), b, 0o644)
			}
		}
	}
	if b, err := os.ReadFile(l.lab.Path("supervisor.log")); err == nil {
		os.WriteFile(filepath.Join(dir, "supervisor.log"), b, 0o644)
	}
	t.Logf("the lab's logs are kept in %s", dir)
}

// LabCmd runs vigil-lab on this lab.
func (l *Lab) LabCmd(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(l.Bin, "vigil-lab"), append([]string{"--name", l.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustLab runs vigil-lab on this lab and fails the test when it fails.
func (l *Lab) MustLab(args ...string) string {
	l.T.Helper()
	out, err := l.LabCmd(args...)
	if err != nil {
		l.T.Fatalf("vigil-lab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Exec runs a command inside a node.
func (l *Lab) Exec(node string, args ...string) (string, error) {
	return l.LabCmd(append([]string{"exec", node, "--"}, args...)...)
}

// Status is the lab's status (`vigil-lab status`).
type Status = lab.Status

// Node is a node in the lab's status.
type Node = lab.NodeStatus

// State is the lab's current state (what is cut, its processes), read
// again at each call: vigil-lab commands change it.
func (l *Lab) State() *lab.Lab {
	l.T.Helper()
	cur, err := lab.Load(l.Name)
	if err != nil {
		l.T.Fatalf("%v", err)
	}
	return cur
}

// LabStatus is the lab's status, its nodes' power as their BMCs say.
func (l *Lab) LabStatus() Status {
	l.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return l.State().Status(ctx)
}

// LabNode returns one node of `vigil-lab status`.
func (l *Lab) LabNode(name string) Node {
	l.T.Helper()
	for _, n := range l.LabStatus().Nodes {
		if n.Name == name {
			return n
		}
	}
	l.T.Fatalf("vigil-lab status has no node %s", name)
	return Node{}
}

// NodeDir is a node's directory in the lab.
func (l *Lab) NodeDir(node string) string { return l.lab.NodeDir(node) }

// LogPath is a node's vigild log.
func (l *Lab) LogPath(node string) string { return l.lab.LogPath(node) }

// socket is a node's API socket.
func (l *Lab) socket(node string) string {
	return filepath.Join(l.NodeDir(node), "run", api.SocketName)
}

// Client dials a node's API; it fails the test when no daemon answers.
func (l *Lab) Client(node string) *api.Client {
	l.T.Helper()
	c, err := api.Dial(l.socket(node))
	if err != nil {
		l.T.Fatalf("%s: %v", node, err)
	}
	return c
}

// View is observer's cluster status, nil when its daemon does not answer.
func (l *Lab) View(observer string) *api.ClusterStatus {
	c, err := api.Dial(l.socket(observer))
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return nil
	}
	return st
}

// Instance is svc's instance on node in a status already read (nil when
// unknown).
func Instance(st *api.ClusterStatus, node, svc string) *cluster.ServiceInstance {
	if st == nil || st.Node[node] == nil {
		return nil
	}
	return st.Node[node].Services[svc]
}

// Instance is svc's instance on node as observer sees it (nil when
// unknown).
func (l *Lab) Instance(observer, node, svc string) *cluster.ServiceInstance {
	return Instance(l.View(observer), node, svc)
}

// Avail is svc's avail on node in a status already read ("?" when
// unknown).
func Avail(st *api.ClusterStatus, node, svc string) string {
	if inst := Instance(st, node, svc); inst != nil {
		return inst.Status.Avail.String()
	}
	return "?"
}

// Avail is svc's avail on node as observer sees it ("?" when it cannot
// tell).
func (l *Lab) Avail(observer, node, svc string) string {
	return Avail(l.View(observer), node, svc)
}

// NodeState is node's state as observer sees it (unknown when observer
// does not answer).
func (l *Lab) NodeState(observer, node string) cluster.NodeState {
	if st := l.View(observer); st != nil && st.Node[node] != nil {
		return st.Node[node].State
	}
	return cluster.Unknown
}

// WaitFor polls cond until it holds; on timeout it fails with what and
// cond's last word. It returns how long the wait took.
func (l *Lab) WaitFor(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	l.T.Helper()
	poll := l.suite.Poll
	if poll == 0 {
		poll = 100 * time.Millisecond
	}
	begin := time.Now()
	for {
		ok, why := cond()
		if ok {
			return time.Since(begin)
		}
		if time.Since(begin) > timeout {
			l.T.Fatalf("timed out after %s waiting for %s (last seen: %s)", timeout, what, why)
		}
		time.Sleep(poll)
	}
}

// WaitAvail waits until observer sees svc's avail on node at want.
func (l *Lab) WaitAvail(observer, node, svc string, want status.Status, timeout time.Duration) time.Duration {
	l.T.Helper()
	return l.WaitFor(fmt.Sprintf("%s %s on %s (as %s sees it)", svc, want, node, observer), timeout, func() (bool, string) {
		got := l.Avail(observer, node, svc)
		return got == want.String(), "avail " + strconv.Quote(got)
	})
}

// WaitReady waits until observer sees node ready.
func (l *Lab) WaitReady(observer, node string, timeout time.Duration) time.Duration {
	l.T.Helper()
	return l.WaitFor(fmt.Sprintf("%s ready as %s sees it", node, observer), timeout, func() (bool, string) {
		got := l.NodeState(observer, node)
		return got == cluster.Ready, "state " + strconv.Quote(string(got))
	})
}

// LogSize is where node's vigild log ends now: an offset to read what
// comes after.
func (l *Lab) LogSize(node string) int64 {
	fi, err := os.Stat(l.LogPath(node))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LogSince returns the lines of node's vigild log written after off (the
// continuation lines of a multi-line value are kept as lines of their
// own).
func (l *Lab) LogSince(node string, off int64) []string {
	b, err := os.ReadFile(l.LogPath(node))
	if err != nil || int64(len(b)) < off {
		return nil
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b[off:]))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// Action runs an operator action through node's API, logging its
// progress lines.
func (l *Lab) Action(node, svc string, req api.ActionRequest, timeout time.Duration) error {
	l.T.Helper()
	c, err := api.Dial(l.socket(node))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = c.Action(ctx, svc, req, func(line string) { l.T.Logf("  %s: %s", node, line) })
	if err != nil && streamBroke.MatchString(err.Error()) {
		return fmt.Errorf("%w (the streamed answer broke mid-way: the daemon closed it or wrote it garbled)", err)
	}
	return err
}

// streamBroke matches the client's errors for an answer that did not
// end with its final line.
var streamBroke = regexp.MustCompile(`unexpected EOF|bad answer|ended early`)
