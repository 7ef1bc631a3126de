package failover

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
)

// The seed's services, as the lab installs them.
const (
	registry = "registry.opensvc.com"
	busybox  = "busybox.opensvc.com"
)

var seedServices = []string{registry, busybox}

// Heartbeat settings of every lab here.
const (
	hbInterval = 200 * time.Millisecond
	hbTimeout  = time.Second
)

// Generous bounds: a wait that ends early is a pass, never a figure.
const (
	startTimeout    = 180 * time.Second // a fresh lab's services up
	failoverTimeout = 120 * time.Second
	rejoinTimeout   = 90 * time.Second
)

// labBaseDir is where vigil-lab keeps its labs.
const labBaseDir = "/run/vigil-lab"

// binaries the lab and the tests use; the plugins are found by glob.
var wantBins = []string{"vigil-lab", "vigild", "svcmgr", "svcmon", "regclient",
	"vigil-plugin-docker", "vigil-plugin-fs", "vigil-plugin-ip", "vigil-plugin-lvm",
	"vigil-plugin-hb-net", "vigil-plugin-hb-disk", "vigil-plugin-stonith-ipmi"}

var (
	binOnce sync.Once
	binDir  string
	binTmp  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binTmp != "" {
		os.RemoveAll(binTmp)
	}
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// bins returns the directory of the built binaries: VIGIL_BIN_DIR (make
// test sets it), or a temporary directory they are built into once.
func bins(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if d := os.Getenv("VIGIL_BIN_DIR"); d != "" {
			binDir = d
			return
		}
		if _, err := exec.LookPath("go"); err != nil {
			binErr = errors.New("VIGIL_BIN_DIR is unset and there is no go to build the binaries with")
			return
		}
		binTmp, binErr = os.MkdirTemp("", "vigil-e2e-failover-bin-")
		if binErr != nil {
			return
		}
		root := repoRoot()
		plugins, _ := filepath.Glob(filepath.Join(root, "plugins", "*", "cmd", "vigil-plugin-*"))
		pkgs := []string{"./cmd/svcmgr", "./cmd/svcmon", "./cmd/vigild", "./cmd/vigil-lab", "./e2e/lab/regclient"}
		for _, p := range plugins {
			rel, _ := filepath.Rel(root, p)
			pkgs = append(pkgs, "./"+rel)
		}
		cmd := exec.Command("go", append([]string{"build", "-o", binTmp + "/"}, pkgs...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build the binaries: %v\n%s", err, out)
			return
		}
		binDir = binTmp
	})
	if binErr != nil {
		t.Skip(binErr)
	}
	for _, b := range wantBins {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			t.Skipf("no %s in %s (run make build)", b, binDir)
		}
	}
	return binDir
}

// requireLab skips unless this host can run a lab.
func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (vigil-lab: namespaces, loop devices, mounts)")
	}
	for _, tool := range []string{"ip", "nsenter", "losetup", "mkfs.ext4", "vgcreate", "ipmi_sim", "ipmitool", "dockerd", "docker", "docker-registry"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (run make deps)", tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static; run make deps)")
	}
}

// lab is one vigil-lab lab of two nodes, n1 and n2.
type lab struct {
	t        *testing.T
	name     string
	bin      string
	regAddr  string // the registry's floating address
	clientNS string
}

// labStatus is what the tests read of `vigil-lab status --format json`.
type labStatus struct {
	ClientNS string            `json:"client_netns"`
	Services map[string]string `json:"services"`
	Nodes    []struct {
		Name      string `json:"name"`
		Power     string `json:"power"`
		InitPid   int    `json:"init_pid"`
		VigildPid int    `json:"vigild_pid"`
		CutNet    bool   `json:"cut_net"`
		CutDisk   bool   `json:"cut_disk"`
	} `json:"nodes"`
}

