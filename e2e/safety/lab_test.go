package safety

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	vlab "github.com/vigil-ha/vigil/e2e/lab"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// suite is this package's labs: beside the lab's own binaries, svcmgr
// (the tests run `svcmgr validate` in a node).
var suite = &labtest.Suite{
	Name:  "safety",
	Build: []string{"./cmd/svcmgr", "./cmd/vigil-arbitrator"},
	Need:  []string{"svcmgr", "vigil-arbitrator"},
	Poll:  50 * time.Millisecond,
}

func TestMain(m *testing.M) { suite.Main(m) }

// lab is one two-node vigil-lab lab, n1 and n2, at labtest's starting
// point: both seed services up on n1 under orchestrate = ha.
type lab struct {
	*labtest.Lab
	st *vlab.Lab // the lab's layout (names, addresses, devices)
}

func newLab(t *testing.T, prefix string) *lab {
	return newLabWith(t, labtest.Options{Prefix: prefix, Nodes: 2})
}

// newLabWith is newLab with the lab's options.
func newLabWith(t *testing.T, opts labtest.Options) *lab {
	t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (the faults the lab has no command for are rules in a node's network namespace)")
	}
	l := &lab{Lab: suite.New(t, opts)}
	l.st = l.State()
	return l
}

// peerOf is the other node of a two-node lab.
func peerOf(node string) string { return map[string]string{"n1": "n2", "n2": "n1"}[node] }

// addr is node's address on the lab's network.
func (l *lab) addr(node string) string {
	k, _ := l.st.NodeIndex(node)
	return l.st.NodeAddr(k)
}

// bmc is node's BMC address.
func (l *lab) bmc(node string) string {
	k, _ := l.st.NodeIndex(node)
	return l.st.BMCAddr(k)
}

