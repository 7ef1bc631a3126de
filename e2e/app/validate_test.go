package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidate_OCFParamsCheckedAgainstTheAgentWithTheirLine runs the real
// svcmgr with the real plugin binary on this host: the agent's meta-data
// says what it takes.
func TestValidate_OCFParamsCheckedAgainstTheAgentWithTheirLine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("svcmgr checks that its directories are root's")
	}
	for _, a := range []string{"anything", "Dummy"} {
		if _, err := os.Stat("/usr/lib/ocf/resource.d/heartbeat/" + a); err != nil {
			t.Skipf("needs heartbeat:%s (resource-agents; make deps)", a)
		}
	}
	bin := suite.BinDir(t)
	for _, tc := range []struct {
		name, conf string
		want       []string // "" when validate must pass
	}{
		{"a missing required parameter, on the params line", "[DEFAULT]\nnodes = n1\n\n[app#1]\ntype = ocf\nagent = heartbeat:anything\nparams = cmdline_options=-v\n",
			[]string{":7: [app#1] params: heartbeat:anything requires parameter binfile"}},
		{"no params at all, on the section line", "[DEFAULT]\nnodes = n1\n\n[app#1]\ntype = ocf\nagent = heartbeat:anything\n",
			[]string{":4: [app#1] params: heartbeat:anything requires parameter binfile"}},
		{"an unknown parameter", "[DEFAULT]\nnodes = n1\n\n[app#1]\ntype = ocf\nagent = heartbeat:Dummy\n\nparams = state=/tmp/x colour=blue\n",
			[]string{`:8: [app#1] params: unknown parameter "colour" of heartbeat:Dummy`}},
		{"a complete resource", "[DEFAULT]\nnodes = n1\n\n[app#1]\ntype = ocf\nagent = heartbeat:anything\nparams = binfile=/bin/sleep cmdline_options=600\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "etc", "web.conf")
			if err := os.MkdirAll(filepath.Dir(conf), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, []byte(tc.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(bin, "svcmgr"), "validate", conf)
			cmd.Env = append(os.Environ(), "VIGIL_PLUGIN_DIR="+bin, "VIGIL_CONFIG_DIR="+filepath.Dir(conf),
				"VIGIL_RUN_DIR="+filepath.Join(dir, "run"), "VIGIL_STATE_DIR="+filepath.Join(dir, "lib"))
			out, err := cmd.CombinedOutput()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("validate: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate passed, want it refused:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), conf+w) {
					t.Errorf("validate said:\n%s\nwant %q", out, conf+w)
				}
			}
		})
	}
}
