package ha

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
)

// The seed's services, as the lab installs them.
const (
	registry = "registry.opensvc.com"
	busybox  = "busybox.opensvc.com"
	// registryMnt is the registry's first filesystem: mounted where the
	// service runs, and nowhere else.
	registryMnt = "/opt/registry.opensvc.com"
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

const labBaseDir = "/run/vigil-lab"

// The binaries the labs run, beside vigil-lab (its nodes find vigild and
// the plugins there).
var wantBins = []string{"vigil-lab", "vigild", "vigil-plugin-docker", "vigil-plugin-fs", "vigil-plugin-ip",
	"vigil-plugin-lvm", "vigil-plugin-hb-net", "vigil-plugin-hb-disk", "vigil-plugin-stonith-ipmi",
	"vigil-plugin-stonith-fence-agent"}

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

// bins returns the directory of the binaries: VIGIL_BIN_DIR (make test
// sets it), or a temporary directory they are built into once.
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
		binTmp, binErr = os.MkdirTemp("", "vigil-e2e-ha-bin-")
		if binErr != nil {
			return
		}
		root := repoRoot()
		pkgs := []string{"./cmd/vigild", "./cmd/vigil-lab"}
		plugins, _ := filepath.Glob(filepath.Join(root, "plugins", "*", "cmd", "vigil-plugin-*"))
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
func requireLab(t *testing.T, fenceAgent bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (vigil-lab: namespaces, loop devices, mounts)")
	}
	tools := []string{"ip", "nsenter", "losetup", "mkfs.ext4", "vgcreate", "ipmi_sim", "ipmitool", "dockerd", "docker", "docker-registry"}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (run make deps)", tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static; run make deps)")
	}
	if fenceAgent {
		if _, err := os.Stat("/usr/sbin/fence_ipmilan"); err != nil {
			t.Skip("needs /usr/sbin/fence_ipmilan (Debian: apt-get install fence-agents)")
		}
	}
}

// labOptions is what a test asks of `vigil-lab up`.
type labOptions struct {
	nodes       int
	stonith     string // ipmi or fence_agent
	splitAction string // "" or stop
}

// lab is one vigil-lab lab.
type lab struct {
	t     *testing.T
	name  string
	bin   string
	nodes []string
}