// newLab builds a two-node lab with a name of its own, torn down in the
// test's cleanup (the node logs are kept when the test failed), and
// brings it to the scenarios' starting point: both seed services up on
// n1, orchestrate = ha on both, and n2 holding that config.
func newLab(t *testing.T) *lab {
	t.Helper()
	requireLab(t)
	b := make([]byte, 3)
	rand.Read(b)
	l := &lab{t: t, name: "f" + hex.EncodeToString(b), bin: bins(t)}
	t.Cleanup(func() {
		if t.Failed() {
			l.keepLogs()
		}
		if out, err := l.labCmd("down"); err != nil {
			t.Logf("vigil-lab down: %v\n%s", err, out)
		}
	})
	begin := time.Now()
	if out, err := l.labCmd("up", "--nodes", "2", "--hb-interval", hbInterval.String(), "--hb-timeout", hbTimeout.String()); err != nil {
		t.Fatalf("vigil-lab up: %v\n%s", err, out)
	}
	st := l.labStatus()
	l.regAddr, l.clientNS = st.Services[registry], st.ClientNS
	if l.regAddr == "" || l.clientNS == "" {
		t.Fatalf("vigil-lab status: no registry address or client namespace: %+v", st)
	}
	t.Logf("lab %s up in %s", l.name, time.Since(begin).Round(time.Millisecond))
	for _, svc := range seedServices {
		l.waitAvail("n1", "n1", svc, status.Up, startTimeout)
	}
	t.Logf("seed services up on n1 %s after the lab's start", time.Since(begin).Round(time.Millisecond))
	l.setHA()
	return l
}

// setHA sets orchestrate = ha on both seed services through n1's API and
// waits until n2 has it in its config files.
func (l *lab) setHA() {
	t := l.t
	t.Helper()
	c := l.client("n1")
	for _, svc := range seedServices {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.ConfigSet(ctx, svc, []string{"orchestrate=ha"})
		cancel()
		if err != nil {
			t.Fatalf("n1: %s set orchestrate=ha: %v", svc, err)
		}
	}
	l.waitFor("orchestrate = ha in n2's config files", 30*time.Second, func() (bool, string) {
		for _, svc := range seedServices {
			b, _ := os.ReadFile(filepath.Join(l.nodeDir("n2"), "etc", svc+".env"))
			if !regexp.MustCompile(`(?m)^orchestrate\s*=\s*ha\s*$`).Match(b) {
				return false, svc + " has no orchestrate = ha on n2"
			}
		}
		return true, ""
	})
}

