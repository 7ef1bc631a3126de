package fs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// nsMount is a mount of the resource's device in a mount namespace of this
// host other than the driver's own.
type nsMount struct {
	NS    uint64 // the namespace's inode, as in /proc/PID/ns/mnt "mnt:[NS]"; 0 when that link is not readable
	PID   int    // the lowest pid in the namespace whose mountinfo was read
	Comm  string // that process's /proc/PID/comm
	Procs int    // how many processes are in the namespace (1 when NS is 0)
	ID    int    // the mount's id, unique on the host
	Point string // the mount point, as PID sees it
}

// nsScan is what scanMountNamespaces found.
type nsScan struct {
	Found []nsMount
	// Unreadable lists processes whose mounts could not be read at all
	// (permission denied): their namespaces are unknown.
	Unreadable []Holder
}

// nsName is how lsns and readlink /proc/PID/ns/mnt name a mount namespace.
func nsName(ino uint64) string {
	if ino == 0 {
		return "(unknown: its ns/mnt link is not readable)"
	}
	return fmt.Sprintf("mnt:[%d]", ino)
}

// readNSLink reads a /proc/PID/ns/mnt link ("mnt:[4026531841]"). Its
// target is the namespace's inode, which is also what stat(2) would give,
// for one readlink(2) and no open.
func readNSLink(path string) (uint64, error) {
	target, err := readlink(path)
	if err != nil {
		return 0, err
	}
	s, prefixed := strings.CutPrefix(target, "mnt:[")
	s, suffixed := strings.CutSuffix(s, "]")
	if !prefixed || !suffixed {
		return 0, fmt.Errorf("%s: unexpected namespace link %q", path, target)
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: unexpected namespace link %q", path, target)
	}
	return ino, nil
}

// readlink is os.Readlink; the fake proc trees of the tests replace it to
// model a permission error, which root cannot get from a file it made.
var readlink = os.Readlink

// vanished reports whether err means the process exited while it was
// read: its /proc directory is gone (ENOENT, ESRCH) or it is a zombie whose
// namespaces were already released (EINVAL from opening its mountinfo).
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.EINVAL)
}

func denied(err error) bool { return errors.Is(err, fs.ErrPermission) }

