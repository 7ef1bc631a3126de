package bench

import (
	"os"
	"testing"

	"github.com/vigil-ha/vigil/core/plugin/plugintest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}