// newLab builds a lab named for the test, torn down in its cleanup (the
// node logs are kept when the test failed), and brings it to the
// scenarios' starting point: both seed services up on n1, orchestrate =
// ha on both, every peer holding that config.
func newLab(t *testing.T, prefix string, opts labOptions) *lab {
	t.Helper()
	requireLab(t, opts.stonith == "fence_agent")
	b := make([]byte, 3)
	rand.Read(b)
	l := &lab{t: t, name: prefix + hex.EncodeToString(b)[:8-len(prefix)], bin: bins(t)}
	for k := 1; k <= opts.nodes; k++ {
		l.nodes = append(l.nodes, "n"+strconv.Itoa(k))
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.keepLogs()
		}
		if out, err := l.labCmd("down"); err != nil {
			t.Logf("vigil-lab down: %v\n%s", err, out)
		}
	})
	begin := time.Now()
	args := []string{"up", "--nodes", strconv.Itoa(opts.nodes), "--hb-interval", hbInterval.String(), "--hb-timeout", hbTimeout.String()}
	if opts.stonith != "" {
		args = append(args, "--stonith", opts.stonith)
	}
	if opts.splitAction != "" {
		args = append(args, "--split-action", opts.splitAction)
	}
	l.mustLab(args...)
	t.Logf("lab %s (%d nodes, stonith %s) up in %s", l.name, opts.nodes, or(opts.stonith, "ipmi"), time.Since(begin).Round(time.Millisecond))
	for _, svc := range seedServices {
		l.waitAvail("n1", "n1", svc, status.Up, startTimeout)
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
func (l *lab) setHA() {
	t := l.t
	t.Helper()
	for _, svc := range seedServices {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := l.client("n1").ConfigSet(ctx, svc, []string{"orchestrate=ha"})
		cancel()
		if err != nil {
			t.Fatalf("n1: %s set orchestrate=ha: %v", svc, err)
		}
	}
	l.waitFor("orchestrate = ha in every peer's config files", 30*time.Second, func() (bool, string) {
		for _, n := range l.nodes[1:] {
			for _, svc := range seedServices {
				b, _ := os.ReadFile(filepath.Join(l.nodeDir(n), "etc", svc+".env"))
				if !orchestrateHA.Match(b) {
					return false, svc + " has no orchestrate = ha on " + n
				}
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

// labNode is what the tests read of a node in `vigil-lab status`.
type labNode struct {
	Name    string `json:"name"`
	Power   string `json:"power"`
	InitPid int    `json:"init_pid"`
}

// labNode returns one node of `vigil-lab status`.
func (l *lab) labNode(name string) labNode {
	l.t.Helper()
	out, err := exec.Command(filepath.Join(l.bin, "vigil-lab"), "--name", l.name, "status", "--format", "json").Output()
	if err != nil {
		l.t.Fatalf("vigil-lab status: %v", err)
	}
	var st struct {
		Nodes []labNode `json:"nodes"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		l.t.Fatalf("vigil-lab status: %v\n%s", err, out)
	}
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	l.t.Fatalf("vigil-lab status has no node %s", name)
	return labNode{}
}

func (l *lab) nodeDir(node string) string { return filepath.Join(labBaseDir, l.name, "nodes", node) }
func (l *lab) logPath(node string) string { return filepath.Join(l.nodeDir(node), "vigild.log") }

// keepLogs copies the nodes' logs out of the lab before `down` removes
// them.
func (l *lab) keepLogs() {
	dir, err := os.MkdirTemp("", "vigil-e2e-ha-"+l.name+"-")
	if err != nil {
		return
	}
	for _, n := range l.nodes {
		for _, f := range []string{"vigild.log", "console.log"} {
			if b, err := os.ReadFile(filepath.Join(l.nodeDir(n), f)); err == nil {
				os.WriteFile(filepath.Join(dir, n+"-"+f), b, 0o644)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(labBaseDir, l.name, "supervisor.log")); err == nil {
		os.WriteFile(filepath.Join(dir, "supervisor.log"), b, 0o644)
	}
	l.t.Logf("the lab's logs are kept in %s", dir)
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

// view asks observer's daemon for its cluster status.
func (l *lab) view(observer string) (*api.ClusterStatus, error) {
	c, err := api.Dial(filepath.Join(l.nodeDir(observer), "run", api.SocketName))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Status(ctx)
}

// instance is svc on node as observer sees it (nil when unknown).
func (l *lab) instance(observer, node, svc string) *cluster.ServiceInstance {
	st, err := l.view(observer)
	if err != nil || st.Node[node] == nil {
		return nil
	}
	return st.Node[node].Services[svc]
}

// avail is svc's availability on node as observer sees it ("?" when it
// cannot tell).
func (l *lab) avail(observer, node, svc string) string {
	if inst := l.instance(observer, node, svc); inst != nil {
		return inst.Status.Avail.String()
	}
	return "?"
}

// waitAvail waits until observer sees svc with avail want on node.
func (l *lab) waitAvail(observer, node, svc string, want status.Status, timeout time.Duration) time.Duration {
	l.t.Helper()
	return l.waitFor(fmt.Sprintf("%s %s on %s (seen from %s)", svc, want, node, observer), timeout, func() (bool, string) {
		got := l.avail(observer, node, svc)
		return got == want.String(), "avail " + got
	})
}

// nodeState is node's state as observer sees it.
func (l *lab) nodeState(observer, node string) cluster.NodeState {
	st, err := l.view(observer)
	if err != nil || st.Node[node] == nil {
		return cluster.Unknown
	}
	return st.Node[node].State
}

// waitFor polls cond until it holds; on timeout it fails with what and
// cond's last word.
func (l *lab) waitFor(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	l.t.Helper()
	begin := time.Now()
	for {
		ok, why := cond()
		if ok {
			return time.Since(begin)
		}
		if time.Since(begin) > timeout {
			l.t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mounted reports whether mnt is mounted in node's mount namespace (false
// when the node is off).
func (l *lab) mounted(node, mnt string) bool {
	l.t.Helper()
	pid := l.labNode(node).InitPid
	if pid == 0 {
		return false
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mounts", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 1 && fields[1] == mnt {
			return true
		}
	}
	return false
}

// logSize is where node's log ends now: what a scenario writes comes
// after it.
func (l *lab) logSize(node string) int64 {
	fi, err := os.Stat(l.logPath(node))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logLine is one line of a vigild log.
type logLine struct {
	at   time.Time
	text string
}

// logSince returns node's log lines after offset.
func (l *lab) logSince(node string, offset int64) []logLine {
	b, err := os.ReadFile(l.logPath(node))
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	var out []logLine
	for _, s := range strings.Split(string(b[offset:]), "\n") {
		if s == "" {
			continue
		}
		ts, _, _ := strings.Cut(s, " ")
		at, _ := time.Parse(time.RFC3339Nano, ts)
		out = append(out, logLine{at: at, text: s})
	}
	return out
}

// find returns the index of the first line matching re, or -1.
func find(lines []logLine, re *regexp.Regexp) int {
	for i, ln := range lines {
		if re.MatchString(ln.text) {
			return i
		}
	}
	return -1
}

// count counts the lines matching re.
func count(lines []logLine, re *regexp.Regexp) int {
	n := 0
	for _, ln := range lines {
		if re.MatchString(ln.text) {
			n++
		}
	}
	return n
}

// secsAfter is the time from t0 to line i's timestamp, for t.Logf.
func secsAfter(lines []logLine, i int, t0 time.Time) string {
	if i < 0 || lines[i].at.IsZero() {
		return "?"
	}
	return fmt.Sprintf("%.2fs", lines[i].at.Sub(t0).Seconds())
}

// action runs an operator action through node's API, logging its
// progress lines.
func (l *lab) action(node, svc string, req api.ActionRequest, timeout time.Duration) error {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.client(node).Action(ctx, svc, req, func(line string) { l.t.Logf("  %s: %s", node, line) })
}

// Log patterns the scenarios look for.
var (
	reFenced = func(node string) *regexp.Regexp {
		return regexp.MustCompile(`node fenced: power-off confirmed.*target=` + node + `\b`)
	}
	reFenceFailed = func(node string) *regexp.Regexp {
		return regexp.MustCompile(`fencing failed: no takeover until it succeeds.*target=` + node + `\b`)
	}
	reStarted = func(svc string) *regexp.Regexp {
		return regexp.MustCompile(`action done:.*svc=` + regexp.QuoteMeta(svc) + ` action=start`)
	}
	rePeerLost   = regexp.MustCompile(`peer lost`)
	reQuorumLost = regexp.MustCompile(`quorum lost`)
)

func regexpStopped(svc string) *regexp.Regexp {
	return regexp.MustCompile(`action done:.*svc=` + regexp.QuoteMeta(svc) + ` action=stop`)
}

func regexpLiteral(s string) *regexp.Regexp { return regexp.MustCompile(regexp.QuoteMeta(s)) }

func itoa(i int) string { return strconv.Itoa(i) }

// waitStarted waits until both seed services are up on node, in its own
// view, and their starts are in its log after offset: the status can read
// up a moment before the start action logs its end.
func (l *lab) waitStarted(node string, offset int64) {
	l.t.Helper()
	for _, svc := range seedServices {
		l.waitAvail(node, node, svc, status.Up, failoverTimeout)
	}
	l.waitFor("both starts in "+node+"'s log", 60*time.Second, func() (bool, string) {
		lines := l.logSince(node, offset)
		for _, svc := range seedServices {
			if find(lines, reStarted(svc)) < 0 {
				return false, "no \"action done\" start line for " + svc
			}
		}
		return true, ""
	})
}

// with is the same lab for a subtest: its failures are the subtest's.
func (l *lab) with(t *testing.T) *lab {
	c := *l
	c.t = t
	return &c
}
