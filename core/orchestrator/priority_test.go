package orchestrator

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
)

// A takeover of two services on one node: the one of the higher priority
// (the lower number) starts first; the other's start waits while it
// starts, its claim standing, and comes once it is up.
func TestDecide_StartsByPriority(t *testing.T) {
	// Two services on n2 after n1 was lost and fenced, both claimed past
	// their window: registry (priority 10) and busybox (50).
	takeover := func(regState, bbState InstanceState, bbPrio int) View {
		v := twoNodes(local("n2"), nodeState("n1", NodeLost), fenced("n1"))
		reg := v.Services[0]
		reg.Name, reg.Priority = "registry", 10
		reg.Instances = map[string]Instance{
			"n1": {State: Started, Avail: status.Up, Since: t0.Add(-time.Hour)},
			"n2": {State: regState, Avail: status.Down, Since: t0.Add(-time.Hour)},
		}
		bb := reg
		bb.Name, bb.Priority = "busybox", bbPrio
		bb.Instances = map[string]Instance{
			"n1": {State: Started, Avail: status.Up, Since: t0.Add(-time.Hour)},
			"n2": {State: bbState, Avail: status.Down, Since: t0.Add(-time.Hour)},
		}
		if regState == Started {
			reg.Instances["n2"] = Instance{State: Started, Avail: status.Up, Since: t0.Add(-time.Second)}
		}
		v.Services = []Service{bb, reg}
		return v
	}
	starts := func(as []Action) []string {
		var out []string
		for _, a := range as {
			if a.Kind == Start {
				out = append(out, a.Service)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		view View
		want []string
	}{
		{"both claimed: only the higher priority starts", takeover(Ready, Ready, 50), []string{"registry"}},
		{"the higher priority starting: the other waits", takeover(Starting, Ready, 50), nil},
		{"the higher priority up: the other starts", takeover(Started, Ready, 50), []string{"busybox"}},
		{"the same priority: both start", takeover(Ready, Ready, 10), []string{"busybox", "registry"}},
		{"a priority lower than the other's starts first the other way round", takeover(Ready, Ready, 0), []string{"busybox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := starts(Decide(tc.view))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("starts %v, want %v (actions %v)", got, tc.want, Decide(tc.view))
			}
		})
	}
	// A held start keeps its claim: nothing is released.
	for _, a := range Decide(takeover(Starting, Ready, 50)) {
		if a.Kind == Release || a.Kind == Stop {
			t.Errorf("held start: %v", a)
		}
	}
}