// iptables runs iptables in node's network namespace: a node's firewall,
// for the faults vigil-lab has no command for.
func (l *lab) iptables(node string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.st.NodeNS(node), "iptables", "-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: iptables %s: %v: %s", node, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// rule is one iptables rule in a node's namespace.
type rule struct {
	node string
	spec []string // chain and match, e.g. OUTPUT -d 10.0.0.101 -j DROP
}

// addRule inserts r and removes it in the test's cleanup (gone anyway when
// the node is powered off: its namespace goes with it).
func (l *lab) addRule(r rule) {
	l.T.Helper()
	if err := l.iptables(r.node, append([]string{"-I"}, r.spec...)...); err != nil {
		l.T.Fatal(err)
	}
	l.T.Cleanup(func() { _ = l.iptables(r.node, append([]string{"-D"}, r.spec...)...) })
}

// delRule removes r; a node powered off since has it no more.
func (l *lab) delRule(r rule) {
	l.T.Helper()
	if err := l.iptables(r.node, append([]string{"-D"}, r.spec...)...); err != nil && l.st.NodeInit(r.node) != nil {
		l.T.Fatal(err)
	}
}

// blockBMC makes target's BMC silent for node: its answers to node are
// dropped in node's namespace, so node's requests go out and time out, as
// with a BMC that does not answer (no session opens, so no request of
// node's acts). Once the rule is removed, the next retransmission of a
// request still in flight is answered: a slow BMC. The BMC answers
// everyone else all along.
func (l *lab) blockBMC(node, target string) rule {
	r := rule{node, []string{"INPUT", "-s", l.bmc(target), "-p", "udp", "--sport", "623", "-j", "DROP"}}
	l.addRule(r)
	return r
}

// cutHeartbeats cuts both heartbeats between the two nodes and nothing
// else: node's traffic with its peer is dropped in node's namespace (the
// network heartbeat), and node's view of the heartbeat disk is cut
// (vigil-lab cut --link disk). Both BMCs stay reachable from both nodes.
func (l *lab) cutHeartbeats(node string) []rule {
	peer := l.addr(peerOf(node))
	rules := []rule{
		{node, []string{"INPUT", "-s", peer, "-j", "DROP"}},
		{node, []string{"OUTPUT", "-d", peer, "-j", "DROP"}},
	}
	for _, r := range rules {
		l.addRule(r)
	}
	l.MustLab("cut", node, "--link", "disk")
	return rules
}

// bootCounter is node's vigild boot counter (its state directory's boot
// file): it grows at every daemon start.
func (l *lab) bootCounter(node string) string {
	b, _ := os.ReadFile(filepath.Join(l.NodeDir(node), "lib", "boot"))
	return strings.TrimSpace(string(b))
}

// power is node's power as its BMC says, asked from the client namespace.
func (l *lab) power(node string) string {
	k, _ := l.st.NodeIndex(node)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	p, why := l.st.PowerState(ctx, k)
	if why != "" {
		l.T.Logf("power state of %s: %s", node, why)
	}
	return p
}

// vigild is node's vigild host pid (0 when none runs).
func (l *lab) vigild(node string) int { return l.st.VigildPid(node) }

// plugins are the plugin processes among pid's children (not what they
// started for the services: a private docker daemon is the service's).
func plugins(pid int) []int {
	var out []int
	for _, c := range vlab.Children(pid) {
		if strings.HasPrefix(commOf(c), "vigil-plugin") {
			out = append(out, c)
		}
	}
	return out
}

// commOf is a process's command name.
func commOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// signal sends sig to each pid (host pids of processes the lab started);
// one that has ended meanwhile (a short-lived command) is skipped.
func signal(pids []int, sig syscall.Signal) error {
	for _, p := range pids {
		if err := syscall.Kill(p, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill -%d %d: %w", sig, p, err)
		}
	}
	return nil
}

// instance is svc's instance on node, as observer sees it (nil when
// unknown).
func (l *lab) instance(observer, node, svc string) *cluster.ServiceInstance {
	return l.Instance(observer, node, svc)
}

// describe is svc's instance on each node as that node reports it, for
// the logs: "n1 up/started n2 down/idle".
func (l *lab) describe(svc string) string {
	var parts []string
	for _, n := range l.Nodes {
		inst := l.instance(n, n, svc)
		if inst == nil {
			parts = append(parts, n+" ?")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s/%s", n, inst.Status.Avail, or(inst.State, "idle")))
	}
	return strings.Join(parts, " ")
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// convergedOn says whether svc runs on exactly one node, as both nodes
// report it, and is down (not partly up, not on its way) on the other:
// the node, or "" with what is off.
func (l *lab) convergedOn(svc string) (string, string) {
	var up []string
	for _, n := range l.Nodes {
		inst := l.instance(n, n, svc)
		if inst == nil {
			return "", n + " does not answer"
		}
		switch {
		case inst.State == "starting" || inst.State == "stopping" || inst.State == "ready":
			return "", fmt.Sprintf("%s: %s", n, inst.State)
		case inst.Status.Avail == status.Up:
			up = append(up, n)
		case inst.Status.Avail != status.Down:
			return "", fmt.Sprintf("%s: avail %s (%s)", n, inst.Status.Avail, or(inst.State, "idle"))
		}
	}
	if len(up) != 1 {
		return "", fmt.Sprintf("up on %d nodes (%s)", len(up), l.describe(svc))
	}
	return up[0], ""
}

// Log lines the tests look for.
var (
	reFenced = func(target string) *regexp.Regexp {
		return regexp.MustCompile(`node fenced: .*target=` + target + `\b`)
	}
	reFenceFailed = func(target string) *regexp.Regexp {
		return regexp.MustCompile(`fencing failed: no takeover until it succeeds.*target=` + target + `\b`)
	}
	reStarted = func(svc string) *regexp.Regexp {
		return regexp.MustCompile(`action done: .*service=` + regexp.QuoteMeta(svc) + ` action=start`)
	}
	reOrchStop = func(svc string) *regexp.Regexp {
		return regexp.MustCompile(`orchestrated stop: .*service=` + regexp.QuoteMeta(svc) + `\b`)
	}
)

// grep returns the lines that match re.
func grep(lines []string, re *regexp.Regexp) []string {
	var out []string
	for _, s := range lines {
		if re.MatchString(s) {
			out = append(out, s)
		}
	}
	return out
}

// first is the index of the first line matching re, or -1.
func first(lines []string, re *regexp.Regexp) int {
	return slices.IndexFunc(lines, re.MatchString)
}

// tail is the last n lines, for a failure message.
func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// A sample is what the watcher saw at one instant: for each node, the
// roles of the watched devices mounted in any of its mount namespaces (its
// own, its containers'), and for each watched address the nodes that hold
// it. A node's earlier life (its namespaces from before a power-off, still
// being torn down by the kernel) is "nK~"; a namespace of no node "host".
type sample struct {
	at     time.Time
	mounts map[string][]string // node → device roles mounted there
	addrs  map[string][]string // address → nodes holding it
}

// watcher samples the lab every 50 ms until stopped.
type watcher struct {
	l     *lab
	devs  map[string]string // "MAJ:MIN" → role
	addrs []string
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	samples []sample
	// lives are the pid namespaces of every node init seen (inode →
	// node), current each node's live one.
	lives   map[uint64]string
	current map[string]uint64
	// mntNS: the mount namespace of each node's init seen → the node;
	// curMnt: each node's live one.
	mntNS  map[string]string
	curMnt map[string]string
}

// watch starts sampling the mounts of the given disk roles (registry-root,
// …) in every mount namespace of the host, by device number, and the
// holders of the given addresses.
func (l *lab) watch(roles []string, addrs []string) *watcher {
	l.T.Helper()
	w := &watcher{l: l, devs: map[string]string{}, addrs: addrs, stop: make(chan struct{}), done: make(chan struct{}),
		lives: map[uint64]string{}, current: map[string]uint64{}, mntNS: map[string]string{}, curMnt: map[string]string{}}
	for _, role := range roles {
		dev := l.st.LoopDev(role)
		var st unix.Stat_t
		if err := unix.Stat(dev, &st); err != nil {
			l.T.Fatalf("disk %s (%s): %v", role, dev, err)
		}
		w.devs[fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))] = role
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			s := w.sample()
			w.mu.Lock()
			w.samples = append(w.samples, s)
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	l.T.Cleanup(func() { w.Stop() })
	return w
}

// Stop ends the sampling (idempotent) and returns the samples.
func (w *watcher) Stop() []sample {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.samples)
}

// Samples are the samples so far.
func (w *watcher) Samples() []sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.samples)
}

