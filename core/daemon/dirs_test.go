package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestCheckDirs_RefusesRunAndStateDirectoriesOthersCanChange(t *testing.T) {
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name      string
		run, st   os.FileMode
		owner     int // given to the state directory; -1 for none
		want      string
		wantRunTo os.FileMode // the run directory's mode after a pass
	}{
		{"private directories pass", 0o700, 0o700, -1, "", 0o700},
		{"a readable run directory is made private", 0o755, 0o755, -1, "", 0o700},
		{"group-writable run directory", 0o770, 0o700, -1, "run directory %RUN is mode 0770", 0},
		{"world-writable run directory", 0o1777, 0o700, -1, "run directory %RUN is mode 1777", 0},
		{"group-writable state directory", 0o700, 0o775, -1, "state directory %STATE is mode 0775", 0},
		{"state directory of another user", 0o700, 0o700, 65534, "owned by uid 65534", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 && !root {
				t.Skip("giving a directory to another user needs root")
			}
			base := t.TempDir()
			cfg := Config{RunDir: filepath.Join(base, "run"), StateDir: filepath.Join(base, "lib")}
			for p, m := range map[string]os.FileMode{cfg.RunDir: tc.run, cfg.StateDir: tc.st} {
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, m|modeBits(m)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.owner >= 0 {
				if err := os.Chown(cfg.StateDir, tc.owner, -1); err != nil {
					t.Fatal(err)
				}
			}
			err := checkDirs(cfg, hclog.NewNullLogger())
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				fi, _ := os.Stat(cfg.RunDir)
				if fi.Mode().Perm() != tc.wantRunTo {
					t.Errorf("run directory left mode %04o, want %04o", fi.Mode().Perm(), tc.wantRunTo)
				}
				return
			}
			want := strings.NewReplacer("%RUN", cfg.RunDir, "%STATE", cfg.StateDir).Replace(tc.want)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chown root") {
				t.Fatalf("checkDirs = %v, want an error saying %q and the fix", err, want)
			}
		})
	}
}

// modeBits turns the sticky bit of an octal literal into os.ModeSticky.
func modeBits(m os.FileMode) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}
