package failover

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// suite is this package's labs: beside the lab's own binaries, svcmgr
// (the tests run it in the nodes), regclient (in the client namespace)
// and svcmon.
var suite = &labtest.Suite{
	Name:  "failover",
	Build: []string{"./cmd/svcmgr", "./cmd/svcmon", "./e2e/lab/regclient"},
	Need:  []string{"svcmgr", "svcmon", "regclient"},
	Poll:  50 * time.Millisecond,
}

func TestMain(m *testing.M) { suite.Main(m) }

// lab is one vigil-lab lab of two nodes, n1 and n2.
type lab struct {
	*labtest.Lab
	regAddr  string // the registry's floating address
	clientNS string
}

// newLab builds a two-node lab at the scenarios' starting point (see
// labtest.Suite.New) and finds the registry's address and the client
// namespace in it.
func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{Lab: suite.New(t, labtest.Options{Prefix: "f", Nodes: 2})}
	st := l.LabStatus()
	l.regAddr, l.clientNS = st.Services[labtest.Registry], st.ClientNS
	if l.regAddr == "" || l.clientNS == "" {
		t.Fatalf("vigil-lab status: no registry address or client namespace: %+v", st)
	}
	return l
}

// requireOn checks the scenario's starting point: both seed services up
// on node and down on the other, both nodes ready in each other's view.
func (l *lab) requireOn(node string) {
	l.T.Helper()
	other := map[string]string{"n1": "n2", "n2": "n1"}[node]
	l.WaitReady(node, other, labtest.RejoinTimeout)
	l.WaitReady(other, node, labtest.RejoinTimeout)
	for _, svc := range labtest.SeedServices {
		l.WaitAvail(node, node, svc, status.Up, labtest.FailoverTimeout)
		l.WaitAvail(other, other, svc, status.Down, labtest.FailoverTimeout)
	}
}

// Log lines the tests look for.
var (
	reStarted = func(svc string) *regexp.Regexp {
		return regexp.MustCompile(`action done: .*service=` + regexp.QuoteMeta(svc) + ` action=start`)
	}
	reOrchStart = func(svc string) *regexp.Regexp {
		return regexp.MustCompile(`orchestrated start: .*service=` + regexp.QuoteMeta(svc) + `\b`)
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
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.clientNS, filepath.Join(l.Bin, "regclient")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("regclient %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

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
	l.T.Helper()
	w := &mountWatch{mnt: mnt, stop: make(chan struct{}), done: make(chan struct{}), on: map[string]int{}}
	st := l.LabStatus()
	dirs := map[string]int{}
	for _, n := range st.Nodes {
		if n.InitPid == 0 {
			l.T.Fatalf("%s has no init (powered off?)", n.Name)
		}
		fd, err := unix.Open(fmt.Sprintf("/proc/%d", n.InitPid), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			l.T.Fatalf("%s: open its init's /proc entry: %v", n.Name, err)
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