func (w *watcher) sample() sample {
	s := sample{at: time.Now(), mounts: map[string][]string{}, addrs: map[string][]string{}}
	for _, n := range w.l.Nodes {
		w.current[n], w.curMnt[n] = 0, ""
		p := w.l.st.NodeInit(n)
		if p == nil {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", p.Pid), &st); err == nil {
			w.lives[st.Ino], w.current[n] = n, st.Ino
		}
		for _, a := range w.addrs {
			if holdsAddr(p.Pid, a) {
				s.addrs[a] = append(s.addrs[a], n)
			}
		}
	}
	for n, ino := range w.current {
		if ino == 0 {
			continue
		}
		if p := w.l.st.NodeInit(n); p != nil {
			if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.Pid)); err == nil {
				w.mntNS[ns], w.curMnt[n] = n, ns
			}
		}
	}
	entries, _ := os.ReadDir("/proc")
	seen := map[string]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || seen[ns] {
			continue
		}
		// The node first: a process that exits between the two reads
		// (a powered-off node's, being torn down) would otherwise have
		// its mounts read and then its pid namespace not found, and
		// count as the host's.
		node, ok := w.nodeOf(pid)
		if !ok {
			continue // gone meanwhile: another process of its namespace will do
		}
		roles, ok := w.mounted(pid)
		if !ok {
			continue
		}
		seen[ns] = true
		if len(roles) == 0 {
			continue
		}
		if n, ok := w.mntNS[ns]; ok && node == "host" {
			// A host process that entered a node's mount namespace
			// (a command run in the node, nsenter): the node's mounts,
			// or its earlier life's.
			node = n
			if w.curMnt[n] != ns {
				node = n + "~"
			}
		}
		for _, r := range roles {
			if !slices.Contains(s.mounts[node], r) {
				s.mounts[node] = append(s.mounts[node], r)
			}
		}
	}
	return s
}

