package fs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Holder is a process that keeps a filesystem busy.
type Holder struct {
	PID     int
	Command string   // from /proc/<pid>/comm
	Uses    []string // "cwd", "root", "fd 3", "maps"
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s): %s", h.PID, h.Command, strings.Join(h.Uses, ", "))
}

// findHolders scans procRoot (normally /proc) for processes whose cwd, root,
// open files or memory mappings are under mnt. It is best effort: processes
// that vanish during the scan or cannot be read are skipped, and paths are
// as each process sees them (a process in another mount namespace may hold
// mnt under another name and be missed).
func findHolders(procRoot, mnt string) []Holder {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	under := func(p string) bool {
		p = strings.TrimSuffix(p, " (deleted)")
		return p == mnt || strings.HasPrefix(p, mnt+"/") || mnt == "/"
	}
	var out []Holder
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		var uses []string
		for _, link := range []string{"cwd", "root"} {
			if p, err := os.Readlink(filepath.Join(dir, link)); err == nil && under(p) {
				uses = append(uses, link)
			}
		}
		if fds, err := os.ReadDir(filepath.Join(dir, "fd")); err == nil {
			for _, fd := range fds {
				if p, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && under(p) {
					uses = append(uses, "fd "+fd.Name())
				}
			}
		}
		if mapsUnder(filepath.Join(dir, "maps"), under) {
			uses = append(uses, "maps")
		}
		if len(uses) == 0 {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		out = append(out, Holder{PID: pid, Command: strings.TrimSpace(string(comm)), Uses: uses})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// mapsUnder reports whether a /proc/<pid>/maps file maps a file under mnt.
func mapsUnder(path string, under func(string) bool) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname; the pathname may hold spaces.
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) < 6 {
			continue
		}
		p := strings.TrimLeft(fields[5], " ")
		if strings.HasPrefix(p, "/") && under(p) {
			return true
		}
	}
	return false
}

// loopBackingFiles lists loop devices whose backing file is under mnt: they
// keep the filesystem busy without any process holding it.
func loopBackingFiles(sysBlock, mnt string) []string {
	matches, _ := filepath.Glob(filepath.Join(sysBlock, "loop*", "loop", "backing_file"))
	var out []string
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		p := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if p == mnt || strings.HasPrefix(p, mnt+"/") {
			dev := filepath.Base(filepath.Dir(filepath.Dir(m)))
			out = append(out, fmt.Sprintf("/dev/%s (backing file %s)", dev, p))
		}
	}
	return out
}
