package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestNonRoot_ToldRootIsNeeded: a user other than root is told that root is
// needed, instead of a status of its own making or a "start vigild".
func TestNonRoot_ToldRootIsNeeded(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run svcmgr as another user")
	}
	// A directory nobody may enter (as the run directory is), holding
	// svcmgr where nobody can run it.
	dir, err := os.MkdirTemp("", "vigil-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "svcmgr")
	data, err := os.ReadFile(filepath.Join(bins(t), "svcmgr"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"print status", []string{"-s", "tour", "print", "status"}, "svcmgr print status needs root"},
		{"start", []string{"-s", "tour", "start"}, "svcmgr start needs root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "VIGIL_RUN_DIR=" + run, "VIGIL_CONFIG_DIR=" + dir}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("svcmgr %v as nobody: %v\n%s\nwant an error containing %q", tc.args, err, out, tc.want)
			}
		})
	}
	t.Run("validate runs", func(t *testing.T) {
		conf := filepath.Join(dir, "x.conf")
		if err := os.WriteFile(conf, []byte("[DEFAULT]\nnodes = n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "validate", conf)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "VIGIL_RUN_DIR=" + run, "VIGIL_PLUGIN_DIR=" + dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); strings.Contains(string(out), "needs root") {
			t.Fatalf("validate as nobody: %v\n%s\nwant it to run", err, out)
		}
	})
}
