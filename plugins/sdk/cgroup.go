package sdk

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServicesSlice is the systemd slice, and HandMadeCgroup the cgroup v2
// directory when systemd does not run the host, that hold what plugins
// start for services (private docker daemons, apps). They are outside
// vigild's own cgroup, so vigild's unit keeps systemd's default
// KillMode=control-group: stopping or restarting vigild kills vigild and
// its plugins, never the services.
const (
	ServicesSlice  = "vigil-services.slice"
	HandMadeCgroup = "vigil-services"
)

// Placement says where PlaceCommand put a command.
type Placement struct {
	// Where is "scope UNIT in vigil-services.slice", "cgroup DIR", or
	// "unchanged: WHY" when neither could be used (the command then runs
	// in the plugin's cgroup, as before).
	Where string
	// done releases what the placement holds once the command started.
	done func()
}

// Started releases what PlaceCommand held for cmd.Start (a cgroup
// directory's descriptor); call it once cmd.Start returned.
func (p Placement) Started() {
	if p.done != nil {
		p.done()
	}
}

// PlaceCommand arranges for cmd, not started yet, to run in a cgroup of
// its own for service: a transient scope in vigil-services.slice when
// systemd is PID 1 (systemd-run --scope execs the command in the same
// process), else a cgroup v2 directory made by hand that the process is
// cloned into (CLONE_INTO_CGROUP: its children can never start in the
// plugin's cgroup first). role names the process ("dockerd", "app#1").
// When neither is possible it leaves cmd as is and says why.
//
// It also gives the command the OOM score adjustment of an ordinary
// process: vigild's unit makes vigild and its plugins the last the OOM
// killer picks (OOMScoreAdjust), and a service must not inherit that.
func PlaceCommand(cmd *exec.Cmd, service, role string) Placement {
	normalOOMScore(cmd)
	if systemdRuns() {
		if why := systemdRunUsable(); why != "" {
			return Placement{Where: "unchanged: " + why}
		}
		unit := fmt.Sprintf("vigil-%s-%s-%d.scope", unitWord(service), unitWord(role), time.Now().UnixNano())
		bin, _ := exec.LookPath("systemd-run")
		args := []string{bin, "--scope", "--quiet", "--collect", "--slice=" + ServicesSlice, "--unit=" + unit,
			"--description=Vigil service " + service + ": " + role, "--"}
		cmd.Args = append(append(args, cmd.Path), cmd.Args[1:]...)
		cmd.Path = bin
		return Placement{Where: "scope " + unit + " in " + ServicesSlice}
	}
	root, err := cgroup2Root()
	if err != nil {
		return Placement{Where: "unchanged: " + err.Error()}
	}
	dir := filepath.Join(root, HandMadeCgroup, unitWord(service))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Placement{Where: fmt.Sprintf("unchanged: make the cgroup %s: %v", dir, err)}
	}
	f, err := os.Open(dir)
	if err != nil {
		return Placement{Where: fmt.Sprintf("unchanged: open the cgroup %s: %v", dir, err)}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(f.Fd())
	return Placement{Where: "cgroup " + dir, done: func() { f.Close() }}
}

// systemdRuns reports whether systemd is the host's init, as
// sd_booted(3) tells it.
func systemdRuns() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

var (
	probeOnce sync.Once
	probeWhy  string
)

// systemdRunUsable checks once that systemd-run can make a scope in the
// slice ("" when it can): a failure must fall back before a service's
// start, not abort it.
func systemdRunUsable() string {
	probeOnce.Do(func() {
		bin, err := exec.LookPath("systemd-run")
		if err != nil {
			probeWhy = "systemd runs but systemd-run is not installed"
			return
		}
		unit := fmt.Sprintf("vigil-probe-%d.scope", time.Now().UnixNano())
		out, err := exec.Command(bin, "--scope", "--quiet", "--collect", "--slice="+ServicesSlice, "--unit="+unit, "--", "true").CombinedOutput()
		if err != nil {
			probeWhy = fmt.Sprintf("systemd-run --scope failed: %v: %s", err, strings.TrimSpace(string(out)))
		}
	})
	return probeWhy
}

// cgroup2Root is where the cgroup v2 hierarchy is mounted, the process's
// own cgroup namespace root: /sys/fs/cgroup, or /sys/fs/cgroup/unified on
// a hybrid host.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts... - fstype source opts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		fields := strings.Fields(pre)
		if len(fields) >= 5 && fields[3] == "/" {
			return fields[4], nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy mounted")
}

// unitWord keeps what a systemd unit name and a cgroup directory name
// both take: letters, digits, '-', '_' and '.'; anything else reads '_'.
func unitWord(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// ReleaseCgroup removes service's hand-made cgroup once nothing runs in
// it (a cgroup with processes stays: the kernel refuses). Scopes need
// nothing: systemd collects them.
func ReleaseCgroup(service string) {
	if systemdRuns() {
		return
	}
	if root, err := cgroup2Root(); err == nil {
		_ = os.Remove(filepath.Join(root, HandMadeCgroup, unitWord(service)))
	}
}

// normalOOMScore makes cmd exec through choom(1) with adjustment 0 when
// this process runs with another: choom sets it and execs the command in
// the same process, so nothing the command forks inherits vigild's.
func normalOOMScore(cmd *exec.Cmd) {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil || strings.TrimSpace(string(b)) == "0" {
		return
	}
	bin, err := exec.LookPath("choom")
	if err != nil {
		return // util-linux's choom missing: the command keeps vigild's
	}
	cmd.Args = append([]string{bin, "-n", "0", "--", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = bin
}
