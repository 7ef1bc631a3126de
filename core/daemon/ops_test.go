package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/journal"
	"github.com/vigil-ha/vigil/core/status"
)

// monitoredWeb writes a service whose one resource is up while marker
// exists, monitored with one restart in place.
func monitoredWeb(t *testing.T, extra string) (etc, marker string) {
	base := t.TempDir()
	etc = filepath.Join(base, "etc")
	os.MkdirAll(etc, 0o700)
	marker = filepath.Join(base, "marker")
	os.WriteFile(filepath.Join(etc, "web.conf"), []byte("[DEFAULT]\nnodes = "+hostname(t)+"\nmonitor_schedule = 0.2s\nstatus_schedule = 0.5s\n"+extra+"\n[app#1]\ntype = test\nfile = "+marker+"\nmonitor = true\nrestart = 1\n"), 0o600)
	return etc, marker
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (n *testNode) state(name string) string {
	b, _ := os.ReadFile(filepath.Join(n.cfg.StateDir, "services", name, "state.json"))
	var p persisted
	json.Unmarshal(b, &p)
	return p.State
}

func (n *testNode) journal(t *testing.T, kind string) []journal.Entry {
	t.Helper()
	var out []journal.Entry
	err := n.client.Journal(context.Background(), map[string][]string{"kind": {kind}}, func(e journal.Entry) { out = append(out, e) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOps_FrozenNodeLeavesAFailedResourceAlone(t *testing.T) {
	etc, marker := monitoredWeb(t, "")
	n := startDaemon(t, etc)
	ctx := context.Background()
	if err := n.client.Action(ctx, "web", api.ActionRequest{Action: "start"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "started", 5*time.Second, func() bool { return n.state("web") == "started" })
	if err := n.client.NodeAction(ctx, "freeze", api.NodeRequest{}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	os.Remove(marker)
	// Several monitor evaluations see it down; none restarts it.
	waitFor(t, "the status to read it down", 10*time.Second, func() bool {
		s := localService(t, n.client, "web")
		return s != nil && s.Avail == status.Down
	})
	for range 5 {
		before := n.evaluatedAt(t)
		waitFor(t, "another evaluation", 10*time.Second, func() bool { return n.evaluatedAt(t).After(before) })
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a frozen node restarted a resource")
	}
	if s := n.state("web"); s != "started" {
		t.Fatalf("a frozen node acted on the failure: instance %q", s)
	}
	// Thawed: the monitor acts again.
	if err := n.client.NodeAction(ctx, "thaw", api.NodeRequest{}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restart after thaw", 10*time.Second, func() bool { _, err := os.Stat(marker); return err == nil })
}

// evaluatedAt is when the local web instance was last evaluated.
func (n *testNode) evaluatedAt(t *testing.T) time.Time {
	st, err := n.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if inst := st.Node[st.Local].Services["web"]; inst != nil {
		return inst.Updated
	}
	return time.Time{}
}

func TestOps_FreezeAndJournalSurviveARestart(t *testing.T) {
	etc, _ := monitoredWeb(t, "")
	n := startDaemon(t, etc)
	ctx := context.Background()
	if err := n.client.NodeAction(ctx, "freeze", api.NodeRequest{}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	n.stop()
	n.start(t)
	st, err := n.client.Ops(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Frozen[st.Local] {
		t.Errorf("the freeze was lost in the restart: %+v", st)
	}
	ops := n.journal(t, "operator")
	if len(ops) == 0 || !strings.Contains(ops[0].Message, "frozen") || ops[0].UID == nil {
		t.Errorf("journal after restart: %+v, want the freeze with the operator's uid", ops)
	}
}

func TestOps_Refusals(t *testing.T) {
	etc, _ := monitoredWeb(t, "")
	n := startDaemon(t, etc)
	ctx := context.Background()
	if err := n.client.Action(ctx, "web", api.ActionRequest{Action: "start"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"drain with nowhere to go", func() error { return n.client.NodeAction(ctx, "drain", api.NodeRequest{}, func(string) {}) }, "has nowhere to go"},
		{"clear of a service that never failed", func() error { return n.client.Clear(ctx, "web", api.ClearRequest{}) }, "has no failure to clear"},
		{"confirm of this node", func() error {
			return n.client.NodeAction(ctx, "fence-confirm", api.NodeRequest{Node: hostname(t)}, func(string) {})
		}, "is this node"},
		{"fence test of a node without a method", func() error {
			return n.client.NodeAction(ctx, "fence-test", api.NodeRequest{Node: hostname(t)}, func(string) {})
		}, "has no fencing method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	if st, _ := n.client.Ops(ctx); st.Frozen[st.Local] || st.Draining {
		t.Errorf("a refused drain changed the node: %+v", st)
	}
}

func TestOps_ClearAndFailureTimeoutForgetTheFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		clear bool
	}{
		{"clear", "", true},
		{"failure_timeout", "failure_timeout = 1s\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			etc, marker := monitoredWeb(t, tc.extra)
			n := startDaemon(t, etc)
			ctx := context.Background()
			if err := n.client.Action(ctx, "web", api.ActionRequest{Action: "start"}, func(string) {}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "started", 5*time.Second, func() bool { return n.state("web") == "started" })
			os.Remove(marker)
			waitFor(t, "the restart", 10*time.Second, func() bool { _, err := os.Stat(marker); return err == nil })
			waitFor(t, "the restart count published", 10*time.Second, func() bool {
				st, _ := n.client.Status(ctx)
				inst := st.Node[st.Local].Services["web"]
				return inst != nil && inst.Restarts["app#1"] == 1 && inst.Status.Avail == status.Up
			})
			os.Remove(marker)
			waitFor(t, "failed", 10*time.Second, func() bool { return n.state("web") == "failed" })
			if tc.clear {
				if err := n.client.Clear(ctx, "web", api.ClearRequest{}); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "the failure forgotten", 10*time.Second, func() bool { return n.state("web") == "" })
		})
	}
}

func TestAlert_CommandGetsTheEventInItsEnvironmentAndOnStdin(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "alert.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nenv | grep ^VIGIL_EVENT_ | sort > "+out+".tmp\ncat >> "+out+".tmp\nmv "+out+".tmp "+out+"\n"), 0o700)
	failing := filepath.Join(dir, "fail.sh")
	os.WriteFile(failing, []byte("#!/bin/sh\nexit 3\n"), 0o700)
	d := testDaemon(t, "a")
	d.node.Alerts = []cluster.AlertConfig{{Name: "alert#1", Command: script, Timeout: 5 * time.Second},
		{Name: "alert#2", Command: failing, Timeout: 5 * time.Second}}
	d.metrics = newMetrics(d)
	var err error
	if d.ops, err = newOpsIn(d, dir); err != nil {
		t.Fatal(err)
	}
	d.record(journal.Entry{Kind: "fence", Node: "b", Message: "fenced"})
	waitFor(t, "the alert's output", 5*time.Second, func() bool { _, err := os.Stat(out); return err == nil })
	b, _ := os.ReadFile(out)
	for _, want := range []string{"VIGIL_EVENT_KIND=fence", "VIGIL_EVENT_NODE=b", "VIGIL_EVENT_MESSAGE=fenced", "VIGIL_EVENT_SERVICE=", "VIGIL_EVENT_TIME=", `"kind":"fence"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("alert saw:\n%s\nwant %q", b, want)
		}
	}
	waitFor(t, "the failing alert counted", 5*time.Second, func() bool {
		d.ops.mu.Lock()
		defer d.ops.mu.Unlock()
		return d.ops.alertErr["alert#2"] == 1
	})
}

func TestOps_ConfigChangeJournaledWithItsDiff(t *testing.T) {
	etc, _ := monitoredWeb(t, "")
	n := startDaemon(t, etc)
	if err := n.client.ConfigSet(context.Background(), "web", []string{"comment=hello"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change in the journal", 10*time.Second, func() bool {
		for _, e := range n.journal(t, "config") {
			if strings.Contains(e.Message, "+comment = hello") {
				return true
			}
		}
		return false
	})
}

func TestOps_OperatorActionsJournaledWithTheUID(t *testing.T) {
	etc, _ := monitoredWeb(t, "")
	n := startDaemon(t, etc)
	ctx := context.Background()
	if err := n.client.Action(ctx, "web", api.ActionRequest{Action: "start"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	n.client.Action(ctx, "web", api.ActionRequest{Action: "switch", To: "nowhere"}, func(string) {})
	var got []string
	for _, e := range n.journal(t, "operator") {
		if e.Service == "web" && e.UID != nil && *e.UID == os.Getuid() {
			got = append(got, e.Message)
		}
	}
	if len(got) != 2 || got[0] != "start: ok" || !strings.HasPrefix(got[1], "switch nowhere: ") {
		t.Errorf("operator entries %q, want the start and the refused switch with its reason", got)
	}
}
