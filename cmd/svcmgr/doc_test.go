package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/core/plugin/plugintest"
)

// TestDoc_PrintsEveryTypesKeywordsFromThePlugins: the reference comes from
// what plugins declare, an out-of-tree one's (app.test) included.
func TestDoc_PrintsEveryTypesKeywordsFromThePlugins(t *testing.T) {
	n := newNode(t)
	if err := os.Symlink(filepath.Join(plugintest.Dir(t), "vigil-plugin-test"), filepath.Join(n.pluginDir, "vigil-plugin-test")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"doc"}, []string{"container.docker", "app.test", "service"}},
		{[]string{"doc", "docker"}, []string{"run_image (required)", "alias image", "restart_delay"}},
		{[]string{"doc", "app.test"}, []string{"file (required)", "marker file"}},
		{[]string{"doc", "service"}, []string{"orchestrate", "[no|start|ha]"}},
		{[]string{"doc", "container.docker", "image"}, []string{"keyword:    run_image", "required:   yes"}},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			out := n.must(tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("svcmgr %s:\n%s\nwant %q", strings.Join(tc.args, " "), out, w)
				}
			}
		})
	}
	if _, errs, err := n.svcmgr("doc", "dokcer"); err == nil || !strings.Contains(errs, "no type \"dokcer\"") {
		t.Errorf("doc of an unknown type: %v %s", err, errs)
	}
}