// labCmd runs vigil-lab on this lab.
func (l *lab) labCmd(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(l.bin, "vigil-lab"), append([]string{"--name", l.name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustLab runs vigil-lab and fails the test when it fails.
func (l *lab) mustLab(args ...string) string {
	l.t.Helper()
	out, err := l.labCmd(args...)
	if err != nil {
		l.t.Fatalf("vigil-lab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (l *lab) labStatus() labStatus {
	l.t.Helper()
	out, err := exec.Command(filepath.Join(l.bin, "vigil-lab"), "--name", l.name, "status", "--format", "json").Output()
	if err != nil {
		l.t.Fatalf("vigil-lab status: %v", err)
	}
	var st labStatus
	if err := json.Unmarshal(out, &st); err != nil {
		l.t.Fatalf("vigil-lab status: %v\n%s", err, out)
	}
	return st
}

// node returns one node of `vigil-lab status`.
func (l *lab) node(name string) (power string, initPid, vigildPid int) {
	l.t.Helper()
	for _, n := range l.labStatus().Nodes {
		if n.Name == name {
			return n.Power, n.InitPid, n.VigildPid
		}
	}
	l.t.Fatalf("vigil-lab status has no node %s", name)
	return "", 0, 0
}

func (l *lab) nodeDir(node string) string { return filepath.Join(labBaseDir, l.name, "nodes", node) }
func (l *lab) logPath(node string) string { return filepath.Join(l.nodeDir(node), "vigild.log") }

// keepLogs copies the nodes' logs out of the lab before `down` removes
// them.
func (l *lab) keepLogs() {
	dir, err := os.MkdirTemp("", "vigil-e2e-failover-"+l.name+"-")
	if err != nil {
		return
	}
	for _, n := range []string{"n1", "n2"} {
		for _, f := range []string{"vigild.log", "console.log"} {
			if b, err := os.ReadFile(filepath.Join(l.nodeDir(n), f)); err == nil {
				os.WriteFile(filepath.Join(dir, n+"-"+f), b, 0o644)
			}
		}
	}
	l.t.Logf("the nodes' logs are kept in %s", dir)
}

// client dials a node's API; it fails the test when no daemon answers.
func (l *lab) client(node string) *api.Client {
	l.t.Helper()
	c, err := api.Dial(filepath.Join(l.nodeDir(node), "run", api.SocketName))
	if err != nil {
		l.t.Fatalf("%s: %v", node, err)
	}
	return c
}

// status is a node's cluster status, nil when its daemon does not answer.
func (l *lab) status(node string) *api.ClusterStatus {
	c, err := api.Dial(filepath.Join(l.nodeDir(node), "run", api.SocketName))
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

// instance is svc's instance on node as viewer sees it (nil when unknown).
func instance(st *api.ClusterStatus, node, svc string) *cluster.ServiceInstance {
	if st == nil || st.Node[node] == nil {
		return nil
	}
	return st.Node[node].Services[svc]
}

// avail is svc's avail on node as viewer sees it, "" when unknown.
func (l *lab) avail(viewer, node, svc string) string {
	if inst := instance(l.status(viewer), node, svc); inst != nil {
		return inst.Status.Avail.String()
	}
	return ""
}

// nodeState is node's state as viewer sees it, "" when unknown.
func (l *lab) nodeState(viewer, node string) string {
	if st := l.status(viewer); st != nil && st.Node[node] != nil {
		return string(st.Node[node].State)
	}
	return ""
}

// waitFor polls cond every 50 ms until it holds; on timeout it fails with
// what and cond's last word. It returns how long the wait took.
func (l *lab) waitFor(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	l.t.Helper()
	begin := time.Now()
	for {
		ok, why := cond()
		if ok {
			return time.Since(begin)
		}
		if time.Since(begin) > timeout {
			l.t.Fatalf("timed out after %s waiting for %s (last seen: %s)", timeout, what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAvail waits until viewer sees svc's avail on node at want.
func (l *lab) waitAvail(viewer, node, svc string, want status.Status, timeout time.Duration) time.Duration {
	l.t.Helper()
	return l.waitFor(fmt.Sprintf("%s %s on %s (as %s sees it)", svc, want, node, viewer), timeout, func() (bool, string) {
		got := l.avail(viewer, node, svc)
		return got == want.String(), "avail " + strconv.Quote(got)
	})
}

// waitReady waits until viewer sees node ready.
func (l *lab) waitReady(viewer, node string, timeout time.Duration) time.Duration {
	l.t.Helper()
	return l.waitFor(fmt.Sprintf("%s ready as %s sees it", node, viewer), timeout, func() (bool, string) {
		got := l.nodeState(viewer, node)
		return got == string(cluster.Ready), "state " + strconv.Quote(got)
	})
}

// requireOn checks the scenario's starting point: both seed services up
// on node and down on the other, both nodes ready in each other's view.
func (l *lab) requireOn(node string) {
	l.t.Helper()
	other := map[string]string{"n1": "n2", "n2": "n1"}[node]
	l.waitReady(node, other, rejoinTimeout)
	l.waitReady(other, node, rejoinTimeout)
	for _, svc := range seedServices {
		l.waitAvail(node, node, svc, status.Up, failoverTimeout)
		l.waitAvail(other, other, svc, status.Down, failoverTimeout)
	}
}

// logSize is the current size of a node's vigild log: an offset to read
// what comes after.
func (l *lab) logSize(node string) int64 {
	fi, err := os.Stat(l.logPath(node))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns the lines of a node's log written after off (the
// continuation lines of a multi-line value are kept as lines of their
// own).
func (l *lab) logSince(node string, off int64) []string {
	b, err := os.ReadFile(l.logPath(node))
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

// Log lines the tests look for.
var (
	reStarted = func(svc string) *regexp.Regexp {
		return regexp.MustCompile(`action done: .*svc=` + regexp.QuoteMeta(svc) + ` action=start`)
	}
	reOrchStart = func(svc string) *regexp.Regexp {
		return regexp.MustCompile(`orchestrated start: .*svc=` + regexp.QuoteMeta(svc) + `\b`)
	}
	reClaim   = regexp.MustCompile(`claiming the start`)
	reFenced  = regexp.MustCompile(`node fenced: .*target=n1`)
	rePeerLst = regexp.MustCompile(`peer lost: .*peer=n1`)
	reAnyDone = regexp.MustCompile(`action done: .*action=start`)
)

// matching returns the lines that match re, with their indexes.
func matching(lines []string, re *regexp.Regexp) (idx []int, got []string) {
	for i, s := range lines {
		if re.MatchString(s) {
			idx = append(idx, i)
			got = append(got, s)
		}
	}
	return idx, got
}

// excerpt is a few lines around the ones matching re, for a failure
// message.
func excerpt(lines []string, re *regexp.Regexp) string {
	idx, _ := matching(lines, re)
	if len(idx) == 0 {
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		return strings.Join(lines, "\n")
	}
	keep := map[int]bool{}
	for _, i := range idx {
		for j := max(0, i-3); j < min(len(lines), i+2); j++ {
			keep[j] = true
		}
	}
	var out []string
	for j := range lines {
		if keep[j] {
			if j > 0 && !keep[j-1] && len(out) > 0 {
				out = append(out, "…")
			}
			out = append(out, lines[j])
		}
	}
	return strings.Join(out, "\n")
}

// regclient runs the lab's registry client in the client namespace.
func (l *lab) regclient(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.clientNS, filepath.Join(l.bin, "regclient")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("regclient %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// execNode runs a command inside a node.
func (l *lab) execNode(node string, args ...string) (string, error) {
	return l.labCmd(append([]string{"exec", node, "--"}, args...)...)
}

// action runs an operator action through a node's API.
func (l *lab) action(node, svc string, req api.ActionRequest, timeout time.Duration) error {
	c, err := api.Dial(filepath.Join(l.nodeDir(node), "run", api.SocketName))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = c.Action(ctx, svc, req, func(line string) { l.t.Logf("%s: %s", node, line) })
	if err != nil && streamBroke.MatchString(err.Error()) {
		return fmt.Errorf("%w (the streamed answer broke mid-way: the daemon closed it or wrote it garbled)", err)
	}
	return err
}

// streamBroke matches the client's errors for an answer that did not
// end with its final line.
var streamBroke = regexp.MustCompile(`unexpected EOF|bad answer|ended early`)

// mountWatch samples both nodes' mount tables (their inits' mountinfo)
// until stopped, counting the samples where a mount point is mounted on
// both.
type mountWatch struct {
	mnt  string
	stop chan struct{}
	done chan struct{}

	// Filled when done is closed.
	samples int
	both    int
	on      map[string]int // samples with the mount, per node
	first   string         // the first sample that had it on both
}

// watchMounts starts sampling every 20 ms. Each node's init is opened
// once, as a directory: when the node is powered off its mountinfo can
// no longer be read through it, even if the pid is reused.
func (l *lab) watchMounts(mnt string) *mountWatch {
	l.t.Helper()
	w := &mountWatch{mnt: mnt, stop: make(chan struct{}), done: make(chan struct{}), on: map[string]int{}}
	st := l.labStatus()
	dirs := map[string]int{}
	for _, n := range st.Nodes {
		if n.InitPid == 0 {
			l.t.Fatalf("%s has no init (powered off?)", n.Name)
		}
		fd, err := unix.Open(fmt.Sprintf("/proc/%d", n.InitPid), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			l.t.Fatalf("%s: open its init's /proc entry: %v", n.Name, err)
		}
		dirs[n.Name] = fd
	}
	go func() {
		defer close(w.done)
		defer func() {
			for _, fd := range dirs {
				unix.Close(fd)
			}
		}()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var with []string
			for name, fd := range dirs {
				if hasMount(fd, mnt) {
					with = append(with, name)
					w.on[name]++
				}
			}
			w.samples++
			if len(with) > 1 {
				w.both++
				if w.first == "" {
					slices.Sort(with)
					w.first = time.Now().Format(time.RFC3339Nano) + " on " + strings.Join(with, ", ")
				}
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Stop ends the sampling and waits for the sampler.
func (w *mountWatch) Stop() {
	close(w.stop)
	<-w.done
}

// hasMount says whether the mount table read through a process's /proc
// directory has mnt as a mount point (false when it cannot be read).
func hasMount(dirfd int, mnt string) bool {
	fd, err := unix.Openat(dirfd, "mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "mountinfo")
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == mnt {
			return true
		}
	}
	return false
}

// pluginChild finds the process running bin/NAME whose parent is ppid.
func pluginChild(name string, ppid int) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != name {
			continue
		}
		if parentOf(pid) == ppid {
			return pid
		}
	}
	return 0
}

// parentOf is a process's parent pid (field 4 of /proc/PID/stat), 0 when
// it cannot be read.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// kill9 sends SIGKILL to a host pid.
func kill9(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
