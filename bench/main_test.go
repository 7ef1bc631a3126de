package bench

import (
	"os"
	"testing"

	"github.com/vigil-ha/vigil/core/plugin/plugintest"
	"github.com/vigil-ha/vigil/e2e/clusterlab"
)

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	// Not from a benchmark: the testing package runs each benchmark
	// function more than once, and the binaries serve every run.
	clusterlab.Cleanup()
	os.Exit(code)
}
