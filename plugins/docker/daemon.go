package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// The private daemon of a service lives in <RunDir>/docker. Everything
// needed to find it again (pid file, socket) is at a fixed place there, so
// a restarted plugin process finds the daemon without any state of its own.
const (
	daemonSubdir   = "docker"
	socketName     = "docker.sock"
	pidFileName    = "docker.pid"
	execRootName   = "exec"
	logFileName    = "dockerd.log"
	lockFileName   = "daemon.lock"
	configFileName = "daemon.json"
	maxSocketPath  = 107 // sun_path holds 108 bytes with the trailing NUL
)

// SocketPath returns the unix socket of the private docker daemon of the
// service whose runtime directory is runDir (sdk.Service.RunDir).
func SocketPath(runDir string) string {
	return filepath.Join(runDir, daemonSubdir, socketName)
}

// daemonPaths are the files of one service's private daemon.
type daemonPaths struct {
	dir, sock, pid, exec, log, lock, config string
}

func pathsFor(runDir string) daemonPaths {
	dir := filepath.Join(runDir, daemonSubdir)
	return daemonPaths{
		dir:    dir,
		sock:   filepath.Join(dir, socketName),
		pid:    filepath.Join(dir, pidFileName),
		exec:   filepath.Join(dir, execRootName),
		log:    filepath.Join(dir, logFileName),
		lock:   filepath.Join(dir, lockFileName),
		config: filepath.Join(dir, configFileName),
	}
}

func (p daemonPaths) host() string { return "unix://" + p.sock }

// managedDaemonFlags are dockerd flags vigil sets itself for a private
// daemon; docker_daemon_args may not override them or the daemon would
// not be found again.
var managedDaemonFlags = []string{
	"--data-root", "-g", "--graph", "--exec-root", "--pidfile", "-p", "-H", "--host",
	"--containerd-namespace", "--containerd-plugins-namespace",
}

// checkDaemonArgs reports a docker_daemon_args word that sets a flag vigil
// manages.
func checkDaemonArgs(words []string) error {
	for _, w := range words {
		for _, f := range managedDaemonFlags {
			long := strings.HasPrefix(f, "--")
			if w == f || (long && strings.HasPrefix(w, f+"=")) || (!long && !strings.HasPrefix(w, "--") && strings.HasPrefix(w, f)) {
				return fmt.Errorf("%s is set by vigil for the service's private daemon (data root from docker_data_dir, the rest under the service's run directory): remove it from docker_daemon_args", f)
			}
		}
	}
	return nil
}

// dockerdArgs is the command line of a service's private daemon. proxy is
// the userland proxy to publish ports with ("" for dockerd's own).
func dockerdArgs(p daemonPaths, svc, dataDir, proxy string, extra []string) []string {
	args := []string{
		"--data-root", dataDir,
		"--exec-root", p.exec,
		"--pidfile", p.pid,
		"-H", p.host(),
		"--containerd-namespace", "vigil-" + svc,
		"--containerd-plugins-namespace", "vigil-" + svc + "-plugins",
	}
	hasConfig, ownProxy := false, false
	for _, w := range extra {
		switch {
		case w == "--config-file" || strings.HasPrefix(w, "--config-file="):
			hasConfig = true
		case w == "--userland-proxy-path" || strings.HasPrefix(w, "--userland-proxy-path="),
			strings.HasPrefix(w, "--userland-proxy=") && w != "--userland-proxy=true":
			ownProxy = true // the service chose: no proxy, or its own
		}
	}
	if !hasConfig {
		// The system daemon's /etc/docker/daemon.json may set hosts,
		// data-root or pidfile, which dockerd refuses alongside the same
		// flags; the private daemon gets an empty one of its own.
		args = append(args, "--config-file", p.config)
	}
	if proxy != "" && !hasConfig && !ownProxy {
		// A file of the service's may set userland-proxy-path, which
		// dockerd refuses alongside the flag: with one, its choice stands.
		args = append(args, "--userland-proxy-path", proxy)
	}
	return append(args, extra...)
}

