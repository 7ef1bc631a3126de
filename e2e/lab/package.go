package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A lab built `--from-package` runs what an operator installs: the vigil
// .deb is unpacked in the lab's directory, each node lays its /usr over
// the host's (an overlay in the node's own mount namespace, so /usr/sbin/
// vigild, /usr/bin/svcmgr and /usr/lib/vigil/plugins are the package's
// there and nowhere else), and vigild starts with the packaged unit's
// ExecStart and Nice.

// packageUnit is where the vigil package puts vigild's systemd unit.
const packageUnit = "usr/lib/systemd/system/vigild.service"

// unpackPackage unpacks the vigil .deb at deb into the lab's directory.
func (l *Lab) unpackPackage(ctx context.Context, deb string) error {
	if _, err := os.Stat(deb); err != nil {
		return fmt.Errorf("--from-package: %w (make package builds dist/vigil_*.deb)", err)
	}
	root := l.Path("package")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	if _, err := os.Stat(filepath.Join(root, packageUnit)); err != nil {
		return fmt.Errorf("%s holds no vigild unit (%s): is it the vigil package? %w", deb, packageUnit, err)
	}
	return nil
}

// mountPackage lays the unpacked package's /usr over the node's (read
// only: both are lower layers). Called by the node's init, in its mount
// namespace.
func (l *Lab) mountPackage() error {
	usr := filepath.Join(l.Package, "usr")
	if err := unix.Mount("overlay", "/usr", "overlay", unix.MS_RDONLY, "lowerdir="+usr+":/usr"); err != nil {
		return fmt.Errorf("overlay %s on /usr: %w", usr, err)
	}
	return nil
}

// vigildCommand is how a node starts vigild: the packaged unit's command
// line and niceness, or the lab's bin/vigild at the unit's Nice=-10.
func (l *Lab) vigildCommand() (argv []string, nice int, err error) {
	if l.Package == "" {
		return []string{filepath.Join(l.BinDir, "vigild")}, -10, nil
	}
	return UnitCommand(filepath.Join(l.Package, packageUnit))
}

// UnitCommand reads ExecStart= and Nice= of a systemd unit's [Service].
func UnitCommand(path string) (argv []string, nice int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "ExecStart":
			argv = strings.Fields(v)
		case "Nice":
			if nice, err = strconv.Atoi(v); err != nil {
				return nil, 0, fmt.Errorf("%s: Nice=%s: %w", path, v, err)
			}
		}
	}
	if len(argv) == 0 {
		return nil, 0, fmt.Errorf("%s has no ExecStart", path)
	}
	return argv, nice, nil
}

// nodeBinPath is what a node's PATH starts with: the package's
// directories (through the overlay) or the lab's bin directory.
func (l *Lab) nodeBinPath() string {
	if l.Package != "" {
		return "/usr/sbin:/usr/bin"
	}
	return l.BinDir
}
