package lab

import (
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

	"golang.org/x/sys/unix"
)

// A node is a network namespace (/run/netns/<lab>-nK, its eth0 a veth to
// the switch's bridge) and a long-lived init process, `vigil-lab
// node-init`, that is pid 1 of a new pid, mount and uts namespace inside
// it. Powering a node off kills that init (the kernel then kills every
// process of the pid namespace: vigild, plugins, docker daemons,
// containers; the mount namespace and its mounts go with the last of them)
// and deletes the network namespace (its addresses go with it). Powering
// it on builds both again.

// Service bridges created in every node for the services' private docker
// daemons (their docker_daemon_args name them): one per service, so that
// two daemons never share a bridge and hand out the same container
// address. Not --bridge=none: dockerd 20.10 then deletes docker0.
var serviceBridges = []struct{ name, cidr string }{
	{"vlreg0", "172.30.1.1/24"},
	{"vlbb0", "172.30.2.1/24"},
}

// InitPidFile holds the pid and start time of node's init while it is on.
func (l *Lab) InitPidFile(node string) string { return filepath.Join(l.NodeDir(node), "init.pid") }

// NodeInit is the node's running init, or nil when the node is off.
func (l *Lab) NodeInit(node string) *Proc {
	p := ReadProc(l.InitPidFile(node))
	if !p.Alive() {
		return nil
	}
	return p
}

// bootNode powers a node on: fresh network namespace and veth, then the
// init. It returns at once; the init starts vigild by itself.
func (l *Lab) bootNode(ctx context.Context, k int) error {
	node := NodeName(k)
	if l.NodeInit(node) != nil {
		return nil
	}
	ns := l.NodeNS(node)
	sw := l.SwitchNS()
	_ = run(ctx, "ip", "-n", sw, "link", "del", node)
	_ = run(ctx, "ip", "netns", "del", ns)
	if err := Plug(ctx, Port{Switch: sw, Name: node, NS: ns, Addr: l.NodeAddr(k) + "/24", MAC: l.NodeMAC(k), Down: l.Cut[node].Net}); err != nil {
		return fmt.Errorf("power on %s: %w", node, err)
	}
	self, err := l.tool()
	if err != nil {
		return err
	}
	console, err := os.OpenFile(filepath.Join(l.NodeDir(node), "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("power on %s: %w", node, err)
	}
	defer console.Close()
	fmt.Fprintf(console, "=== %s power on\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(self, "node-init", "--name", l.Name, "--node", node)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true,
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
	}
	if err := startInNetns(l.NSPath(ns), cmd); err != nil {
		return fmt.Errorf("power on %s: start its init: %w", node, err)
	}
	// Not waited for: the lab supervisor, a subreaper above whoever
	// powered the node on, reaps it when it dies.
	return writeProc(l.InitPidFile(node), procOf(cmd.Process.Pid))
}

// haltNode powers a node off: SIGKILL to its init, then its network
// namespace removed. It returns when the node's processes are gone and
// its address no longer answers.
func (l *Lab) haltNode(ctx context.Context, k int) error {
	node := NodeName(k)
	if p := ReadProc(l.InitPidFile(node)); p != nil {
		mntNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.Pid))
		if !p.kill(syscall.SIGKILL, 10*time.Second) {
			return fmt.Errorf("power off %s: init %d still runs 10s after SIGKILL", node, p.Pid)
		}
		// A real power-off leaves nothing of the node: processes that
		// entered its mount namespace from the host's pid namespace
		// (nsenter'd commands) would keep its mounts alive beside the
		// node's next boot. Kill them, and wait until the namespace has
		// no process left (the kernel tears a pid namespace down after
		// its init is gone).
		if mntNS != "" && !killNamespace(mntNS, 10*time.Second) {
			return fmt.Errorf("power off %s: processes still hold its mount namespace %s 10s after SIGKILL", node, mntNS)
		}
	}
	_ = os.Remove(l.InitPidFile(node))
	// Deleting the switch side removes eth0 with it at once; the
	// namespace itself is freed by the kernel in the background.
	_ = run(ctx, "ip", "-n", l.SwitchNS(), "link", "del", node)
	if err := run(ctx, "ip", "netns", "del", l.NodeNS(node)); err != nil && fileExists(l.NSPath(l.NodeNS(node))) {
		return fmt.Errorf("power off %s: %w", node, err)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// tool is the vigil-lab binary that runs the lab's processes.
func (l *Lab) tool() (string, error) {
	if l.Tool != "" {
		return l.Tool, nil
	}
	return selfPath()
}

func selfPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the vigil-lab binary: %w", err)
	}
	return filepath.EvalSymlinks(exe)
}