// mounted are the watched roles mounted in pid's mount namespace; false
// when its mount table could not be read.
func (w *watcher) mounted(pid int) ([]string, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	var roles []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 {
			if r, ok := w.devs[fields[2]]; ok && !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	return roles, sc.Err() == nil
}

// nodeOf is the node a host process belongs to, by its pid namespace: a
// node's, or one nested in it (a container's). Unlike its parents, a
// process's pid namespace stays what it was while the kernel tears a
// powered-off node down. "host" when it is in no node; false when the
// process is gone.
func (w *watcher) nodeOf(pid int) (string, bool) {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/pid", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	for range 32 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			break
		}
		if n, ok := w.lives[st.Ino]; ok {
			unix.Close(fd)
			if w.current[n] != st.Ino {
				return n + "~", true
			}
			return n, true
		}
		parent, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		unix.Close(fd)
		if err != nil {
			return "host", true // the host's own: it has no parent here
		}
		fd = parent
	}
	unix.Close(fd)
	return "host", true
}

// holdsAddr says whether the network namespace of pid has addr as a local
// address (its local routing table, /proc/PID/net/fib_trie, lists every
// address of the namespace as a /32 host LOCAL leaf).
func holdsAddr(pid int, addr string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/fib_trie", pid))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	for i, ln := range lines {
		if strings.HasSuffix(ln, "-- "+addr) {
			for j := i + 1; j < len(lines) && j < i+4 && !strings.Contains(lines[j], "-- "); j++ {
				if strings.Contains(lines[j], "/32 host LOCAL") {
					return true
				}
			}
		}
	}
	return false
}

// nodesWith are the nodes where a sample has any of roles mounted (any,
// when roles is nil); the lives of one node count as one node.
func (s sample) nodesWith(roles []string) []string {
	var out []string
	for n, rs := range s.mounts {
		n = strings.TrimSuffix(n, "~")
		if slices.Contains(out, n) {
			continue
		}
		if slices.ContainsFunc(rs, func(r string) bool { return roles == nil || slices.Contains(roles, r) }) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func (s sample) String() string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(s.mounts)) {
		r := slices.Clone(s.mounts[n])
		slices.Sort(r)
		parts = append(parts, n+"["+strings.Join(r, ",")+"]")
	}
	for a, ns := range s.addrs {
		parts = append(parts, a+"@"+strings.Join(ns, ","))
	}
	return s.at.Format("15:04:05.000") + " " + strings.Join(parts, " ")
}

// action runs an operator action through node's API.
func (l *lab) action(node, svc string, req api.ActionRequest) {
	l.T.Helper()
	if err := l.Action(node, svc, req, labtest.FailoverTimeout); err != nil {
		l.T.Fatalf("%s: %s %s: %v", node, req.Action, svc, err)
	}
}

// configSet sets keywords of svc through node's API and waits until every
// node's file has them.
func (l *lab) configSet(node, svc string, kv ...string) {
	l.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := l.Client(node).ConfigSet(ctx, svc, kv)
	cancel()
	if err != nil {
		l.T.Fatalf("%s: %s set %s: %v", node, svc, strings.Join(kv, " "), err)
	}
	l.WaitFor(svc+" "+strings.Join(kv, " ")+" in every node's file", 30*time.Second, func() (bool, string) {
		for _, n := range l.Nodes {
			b, _ := os.ReadFile(filepath.Join(l.NodeDir(n), "etc", svc+".env"))
			for _, s := range kv {
				k, v, _ := strings.Cut(s, "=")
				if !hasKeyword(string(b), k, v) {
					return false, n + " has no " + s
				}
			}
		}
		return true, ""
	})
}

// hasKeyword says whether a service file sets key (section.key or a
// DEFAULT key) to val.
func hasKeyword(file, key, val string) bool {
	section, kw, ok := strings.Cut(key, ".")
	if !ok {
		section, kw = "DEFAULT", key
	}
	cur := ""
	for _, ln := range strings.Split(file, "\n") {
		ln = strings.TrimSpace(ln)
		if strings.HasPrefix(ln, "[") && strings.HasSuffix(ln, "]") {
			cur = ln[1 : len(ln)-1]
			continue
		}
		k, v, ok := strings.Cut(ln, "=")
		if ok && cur == section && strings.TrimSpace(k) == kw && strings.TrimSpace(v) == val {
			return true
		}
	}
	return false
}
