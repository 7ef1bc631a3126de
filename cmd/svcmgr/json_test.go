package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/core/plugin/plugintest"
)

// TestJSON_ActionsCarryStepsAndErrors: with --format json an action's
// result has its steps, a failure is JSON on stdout with a non-zero exit,
// and print status lists resources in the tree's order.
func TestJSON_ActionsCarryStepsAndErrors(t *testing.T) {
	n := newNode(t)
	if err := os.Symlink(filepath.Join(plugintest.Dir(t), "vigil-plugin-test"), filepath.Join(n.pluginDir, "vigil-plugin-test")); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	// Written in another order than the tree's: app, then ip-less groups.
	n.writeService("web.conf", "[DEFAULT]\nnodes = "+hostname(t)+"\n\n[app#2]\ntype = test\nfile = "+filepath.Join(base, "b")+
		"\n\n[app#1]\ntype = test\nfile = "+filepath.Join(base, "a")+"\n")
	n.writeService("bad.conf", "[DEFAULT]\nnodes = "+hostname(t)+"\n\n[app#1]\ntype = test\nfile = "+filepath.Join(base, "c")+"\nfail = true\n")

	var ok actionResult
	if err := json.Unmarshal([]byte(n.must("-s", "web", "start", "--format", "json")), &ok); err != nil {
		t.Fatal(err)
	}
	if ok.Result != "ok" || len(ok.Steps) == 0 || !strings.Contains(strings.Join(ok.Steps, "\n"), "start app#1") {
		t.Fatalf("start result %+v; want ok with its steps", ok)
	}
	t.Cleanup(func() { n.svcmgr("-s", "web", "stop") })

	out, errs, err := n.svcmgr("-s", "bad", "start", "--format", "json")
	var failed actionResult
	if jerr := json.Unmarshal([]byte(out), &failed); err == nil || jerr != nil || failed.Result != "error" || !strings.Contains(failed.Error, "app#1") || errs != "" {
		t.Fatalf("failed start: exit %v, stdout %q, stderr %q; want a JSON error on stdout alone and exit 1", err, out, errs)
	}

	out, errs, err = n.svcmgr("-s", "nosuch", "print", "status", "--format", "json")
	var e map[string]string
	if jerr := json.Unmarshal([]byte(out), &e); err == nil || jerr != nil || !strings.Contains(e["error"], "no nosuch.conf") || errs != "" {
		t.Fatalf("unknown service: exit %v, stdout %q, stderr %q; want a JSON error", err, out, errs)
	}

	var st struct {
		Resources []struct{ RID string } `json:"resources"`
	}
	if err := json.Unmarshal([]byte(n.must("-s", "web", "print", "status", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	var rids []string
	for _, r := range st.Resources {
		rids = append(rids, r.RID)
	}
	if got := strings.Join(rids, " "); !strings.HasPrefix(got, "app#1 app#2 ") {
		t.Fatalf("resources in the JSON: %s; want the tree's order (app#1 app#2 ...)", got)
	}
}
