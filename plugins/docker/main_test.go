package docker

import (
	"os"
	"path/filepath"
	"testing"
)

// The test binary is the userland proxy of the private daemons the tests
// start, as the plugin's binary is in production.
func TestMain(m *testing.M) {
	if IsProxyCommand(os.Args[1:]) {
		os.Exit(RunProxy(os.Args[1:]))
	}
	if exe, err := os.Executable(); err == nil {
		testConfig.ProxyPath, _ = filepath.Abs(exe)
	}
	os.Exit(m.Run())
}
