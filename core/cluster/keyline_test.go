package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/core/config"
)

func TestLoadNodeConfig_ErrorsCiteTheKeywordsLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.conf")
	conf := "[cluster]\nname = prod\nnodes = n1   # one node\nnode = n1\nsync_port = 99999\n\n[hb#1]\ntype = net\ninterval = 1s\ntimeout = 1s\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadNodeConfig(path, func(string) ([]config.Keyword, bool) { return nil, true })
	if err == nil {
		t.Fatal("loaded a bad cluster.conf")
	}
	for _, want := range []string{path + ":5: [cluster] sync_port", path + ":10: [hb#1] timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors:\n%v\nwant one starting %q", err, want)
		}
	}
}
