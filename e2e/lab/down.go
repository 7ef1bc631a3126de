package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Down removes everything a lab made, from its state and from the names
// derived from the lab's name, so that it also cleans up after a crash of
// `up` (even one before the state had a node count). It kills only the
// processes recorded (pid and start time), never by name. Safe to run
// twice: a lab with nothing left is not an error.
func Down(ctx context.Context, name string, w io.Writer) error {
	if err := CheckName(name); err != nil {
		return err
	}
	l, err := Load(name)
	if errors.Is(err, ErrNoLab) {
		l = newLab(name, 0)
	} else if err != nil {
		// A corrupt state: clean up from the names alone.
		fmt.Fprintf(w, "warning: %v: cleaning up from the lab's names\n", err)
		l = newLab(name, 0)
	}
	var problems []string
	warn := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		problems = append(problems, msg)
		fmt.Fprintln(w, "warning: "+msg)
	}

	// Nodes: every nK directory, whatever the state says.
	nodes, _ := filepath.Glob(l.Path("nodes", "n*"))
	for _, dir := range nodes {
		node := filepath.Base(dir)
		if p := ReadProc(l.InitPidFile(node)); p != nil && !p.kill(syscall.SIGKILL, 10*time.Second) {
			warn("%s: init %d survives SIGKILL", node, p.Pid)
		}
	}
	if !l.Supervisor.stop(5 * time.Second) {
		warn("supervisor %d survives", l.Supervisor.Pid)
	}
	bmcs, _ := filepath.Glob(l.Path("bmc", "n*", "ipmi_sim.pid"))
	for _, f := range bmcs {
		if p := ReadProc(f); p != nil && !p.stop(2*time.Second) {
			warn("ipmi_sim %d survives", p.Pid)
		}
	}
	if !l.Loader.stop(20 * time.Second) {
		warn("image loader dockerd %d survives", l.Loader.Pid)
	}

	// Mounts under the lab directory (the image loader's).
	for _, m := range mountsUnder(l.Dir()) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			warn("unmount %s: %v", m, err)
		}
	}

	// Network namespaces: the switch's deletion takes the bridge and the
	// switch ends of every veth with it.
	nss, _ := filepath.Glob(filepath.Join("/run/netns", l.Name+"-*"))
	for _, ns := range nss {
		base := filepath.Base(ns)
		suffix := strings.TrimPrefix(base, l.Name+"-")
		if suffix != "sw" && suffix != "client" && !isNodeName(suffix) {
			continue // another lab's ("lab-x…" is not ours)
		}
		if err := run(ctx, "ip", "netns", "del", base); err != nil {
			warn("%v", err)
		}
	}

	// The containers' cgroups: their processes died with the nodes, but
	// nobody removed the directories.
	for _, dir := range CgroupDirs(l.CgroupParent()) {
		if err := RemoveCgroupTree(dir, 5*time.Second); err != nil {
			warn("%v", err)
		}
	}

	// Volume groups, then the loop devices (ours: backed by our files).
	for _, svc := range []string{"registry", "busybox"} {
		vg := l.VGName(svc)
		if run(ctx, "vgs", vg) != nil {
			continue
		}
		if err := run(ctx, "vgremove", "-q", "-f", vg); err != nil {
			warn("%v", err)
		}
	}
	files, _ := filepath.Glob(l.Path("disks", "*.img"))
	for _, f := range files {
		for _, dev := range loopsOf(ctx, f) {
			_ = run(ctx, "pvremove", "-q", "-ff", "-y", dev)
			if err := run(ctx, "losetup", "-d", dev); err != nil {
				warn("%v", err)
			}
		}
	}
	if err := os.RemoveAll(l.Dir()); err != nil {
		warn("remove %s: %v", l.Dir(), err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("lab %s: %d thing(s) left behind (see the warnings)", name, len(problems))
	}
	fmt.Fprintf(w, "lab %s down\n", name)
	return nil
}

// CgroupDirs lists where cgroup path stands in every cgroup hierarchy
// mounted on the host (cgroup v1 has one per controller, v2 one).
func CgroupDirs(path string) []string {
	ms, _ := mountinfo()
	var dirs []string
	for _, m := range ms {
		if (m.fstype != "cgroup" && m.fstype != "cgroup2") || m.root != "/" {
			continue
		}
		if d := filepath.Join(m.target, path); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// RemoveCgroupTree removes the cgroup directory dir and those below it,
// deepest first. A cgroup whose last process has just died may stay busy
// a moment, so it tries again until timeout.
func RemoveCgroupTree(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var subdirs []string
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				subdirs = append(subdirs, p)
			}
			return nil
		})
		if err != nil || len(subdirs) == 0 {
			return nil // nothing there
		}
		var last error
		for _, d := range slices.Backward(subdirs) {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				last = fmt.Errorf("remove cgroup %s: %w", d, err)
			}
		}
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func isNodeName(s string) bool {
	return len(s) >= 2 && s[0] == 'n' && strings.Trim(s[1:], "0123456789") == ""
}

// loopsOf lists the loop devices backed by file.
func loopsOf(ctx context.Context, file string) []string {
	out, err := output(ctx, "losetup", "--noheadings", "--output", "NAME", "-j", file)
	if err != nil {
		return nil
	}
	return strings.Fields(out)
}

// mountsUnder lists the host's mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	ms0, _ := mountinfo()
	var ms []string
	for _, m := range ms0 {
		if m.target == dir || strings.HasPrefix(m.target, dir+"/") {
			ms = append(ms, m.target)
		}
	}
	slices.Sort(ms)
	slices.Reverse(ms)
	return ms
}

// mount is a line of /proc/self/mountinfo, the fields the lab reads.
type mount struct {
	root, target, fstype string
}

// mountinfo reads /proc/self/mountinfo:
// ID PARENT MAJ:MIN ROOT TARGET OPTS [OPTIONAL...] - FSTYPE SRC SUPEROPTS.
func mountinfo() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, fs := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(fs) < 1 {
			continue
		}
		ms = append(ms, mount{root: unescapeMount(fields[3]), target: unescapeMount(fields[4]), fstype: fs[0]})
	}
	return ms, sc.Err()
}
