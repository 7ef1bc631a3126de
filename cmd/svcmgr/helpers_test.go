package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-ha/vigil/core/plugin/plugintest"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// bins returns a directory holding svcmgr and every plugin binary: the
// one `make test` just built (VIGIL_BIN_DIR), else a fresh build.
func bins(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("VIGIL_BIN_DIR"); d != "" {
		return d
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "vigil-bin-")
		if binErr != nil {
			return
		}
		pkgs, _ := filepath.Glob(filepath.Join(repoRoot(t), "plugins", "*", "cmd", "vigil-plugin-*"))
		args := []string{"build", "-o", binDir + "/", "./cmd/svcmgr"}
		for _, p := range pkgs {
			rel, _ := filepath.Rel(repoRoot(t), p)
			args = append(args, "./"+rel)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = &buildError{err: err, out: string(out)}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "build: " + e.err.Error() + "\n" + e.out }

// node is one svcmgr environment: its own config, plugin, run and state
// directories.
type node struct {
	t         testing.TB
	configDir string
	pluginDir string
	runDir    string
	stateDir  string
}

// newNode makes the directories and links every built-in plugin into the
// plugin directory.
func newNode(t testing.TB) *node {
	t.Helper()
	base := t.TempDir()
	// Unix socket paths are limited to 107 bytes: the run directory (where
	// private docker daemons put theirs) must be short.
	run, err := os.MkdirTemp("", "vr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	n := &node{t: t, configDir: filepath.Join(base, "etc"), pluginDir: filepath.Join(base, "plugins"),
		runDir: run, stateDir: filepath.Join(base, "lib")}
	for _, d := range []string{n.configDir, n.pluginDir, n.runDir, n.stateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	plugins, _ := filepath.Glob(filepath.Join(bins(t), "vigil-plugin-*"))
	for _, p := range plugins {
		if err := os.Symlink(p, filepath.Join(n.pluginDir, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *node) writeService(name, text string) string {
	n.t.Helper()
	p := filepath.Join(n.configDir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// svcmgr runs the svcmgr binary and returns its stdout, stderr and error.
func (n *node) svcmgr(args ...string) (string, string, error) {
	n.t.Helper()
	cmd := exec.Command(filepath.Join(bins(n.t), "svcmgr"), args...)
	cmd.Env = append(os.Environ(),
		"VIGIL_CONFIG_DIR="+n.configDir, "VIGIL_PLUGIN_DIR="+n.pluginDir,
		"VIGIL_RUN_DIR="+n.runDir, "VIGIL_STATE_DIR="+n.stateDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// must runs svcmgr and fails the test when it fails.
func (n *node) must(args ...string) string {
	n.t.Helper()
	out, errs, err := n.svcmgr(args...)
	if err != nil {
		n.t.Fatalf("svcmgr %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}