// RunNodeInit runs as pid 1 of a node (`vigil-lab node-init`): it makes the node's mount namespace
// its own, sets the hostname, mounts the node's directories on the usual
// paths, starts vigild (restarting it when it dies, as a service manager
// would) and reaps orphans until it is killed.
func RunNodeInit(l *Lab, node string) error {
	k, err := l.NodeIndex(node)
	if err != nil {
		return err
	}
	if os.Getpid() != 1 {
		return errors.New("node-init runs as pid 1 of a node (vigil-lab starts it)")
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// The copied mount table holds the host's namespace files
	// (/run/netns/*, docker's): they would keep the other nodes' network
	// namespaces, and so their addresses, alive after a power-off.
	if err := dropNsfsMounts(); err != nil {
		return err
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := unix.Sethostname([]byte(node)); err != nil {
		return fmt.Errorf("set the hostname: %w", err)
	}
	dir := l.NodeDir(node)
	// /run is a tmpfs on a real host: a node boots with it empty. Stale
	// pid files and sockets of a killed docker daemon (or its containerd)
	// would otherwise greet the next boot's ones.
	if entries, err := os.ReadDir(filepath.Join(dir, "run")); err == nil {
		for _, e := range entries {
			os.RemoveAll(filepath.Join(dir, "run", e.Name()))
		}
	}
	binds := [][2]string{
		{filepath.Join(dir, "etc"), "/etc/vigil"},
		{filepath.Join(dir, "lib"), "/var/lib/vigil"},
		{filepath.Join(dir, "run"), "/run/vigil"},
		{l.Path("hosts"), "/etc/hosts"},
	}
	for _, b := range binds {
		if err := bindMount(b[0], b[1]); err != nil {
			return err
		}
	}
	if l.Package != "" {
		if err := l.mountPackage(); err != nil {
			return err
		}
	}
	// Hide the host's container runtime so that a docker daemon started
	// here runs its own containerd, inside the node, and dies with it.
	for _, d := range []string{"/run/containerd", "/run/docker"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0711"); err != nil {
				return fmt.Errorf("hide %s: %w", d, err)
			}
		}
	}
	if fileExists("/run/docker.sock") {
		_ = unix.Mount("/dev/null", "/run/docker.sock", "", unix.MS_BIND, "")
	}
	if own, shared := l.LoopDev("hb-"+node), l.LoopDev("hb"); own != "" && shared != "" {
		if err := bindMount(own, shared); err != nil {
			return err
		}
	}
	for _, b := range serviceBridges {
		for _, s := range [][]string{
			{"link", "add", b.name, "type", "bridge"},
			{"addr", "add", b.cidr, "dev", b.name},
			{"link", "set", b.name, "up"},
		} {
			if err := run(context.Background(), "ip", s...); err != nil {
				return err
			}
		}
	}
	fmt.Printf("%s: %s up, address %s\n", time.Now().Format(time.RFC3339Nano), node, l.NodeAddr(k))
	return superviseVigild(l, node)
}

func bindMount(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if fi.IsDir() {
		// The mount point is made on the host's filesystem when missing
		// (an empty directory, left there).
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dst, err)
		}
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	return nil
}

func dropNsfsMounts() error {
	ms, err := mountinfo()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.fstype != "nsfs" {
			continue
		}
		if err := unix.Unmount(m.target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", m.target, err)
		}
	}
	return nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// superviseVigild starts vigild when the lab's bin directory has one, and
// restarts it 100 ms after it dies; it reaps every other child that
// ends up here. It never returns: the node lives until its init is killed.
func superviseVigild(l *Lab, node string) error {
	argv, nice, err := l.vigildCommand()
	if err != nil {
		fmt.Printf("warning: %v: the node runs without vigild\n", err)
		argv = []string{filepath.Join(l.BinDir, "vigild")}
	}
	vigild := argv[0]
	logPath := filepath.Join(l.NodeDir(node), "vigild.log")
	start := func() int {
		if _, err := os.Stat(vigild); err != nil {
			fmt.Printf("warning: no %s: the node runs without vigild\n", vigild)
			return 0
		}
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Printf("vigild log: %v\n", err)
			return 0
		}
		defer logf.Close()
		// At vigild.service's Nice=, with its ExecStart= when the node
		// runs the package, as a node would run it.
		cmd := exec.Command("nice", append([]string{"-n", strconv.Itoa(nice)}, argv...)...)
		cmd.Dir = "/"
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = append(os.Environ(), "PATH="+l.nodeBinPath()+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
		if err := cmd.Start(); err != nil {
			fmt.Printf("start vigild: %v\n", err)
			return 0
		}
		fmt.Printf("%s: vigild started, pid %d in the node\n", time.Now().Format(time.RFC3339Nano), cmd.Process.Pid)
		return cmd.Process.Pid
	}
	vpid := start()
	restart := make(<-chan time.Time)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == nil && pid > 0 {
			if pid == vpid {
				fmt.Printf("%s: vigild exited (%v); restart in 100ms\n", time.Now().Format(time.RFC3339Nano), ws)
				vpid = 0
				// As systemd's RestartSec=100ms in vigild.service: a
				// daemon back within the heartbeat timeout is not lost.
				restart = time.After(100 * time.Millisecond)
			}
			continue
		}
		select {
		case <-restart:
			vpid = start()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// killNamespace SIGKILLs every process whose mount namespace is ns (as
// /proc/PID/ns/mnt reads, "mnt:[N]") until none is left or wait passed.
func killNamespace(ns string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		left := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			if got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && got == ns {
				left++
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if left == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