// lockDaemon takes the service's daemon lock: shared for work on
// containers, exclusive to start or stop the daemon. It is a RWMutex for
// the goroutines of this process and an flock on daemon.lock for other
// plugin processes (a plugin restarted while an old call still runs).
func (d *Driver) lockDaemon(ctx context.Context, p daemonPaths, exclusive bool) (unlock func(), err error) {
	d.mu.Lock()
	rw := d.svcLocks[p.dir]
	if rw == nil {
		rw = &sync.RWMutex{}
		d.svcLocks[p.dir] = rw
	}
	d.mu.Unlock()

	try, release, how := rw.TryRLock, rw.RUnlock, syscall.LOCK_SH
	if exclusive {
		try, release, how = rw.TryLock, rw.Unlock, syscall.LOCK_EX
	}
	if err := pollUntil(ctx, try); err != nil {
		return nil, fmt.Errorf("wait for the docker daemon lock of %s: %w", p.dir, err)
	}
	f, err := os.OpenFile(p.lock, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		release()
		return nil, fmt.Errorf("open the docker daemon lock: %w", err)
	}
	err = pollUntil(ctx, func() bool {
		return syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB) == nil
	})
	if err != nil {
		f.Close()
		release()
		return nil, fmt.Errorf("wait for the docker daemon lock %s (held by another vigil plugin process?): %w", p.lock, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		release()
	}, nil
}

// lockPoll is pollUntil's period. A waiter is a sibling container's
// start behind the daemon's start, on a takeover's path: on average half
// the period is added to it (10 ms at 20 ms, BenchmarkLockDaemon_Handoff),
// and a try costs a syscall at most.
const lockPoll = 2 * time.Millisecond

// pollUntil calls try until it succeeds or ctx ends. The locks it serves
// are held for seconds at most, so polling is cheaper than a lock manager.
func pollUntil(ctx context.Context, try func() bool) error {
	for {
		if try() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// prepareDaemonDir creates the private daemon's directories.
func prepareDaemonDir(p daemonPaths) error {
	if !filepath.IsAbs(p.dir) {
		return fmt.Errorf("the private docker daemon directory %q is not absolute: core gave the service no run directory", p.dir)
	}
	if len(p.sock) > maxSocketPath {
		return fmt.Errorf("the private docker socket path %s is longer than %d bytes, the unix socket limit: use a shorter run directory", p.sock, maxSocketPath)
	}
	for _, dir := range []string{p.dir, p.exec} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", dir, err)
		}
	}
	if _, err := os.Stat(p.config); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(p.config, []byte("{}\n"), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", p.config, err)
		}
	}
	return nil
}

// readPid returns the pid in the daemon's pid file, 0 when there is none.
func readPid(p daemonPaths) int {
	return readPidFile(p.pid)
}

// spawnRecord is where the plugin notes a dockerd's pid the moment it
// spawns it: dockerd writes its own pid file only later, and a plugin
// killed in between must not leave a daemon nobody can find (it would go
// on starting on a filesystem that a rollback unmounts).
func spawnRecord(p daemonPaths) string { return p.pid + ".spawn" }

func readPidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// isOurDaemon tells whether pid is a live (not zombie) dockerd started
// with p's pid file, so a stale pid file never makes vigil signal a pid
// the kernel has since given to another process.
func isOurDaemon(pid int, p daemonPaths) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	for i, a := range args {
		if (a == "--pidfile" || a == "-p") && i+1 < len(args) && args[i+1] == p.pid {
			return true
		}
		if a == "--pidfile="+p.pid {
			return true
		}
	}
	return false
}

// runningDaemonPid returns the pid of the service's live private daemon,
// or 0.
func runningDaemonPid(p daemonPaths) int {
	if pid := readPid(p); isOurDaemon(pid, p) {
		return pid
	}
	if pid := readPidFile(spawnRecord(p)); isOurDaemon(pid, p) {
		return pid
	}
	// A plugin killed between fork and the record: look for the daemon
	// by its command line, which names our pid file.
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		if pid, err := strconv.Atoi(filepath.Base(dir)); err == nil && isOurDaemon(pid, p) {
			return pid
		}
	}
	return 0
}

