package ops

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/journal"
	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

var suite = &labtest.Suite{
	Name:  "ops",
	Build: []string{"./cmd/svcmgr", "./cmd/svcmon", "./cmd/nodemgr"},
	Need:  []string{"svcmgr", "svcmon", "nodemgr"},
	Poll:  100 * time.Millisecond,
}

func TestMain(m *testing.M) { suite.Main(m) }

// One lab for the scenarios that leave it usable for the next: refusals
// first, then the drain, whose end state (n1 frozen, everything on n2) is
// where the drain of n2 is refused.
func TestOps_RefusalsAndDrain(t *testing.T) {
	l := suite.New(t, labtest.Options{Prefix: "o", Nodes: 2})
	l.WaitReady("n1", "n2", labtest.RejoinTimeout)
	l.WaitReady("n2", "n1", labtest.RejoinTimeout)
	for _, svc := range labtest.SeedServices {
		l.WaitAvail("n1", "n1", svc, status.Up, labtest.StartTimeout)
	}
	ctx := context.Background()
	refused := func(what string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it refused saying %q", what, err, want)
		} else {
			t.Logf("%s refused: %v", what, err)
		}
	}

	// Confirming off a node that is heard.
	refused("fence confirm of a heard node", l.Client("n2").NodeAction(ctx, "fence-confirm", api.NodeRequest{Node: "n1"}, func(string) {}),
		"n1 is heard")
	// Clearing a service that never failed.
	refused("clear of a service that never failed", l.Client("n1").Clear(ctx, labtest.Registry, api.ClearRequest{Node: "*"}),
		"has no failure to clear")

	// The drain of n1: everything moves to n2, n1 is frozen and gets
	// nothing back.
	var lines []string
	if err := l.Client("n1").NodeAction(ctx, "drain", api.NodeRequest{Wait: true}, func(s string) { lines = append(lines, s) }); err != nil {
		t.Fatalf("drain n1: %v (%v)", err, lines)
	}
	t.Logf("drain n1: %v", lines)
	for _, svc := range labtest.SeedServices {
		l.WaitAvail("n2", "n2", svc, status.Up, labtest.FailoverTimeout)
		if a := l.Avail("n1", "n1", svc); a != "down" {
			t.Errorf("%s on the drained n1 is %s", svc, a)
		}
	}
	l.WaitFor("n2 to see n1 frozen", 10*time.Second, func() (bool, string) {
		st, err := l.Client("n2").Ops(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Frozen["n1"], "n1 not frozen in n2's view"
	})
	// The drain of n2 now: n1 is frozen, so nothing has anywhere to go.
	refused("drain with nowhere to go", l.Client("n2").NodeAction(ctx, "drain", api.NodeRequest{}, func(string) {}),
		"has nowhere to go")
	// Nothing came back to n1 meanwhile.
	for _, svc := range labtest.SeedServices {
		if a := l.Avail("n1", "n1", svc); a != "down" {
			t.Errorf("%s came back to the drained n1: %s", svc, a)
		}
	}
	// Nor when n2 goes: a drained node takes nothing, even what nobody runs.
	l.MustLab("poweroff", "n2")
	l.WaitFor("n1 to see n2 lost", labtest.FailoverTimeout, func() (bool, string) {
		st := l.NodeState("n1", "n2")
		return st == "lost", string(st)
	})
	for range 2 {
		before := l.Instance("n1", "n1", labtest.Registry).Updated
		l.WaitFor("another evaluation on n1", 60*time.Second, func() (bool, string) {
			return l.Instance("n1", "n1", labtest.Registry).Updated.After(before), "not yet"
		})
	}
	for _, svc := range labtest.SeedServices {
		if inst := l.Instance("n1", "n1", svc); inst.Status.Avail != status.Down || inst.State == "ready" || inst.State == "starting" {
			t.Errorf("the drained n1 took %s when n2 went: %s/%s", svc, inst.State, inst.Status.Avail)
		}
	}
	// The journal holds the drain and the takeovers' records.
	var kinds []string
	err := l.Client("n1").Journal(ctx, map[string][]string{"kind": {"operator"}}, func(e journal.Entry) { kinds = append(kinds, e.Message) })
	if err != nil || len(kinds) == 0 || !strings.Contains(strings.Join(kinds, "; "), "drain") {
		t.Errorf("n1's journal of operator actions: %v (%v)", kinds, err)
	}
	out, _ := l.Exec("n1", "svcmon")
	t.Logf("n1: svcmon:\n%s", out)
	if !strings.Contains(out, "frozen: n1") {
		t.Errorf("svcmon on n1 does not show n1 frozen:\n%s", out)
	}
}
