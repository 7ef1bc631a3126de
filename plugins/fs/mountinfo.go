package fs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// mount is one line of /proc/<pid>/mountinfo.
type mount struct {
	ID       int
	ParentID int
	Major    uint32
	Minor    uint32
	Root     string // the mounted directory inside the filesystem ("/" unless a bind mount)
	Point    string // the mount point, as seen by the reading process
	FSType   string
	Source   string // "/dev/loop3", "tmpfs", "host:/export"
}

// readMountinfo parses a mountinfo file; lines are in mount order, so when a
// mount point appears twice the later line is the one that is visible.
func readMountinfo(path string) ([]mount, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return parseMountinfo(data)
}

func parseMountinfo(data []byte) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		m, err := parseMountinfoLine(line)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d %q: %w", n, line, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// parseMountinfoLine reads
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// (proc(5)): a variable number of optional fields end with "-".
func parseMountinfoLine(line string) (mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
		return mount{}, fmt.Errorf("unexpected format")
	}
	var m mount
	var err error
	if m.ID, err = strconv.Atoi(f[0]); err != nil {
		return mount{}, fmt.Errorf("mount id: %w", err)
	}
	if m.ParentID, err = strconv.Atoi(f[1]); err != nil {
		return mount{}, fmt.Errorf("parent id: %w", err)
	}
	maj, min, ok := strings.Cut(f[2], ":")
	if !ok {
		return mount{}, fmt.Errorf("device %q is not major:minor", f[2])
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return mount{}, fmt.Errorf("device %q is not major:minor", f[2])
	}
	m.Major, m.Minor = uint32(ma), uint32(mi)
	m.Root = unescapeOctal(f[3])
	m.Point = unescapeOctal(f[4])
	m.FSType = unescapeOctal(f[sep+1])
	m.Source = unescapeOctal(f[sep+2])
	return m, nil
}

// unescapeOctal undoes the kernel's \040-style escaping of space, tab,
// newline and backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