// spawnDaemon starts dockerd for a service, detached from the plugin: its
// own session (a signal to the plugin's process group does not reach it),
// no parent-death signal, output to its own log file. The returned channel
// gets dockerd's exit while this process lives; the goroutine behind it
// reaps the child. dockerd, its containers with it, runs in a cgroup of
// the service's (sdk.PlaceCommand), outside vigild's: vigild's unit keeps
// the default KillMode and a restart of vigild leaves it running; where
// says which.
func (d *Driver) spawnDaemon(p daemonPaths, service string, args []string) (pid int, exited <-chan error, where string, err error) {
	bin := d.cfg.DockerdPath
	if !strings.Contains(bin, "/") {
		if bin, err = exec.LookPath(bin); err != nil {
			return 0, nil, "", fmt.Errorf("find dockerd: %w (install docker.io, or set the plugin's DockerdPath)", err)
		}
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, "", fmt.Errorf("open the dockerd log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s vigil: starting %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))

	argv := atNormalPriority(ownNiceness(), append([]string{bin}, args...))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf // an *os.File is handed over as is: no pipe to break when the plugin dies
	cmd.Env = daemonEnv(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	place := sdk.PlaceCommand(cmd, service, "dockerd")
	err = cmd.Start()
	place.Started()
	if err != nil {
		return 0, nil, "", fmt.Errorf("start %s: %w", bin, err)
	}
	_ = os.WriteFile(spawnRecord(p), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	d.spawned.Add(1)
	return cmd.Process.Pid, ch, place.Where, nil
}

// atNormalPriority runs argv at niceness 0 when this plugin runs at
// another (vigild runs ahead of the services it manages, Nice=-10 in its
// unit, and its plugins inherit that): a service's docker daemon, its
// containers with it, must not. nice(1) execs argv in the same process, so
// no child of dockerd ever sees the plugin's priority.
func atNormalPriority(niceness int, argv []string) []string {
	if niceness == 0 {
		return argv
	}
	return append([]string{"nice", "-n", strconv.Itoa(-niceness)}, argv...)
}

// ownNiceness is this process's nice value (0 when it cannot be read).
func ownNiceness() int {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - p // the raw syscall answers 20 - nice
}

// daemonEnv drops what would make dockerd talk to vigild's service
// manager as if it were the service (sd_notify, socket activation).
func daemonEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "DOCKER_HOST":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// terminate sends SIGTERM to the daemon and waits for it to exit, then
// SIGKILL after grace (bounded by ctx, keeping a moment for the kill).
func terminate(ctx context.Context, pid int, p daemonPaths, grace time.Duration) error {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) - 2*time.Second; left < grace {
			grace = max(left, 0)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal dockerd pid %d: %w", pid, err)
	}
	if waitGone(pid, p, grace) {
		return nil
	}
	logger.Warn("dockerd did not exit after SIGTERM, killing it", "pid", pid, "grace", grace)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(pid, p, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("dockerd pid %d survived SIGKILL for 5s (stuck in the kernel?): check it with ps -o stat,wchan -p %d", pid, pid)
}

func waitGone(pid int, p daemonPaths, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !isOurDaemon(pid, p) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeDaemonFiles removes what a dead daemon may have left behind.
func removeDaemonFiles(p daemonPaths) {
	for _, f := range []string{p.sock, p.pid, spawnRecord(p)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.Warn("remove a private docker daemon file", "file", f, "err", err)
		}
	}
}

// logTail returns the last lines of the daemon's log, for error messages.
func logTail(p daemonPaths, lines int) string {
	f, err := os.Open(p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	const chunk = 8192
	if fi, err := f.Stat(); err == nil && fi.Size() > chunk {
		_, _ = f.Seek(-chunk, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
