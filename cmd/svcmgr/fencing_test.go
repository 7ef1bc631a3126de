package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidate_HARequiresFencingForEveryNode: with a cluster.conf, a
// service with orchestrate = ha and a node without a [stonith#node]
// section is refused (a frozen owner would resume beside its taker),
// unless it sets stonith = false itself.
func TestValidate_HARequiresFencingForEveryNode(t *testing.T) {
	n := newNode(t)
	must(t, os.WriteFile(filepath.Join(n.configDir, "cluster.secret"), []byte(strings.Repeat("ab", 32)+"\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(n.configDir, "cluster.conf"), []byte(`[cluster]
name = test
nodes = n1 n2
node = n1
secret_file = cluster.secret

[hb#1]
type = disk
dev = /dev/vigil-test-none

[stonith#n1]
type = fence_agent
agent = fence_ipmilan
`), 0o600))
	const svc = "[DEFAULT]\nnodes = n1 n2\norchestrate = ha\n"
	n.writeService("ha.conf", svc)
	_, errs, err := n.svcmgr("-s", "ha", "validate")
	if err == nil || !strings.Contains(errs, "needs a fencing method for every node") || !strings.Contains(errs, "none for n2") {
		t.Fatalf("want a refusal naming n2, got %v:\n%s", err, errs)
	}
	n.writeService("ha.conf", svc+"stonith = false\n")
	if out, errs, err := n.svcmgr("-s", "ha", "validate"); err != nil {
		t.Fatalf("stonith = false must validate: %v\n%s%s", err, out, errs)
	}
	n.writeService("ha.conf", strings.Replace(svc, "ha\n", "start\n", 1))
	if out, errs, err := n.svcmgr("-s", "ha", "validate"); err != nil {
		t.Fatalf("orchestrate = start must validate: %v\n%s%s", err, out, errs)
	}
}
