package daemon

import (
	"fmt"
	"os"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// checkDirs refuses to run with a run or state directory that someone
// other than root could change: vigild keeps its API socket, lock files
// and the services' persisted state there, and acts on them as root. A run
// directory others can merely read is made private (0700).
func checkDirs(cfg Config, log hclog.Logger) error {
	for _, d := range []struct {
		what, path string
		private    bool
	}{
		{"run directory", cfg.RunDir, true},
		{"state directory", cfg.StateDir, false},
	} {
		fi, err := os.Stat(d.path)
		if err != nil {
			return fmt.Errorf("%s: %w", d.what, err)
		}
		uid := -1
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid = int(st.Uid)
		}
		mode := fi.Mode().Perm() | fi.Mode()&(os.ModeSticky|os.ModeSetgid|os.ModeSetuid)
		fix := "chmod go-w " + d.path
		if d.private {
			fix = "chmod 700 " + d.path
		}
		if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || (uid != 0 && uid != os.Geteuid()) {
			return fmt.Errorf("%s %s is mode %s, owned by uid %d: vigild acts on what it holds as root, so only root may change it: %s; chown root %s",
				d.what, d.path, octal(mode), uid, fix, d.path)
		}
		if d.private && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(d.path, 0o700); err != nil {
				return fmt.Errorf("%s %s: make it private: %w", d.what, d.path, err)
			}
			log.Info("made the run directory private", "dir", d.path, "was", octal(mode))
		}
	}
	return nil
}

// octal writes a mode as chmod takes it (0755, 1777).
func octal(m os.FileMode) string {
	n := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}
