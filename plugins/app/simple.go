package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// A simple app's process is found again from its pid file: "PID
// STARTTIME", the start time in clock ticks since boot as
// /proc/PID/stat's 22nd field says. A pid the kernel gave to another
// process since has another start time, so a stale file never makes the
// plugin signal a stranger.

// proc is a simple app's process as its pid file records it.
type proc struct {
	pid   int
	start uint64
}

func pidFile(dir, rid string) string { return filepath.Join(dir, fileBase(rid)+".pid") }
func logFile(dir, rid string) string { return filepath.Join(dir, fileBase(rid)+".log") }

// startTime reads a live (not zombie) process's start time.
func startTime(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return st, err == nil
}

// alive tells whether p is still the process the pid file names.
func (p proc) alive() bool {
	st, ok := startTime(p.pid)
	return ok && st == p.start
}

func readProc(path string) (proc, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return proc{}, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return proc{}, false
	}
	pid, err1 := strconv.Atoi(f[0])
	st, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 1 {
		return proc{}, false
	}
	return proc{pid: pid, start: st}, true
}

// running returns the app's live process, if any.
func running(dir, rid string) (proc, bool) {
	p, ok := readProc(pidFile(dir, rid))
	if !ok || !p.alive() {
		return proc{}, false
	}
	return p, true
}

// settle is how long a simple app must stay alive after its spawn for
// start to succeed when it has no check command.
const settle = 300 * time.Millisecond

// simpleStart spawns the app's process, detached from the plugin, unless
// it runs already.
func (d *Driver) simpleStart(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, errs := commandSpecOf(r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("app", errs)
	}
	dir, err := stateDir(r)
	if err != nil {
		return nil, err
	}
	if p, ok := running(dir, r.RID); ok {
		return []string{fmt.Sprintf("already running, pid %d", p.pid)}, nil
	}
	p, exited, err := d.spawn(r, s, dir)
	if err != nil {
		return nil, err
	}
	limit := timeout(r, "start_timeout", defaultStartTimeout)
	deadline := time.Now().Add(limit)
	settled := time.Now().Add(settle)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("%s exited as it started: %s (see %s)", s.start[0], lastLines(logFile(dir, r.RID), 3), logFile(dir, r.RID))
		case <-ctx.Done():
			d.kill(ctx, p, s, r, dir)
			return nil, fmt.Errorf("start of %s: %w", s.start[0], ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().Before(settled) {
			continue
		}
		if s.check == nil {
			return []string{fmt.Sprintf("running, pid %d", p.pid)}, nil
		}
		if st := d.check(ctx, r, s, dir, pidEnv(p)); st.Status == sdk.StatusUp {
			return []string{fmt.Sprintf("running, pid %d; check exits 0", p.pid)}, nil
		}
		if time.Now().After(deadline) {
			d.kill(ctx, p, s, r, dir)
			return nil, fmt.Errorf("%s runs (pid %d) but check did not exit 0 within start_timeout %s: stopped it again", s.start[0], p.pid, limit)
		}
	}
}

func pidEnv(p proc) string { return "VIGIL_APP_PID=" + strconv.Itoa(p.pid) }

// spawn starts the process in its own session (a signal to the plugin's
// process group does not reach it, and it has no parent-death signal),
// output appended to its log file, and records it before anything else
// can happen: a plugin killed right after the fork must not leave an app
// nobody finds. The channel gets its exit while this plugin lives; the
// goroutine behind it reaps it.
func (d *Driver) spawn(r sdk.Resource, s *commandSpec, dir string) (proc, <-chan struct{}, error) {
	logPath := logFile(dir, r.RID)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return proc{}, nil, fmt.Errorf("open the app's log: %w", err)
	}
	defer logf.Close()
	if s.cred != nil {
		_ = logf.Chown(int(s.cred.Uid), int(s.cred.Gid))
	}
	fmt.Fprintf(logf, "--- %s vigil: starting %s\n", time.Now().Format(time.RFC3339), strings.Join(s.start, " "))
	argv := atNormalPriority(s.start)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = s.cwd, s.environ(r)
	cmd.Stdout, cmd.Stderr = logf, logf // a file, not a pipe: nothing breaks when the plugin dies
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: s.cred}
	// In the service's cgroup, not vigild's: it outlives a restart of
	// vigild under the unit's default KillMode.
	place := sdk.PlaceCommand(cmd, r.Service.Name, r.RID)
	err = cmd.Start()
	place.Started()
	if err != nil {
		return proc{}, nil, fmt.Errorf("start %s: %w", s.start[0], err)
	}
	st, ok := startTime(cmd.Process.Pid)
	if !ok {
		_ = cmd.Wait()
		return proc{}, nil, fmt.Errorf("%s exited as it started: %s (see %s)", s.start[0], lastLines(logPath, 3), logPath)
	}
	p := proc{pid: cmd.Process.Pid, start: st}
	if err := writeProc(pidFile(dir, r.RID), p); err != nil {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return proc{}, nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	d.log.Info("simple app started", "service", r.Service.Name, "rid", r.RID, "pid", p.pid)
	return p, exited, nil
}

