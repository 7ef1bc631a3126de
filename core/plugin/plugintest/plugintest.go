// Package plugintest builds the plugin host's test resource plugin (type
// app.test: up while its marker file exists; its start can be delayed or
// made to fail) for the tests and benchmarks of the packages above the
// host. It is test support: nothing in a binary imports it.
package plugintest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once sync.Once
	dir  string
	err  error
)

// Dir returns a plugin directory holding vigil-plugin-test, built once per
// test binary. Call Cleanup from TestMain to remove it.
func Dir(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, err = os.MkdirTemp("", "vigil-test-plugins-")
		if err != nil {
			return
		}
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "..", "testdata", "testplugin")
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "vigil-plugin-test"), ".")
		cmd.Dir = src
		if out, berr := cmd.CombinedOutput(); berr != nil {
			err = fmt.Errorf("build the test plugin: %v\n%s", berr, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Cleanup removes what Dir built.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}