// scanMountNamespaces finds the mounts that match selects in every mount
// namespace under procRoot except the one of procRoot/self (which inspect
// reads). Each namespace's mountinfo is read once, from its lowest pid,
// whatever the number of its processes: the cost is one readlink per
// process plus one mountinfo per namespace.
//
// A process whose ns/mnt link cannot be read (permission denied: an LSM,
// or a process with capabilities this one lacks) may still show its
// mountinfo; that is read for each such process, and its mounts are told
// apart from this namespace's by mount id, which is unique on the host and
// belongs to one namespace.
//
// It only sees namespaces that a process is in: a namespace kept alive by
// a bind mount of its ns file alone (ip netns style) or by an open file is
// not listed anywhere in /proc/*/mountinfo and is missed, as are the
// processes of other pid namespaces when procRoot is a pid namespace's own
// /proc. Processes that exit during the scan are skipped; any other read
// or parse error fails the scan, since a namespace that cannot be read
// cannot be called free.
func scanMountNamespaces(procRoot string, match func(mount) bool) (nsScan, error) {
	var out nsScan
	self, err := readNSLink(filepath.Join(procRoot, "self", "ns", "mnt"))
	if err != nil {
		return out, fmt.Errorf("find this process's mount namespace: %w", err)
	}
	names, err := listDir(procRoot)
	if err != nil {
		return out, fmt.Errorf("list processes: %w", err)
	}
	members := map[uint64][]int{}
	var unknown []int // processes whose ns/mnt link is not readable
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		ino, err := readNSLink(filepath.Join(procRoot, name, "ns", "mnt"))
		switch {
		case err != nil && vanished(err):
		case err != nil && denied(err):
			unknown = append(unknown, pid)
		case err != nil:
			return out, fmt.Errorf("mount namespace of pid %d: %w", pid, err)
		case ino != self:
			members[ino] = append(members[ino], pid)
		}
	}
	// read returns pid's mounts that match; ok is false when the process
	// is gone.
	read := func(ino uint64, pid int) (found []nsMount, ok bool, err error) {
		dir := filepath.Join(procRoot, strconv.Itoa(pid))
		mounts, err := readMountinfo(filepath.Join(dir, "mountinfo"))
		if err != nil && vanished(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		var comm string
		for _, m := range mounts {
			if !match(m) {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(filepath.Join(dir, "comm"))
				comm = strings.TrimSpace(string(b))
			}
			found = append(found, nsMount{NS: ino, PID: pid, Comm: comm, Procs: 1, ID: m.ID, Point: m.Point})
		}
		return found, true, nil
	}
	for ino, pids := range members {
		sort.Ints(pids)
		for _, pid := range pids {
			found, ok, err := read(ino, pid)
			if err != nil {
				return out, fmt.Errorf("mount namespace %s of pid %d: %w", nsName(ino), pid, err)
			}
			if !ok {
				continue // gone: another process of the namespace tells
			}
			for i := range found {
				found[i].Procs = len(pids)
			}
			out.Found = append(out.Found, found...)
			break
		}
	}
	if len(unknown) > 0 {
		// Mount ids seen so far: this namespace's and the ones found.
		seen := map[int]bool{}
		own, err := readMountinfo(filepath.Join(procRoot, "self", "mountinfo"))
		if err != nil {
			return out, fmt.Errorf("mount namespace of this process: %w", err)
		}
		for _, m := range own {
			seen[m.ID] = true
		}
		for _, m := range out.Found {
			seen[m.ID] = true
		}
		sort.Ints(unknown)
		for _, pid := range unknown {
			found, _, err := read(0, pid)
			if err != nil && denied(err) {
				comm, _ := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "comm"))
				out.Unreadable = append(out.Unreadable, Holder{PID: pid, Command: strings.TrimSpace(string(comm)), Uses: []string{"mountinfo: permission denied"}})
				continue
			}
			if err != nil {
				return out, fmt.Errorf("mounts of pid %d: %w", pid, err)
			}
			for _, m := range found {
				if !seen[m.ID] {
					out.Found = append(out.Found, m)
				}
			}
			// The same mount found again through another process is the
			// same namespace: report it once.
			for _, m := range found {
				seen[m.ID] = true
			}
		}
	}
	sort.Slice(out.Found, func(i, j int) bool {
		a, b := out.Found[i], out.Found[j]
		if a.PID != b.PID {
			return a.PID < b.PID
		}
		return a.Point < b.Point
	})
	return out, nil
}

// listDir lists a directory's names unsorted: os.ReadDir's sort is a
// sixth of a scan of /proc.
func listDir(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// describeNamespaces says, one entry per namespace, where the device is
// mounted and how to unmount it there. found is sorted by pid, and a
// namespace's mounts all carry the same pid.
func describeNamespaces(found []nsMount) []string {
	var out []string
	for i := 0; i < len(found); {
		j := i
		var points []string
		for ; j < len(found) && found[j].PID == found[i].PID; j++ {
			points = append(points, found[j].Point)
		}
		m := found[i]
		who := fmt.Sprintf("pid %d (%s)", m.PID, m.Comm)
		if m.Procs > 1 {
			who += fmt.Sprintf(" and %d other processes", m.Procs-1)
		}
		var cmds []string
		for _, p := range points {
			cmds = append(cmds, fmt.Sprintf("nsenter -t %d -m umount %s", m.PID, shellQuote(p)))
		}
		out = append(out, fmt.Sprintf("mount namespace %s of %s on %s (unmount it there: %s)",
			nsName(m.NS), who, strings.Join(points, ", "), strings.Join(cmds, "; ")))
		i = j
	}
	return out
}

// shellQuote quotes p for a shell when it needs it, so the suggested
// command can be pasted.
func shellQuote(p string) string {
	if p != "" && strings.IndexFunc(p, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '+' || r == ':' || r == '@' ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