// writeProc writes the pid file atomically, so a plugin reading it
// concurrently never sees half of it.
func writeProc(path string, p proc) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", p.pid, p.start)), 0o600); err != nil {
		return fmt.Errorf("write the app's pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the app's pid file: %w", err)
	}
	return nil
}

func lastLines(path string, n int) string {
	lines := run{output: readFileTail(path, 4096)}.tail(n)
	if len(lines) == 0 {
		return "no output"
	}
	return strings.Join(lines, " | ")
}

// simpleStop runs stop (when set), then signals the process group:
// SIGTERM, SIGKILL after stop_timeout.
func (d *Driver) simpleStop(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, errs := commandSpecOf(r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("app", errs)
	}
	dir, err := stateDir(r)
	if err != nil {
		return nil, err
	}
	p, ok := running(dir, r.RID)
	if !ok {
		_ = os.Remove(pidFile(dir, r.RID))
		return []string{"not running"}, nil
	}
	var log []string
	if s.stop != nil {
		res := runCommand(ctx, s.stop, s.cwd, s.environ(r, pidEnv(p)), s.cred, timeout(r, "stop_timeout", defaultStopTimeout), filepath.Join(dir, fileBase(r.RID)+".stop.out"))
		if err := commandFailed("stop", res); err != nil {
			log = append(log, err.Error()+"; signalling the process")
		}
	}
	if err := d.kill(ctx, p, s, r, dir); err != nil {
		return log, err
	}
	return append(log, fmt.Sprintf("stopped pid %d", p.pid)), nil
}

// kill ends p's process group: SIGTERM, then SIGKILL after stop_timeout
// (bounded by ctx, keeping a moment for the kill).
func (d *Driver) kill(ctx context.Context, p proc, s *commandSpec, r sdk.Resource, dir string) error {
	grace := timeout(r, "stop_timeout", defaultStopTimeout)
	if dl, ok := ctx.Deadline(); ok {
		grace = min(grace, max(time.Until(dl)-2*time.Second, 0))
	}
	if p.alive() {
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
		_ = syscall.Kill(p.pid, syscall.SIGTERM) // in case it left its group
	}
	if !waitGone(p, grace) {
		d.log.Warn("app did not exit after SIGTERM, killing it", "service", r.Service.Name, "rid", r.RID, "pid", p.pid, "grace", grace)
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		if !waitGone(p, 5*time.Second) {
			return fmt.Errorf("%s pid %d survived SIGKILL for 5s (stuck in the kernel?): check it with ps -o stat,wchan -p %d", s.start[0], p.pid, p.pid)
		}
	}
	if err := os.Remove(pidFile(dir, r.RID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the app's pid file: %w", err)
	}
	return nil
}

func waitGone(p proc, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// simpleStatus: the process gone is down; alive, check (when set) says.
func (d *Driver) simpleStatus(ctx context.Context, r sdk.Resource) sdk.ResourceStatus {
	s, errs := commandSpecOf(r)
	if len(errs) > 0 {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Log: []string{sdk.FieldErrors("app", errs).Error()}}
	}
	dir, err := stateDir(r)
	if err != nil {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Log: []string{err.Error()}}
	}
	p, ok := running(dir, r.RID)
	if !ok {
		st := sdk.ResourceStatus{Status: sdk.StatusDown, Label: s.start[0]}
		if _, had := readProc(pidFile(dir, r.RID)); had {
			st.Log = []string{"the process exited: " + lastLines(logFile(dir, r.RID), 2)}
		}
		return st
	}
	if s.check == nil {
		return sdk.ResourceStatus{Status: sdk.StatusUp, Label: fmt.Sprintf("pid %d %s", p.pid, s.start[0])}
	}
	st := d.check(ctx, r, s, dir, pidEnv(p))
	st.Label = fmt.Sprintf("pid %d %s", p.pid, s.start[0])
	return st
}
