package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceLink_ActsAsDashS: as in the seed (`registry.opensvc.com print
// status`), svcmgr run through a link named after a service acts on it.
func TestServiceLink_ActsAsDashS(t *testing.T) {
	n := newNode(t)
	n.writeService("web.conf", "[DEFAULT]\nnodes = n1\n\n[fs#1]\ndev = /dev/vigil-test-none\nmnt = /nonexistent/vigil-link\ntype = ext4\n")
	link := filepath.Join(t.TempDir(), "web")
	must(t, os.Symlink(filepath.Join(bins(t), "svcmgr"), link))
	cmd := exec.Command(link, "print", "status")
	cmd.Env = append(os.Environ(), "VIGIL_CONFIG_DIR="+n.configDir, "VIGIL_PLUGIN_DIR="+n.pluginDir,
		"VIGIL_RUN_DIR="+n.runDir, "VIGIL_STATE_DIR="+n.stateDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "web\noverall") || !strings.Contains(string(out), "fs#1") {
		t.Fatalf("link did not act as -s web:\n%s", out)
	}
}

// TestCLI_BadArgumentsChangeNothing: bad CLI input gets a clear error and a
// non-zero exit.
func TestCLI_BadArgumentsChangeNothing(t *testing.T) {
	n := newNode(t)
	n.writeService("web.conf", "[DEFAULT]\nnodes = "+hostname(t)+"\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"start"}, "no service given: use -s NAME (services in"},
		{[]string{"-s", "nosuch", "start"}, "no nosuch.conf or nosuch.env"},
		{[]string{"-s", "../etc/passwd", "start"}, "bad service name"},
		{[]string{"-s", "web", "print", "status", "--format", "yaml"}, "--format \"yaml\": use text or json"},
		{[]string{"-s", "web", "start", "--rid", "fs#9"}, "no resource fs#9"},
		{[]string{"validate"}, "give config files or -s NAME"},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			_, errs, err := n.svcmgr(tc.args...)
			if err == nil || !strings.Contains(errs, tc.want) {
				t.Fatalf("want an error containing %q, got %v: %s", tc.want, err, errs)
			}
		})
	}
}

// TestWaitFlags_OneMeaningEach: start and stop wait for the lock
// (--wait-lock), switch, takeover and giveback for the service to be up
// (--wait-up); the old --wait is hidden from the help.
func TestWaitFlags_OneMeaningEach(t *testing.T) {
	n := newNode(t)
	for verb, want := range map[string]string{"start": "--wait-lock", "stop": "--wait-lock", "switch": "--wait-up", "takeover": "--wait-up", "giveback": "--wait-up"} {
		out := n.must(verb, "--help")
		if !strings.Contains(out, want) || strings.Contains(out, "--wait ") {
			t.Errorf("svcmgr %s --help:\n%s\nwant %s and no bare --wait", verb, out, want)
		}
	}
}

// TestCompletion_RidsNodesAndKeysOfTheServiceFile: Tab offers what the
// -s service's file names.
func TestCompletion_RidsNodesAndKeysOfTheServiceFile(t *testing.T) {
	n := newNode(t)
	n.writeService("web.conf", "[DEFAULT]\nnodes = n1 n2\n\n[fs#1]\ndev = /dev/x\nmnt = /x\ntype = ext4\nmnt_opt = rw\n\n[ip#1]\nipname = 10.0.0.1\nipdev = eth0\n")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "-s", "web", "start", "--rid", ""}, []string{"fs#1", "ip#1"}},
		{[]string{"__complete", "-s", "web", "switch", "--to", ""}, []string{"n1", "n2"}},
		{[]string{"__complete", "-s", "web", "get", ""}, []string{"fs#1.mnt_opt", "nodes", "orchestrate"}},
		{[]string{"__complete", "-s", "web", "set", ""}, []string{"fs#1.mnt_opt=", "orchestrate="}},
	} {
		t.Run(strings.Join(tc.args[3:], "_"), func(t *testing.T) {
			out := n.must(tc.args...)
			for _, w := range tc.want {
				if !strings.Contains("\n"+out, "\n"+w+"\n") {
					t.Errorf("completion of %v:\n%s\nwant %q", tc.args, out, w)
				}
			}
		})
	}
}
