package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ProcStart is a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat), and whether it is a zombie.
func ProcStart(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) may hold spaces: parse after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z", err
}

// procOf records a running process.
func procOf(pid int) *Proc {
	start, _, _ := ProcStart(pid)
	return &Proc{Pid: pid, Start: start}
}

// Alive says whether p still runs (a zombie does not).
func (p *Proc) Alive() bool {
	if p == nil || p.Pid <= 0 {
		return false
	}
	start, zombie, err := ProcStart(p.Pid)
	return err == nil && !zombie && start == p.Start
}

// kill sends sig to p if it is still the process recorded, then waits up
// to wait for it to end.
func (p *Proc) kill(sig syscall.Signal, wait time.Duration) bool {
	if !p.Alive() {
		return true
	}
	_ = syscall.Kill(p.Pid, sig)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return !p.Alive()
}

// stop ends p: SIGTERM, then SIGKILL.
func (p *Proc) stop(grace time.Duration) bool {
	if p.kill(syscall.SIGTERM, grace) {
		return true
	}
	return p.kill(syscall.SIGKILL, 5*time.Second)
}

// ReadProc reads a pid file written by writeProc.
func ReadProc(path string) *Proc {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var p Proc
	if _, err := fmt.Sscan(string(b), &p.Pid, &p.Start); err != nil {
		return nil
	}
	return &p
}

func writeProc(path string, p *Proc) error {
	return writeFile(path, fmt.Appendf(nil, "%d %d\n", p.Pid, p.Start), 0o644)
}

// run runs a command and returns its error with its output.
func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// LVM complains about every inherited descriptor otherwise.
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out), nil
}

// startInNetns starts cmd inside the network namespace at nsPath: the
// fork happens on an OS thread switched to that namespace, so the child
// inherits it while the rest of this process stays where it is.
func startInNetns(nsPath string, cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is left in the other namespace: never unlock it, so
		// the runtime throws it away when this goroutine ends.
		runtime.LockOSThread()
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open %s: %w", nsPath, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter %s: %w", nsPath, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}
