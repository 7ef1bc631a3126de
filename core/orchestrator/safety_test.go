package orchestrator

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
)

// twoNodes is base() with n3 gone: the shape of a two-node cluster.
func twoNodes(mods ...mod) View {
	return base(append([]mod{dropNode("n3"), svc(func(s *Service) {
		s.Nodes = []string{"n1", "n2"}
		delete(s.Instances, "n3")
	}), func(v *View) { v.Order = []string{"n1", "n2"} }}, mods...)...)
}

func unreadable(n string, st InstanceState, a status.Status) mod {
	return svc(func(s *Service) {
		s.Instances[n] = Instance{State: st, Avail: a, Since: t0.Add(-time.Minute), Unreadable: true}
	})
}

func noInst(n string) mod { return svc(func(s *Service) { delete(s.Instances, n) }) }

func TestDecide_UnheardPeerIsNotIdle(t *testing.T) {
	unheard := func(mods ...mod) View {
		return twoNodes(append([]mod{local("n2"), nodeState("n1", NodeUnknown), noInst("n1")}, mods...)...)
	}
	runCases(t, []decideCase{
		{name: "fences a peer never heard since start before starting its service", view: unheard(), want: []string{"fence n1"}},
		{name: "fences a never-heard peer with orchestrate=start too", view: unheard(orchestrate("start")), want: []string{"fence n1"}},
		{name: "starts nothing beside a never-heard peer it cannot fence (wait for all)", view: unheard(noStonith("n1"))},
		{name: "starts nothing beside a never-heard peer when the service sets stonith=false", view: unheard(svc(func(s *Service) { s.Stonith = false }))},
		{name: "releases a claim when a never-heard peer cannot be fenced", view: unheard(noStonith("n1"), claimed("n2", time.Hour)), want: []string{"release"}},
		{name: "does not start a claim past its window before the never-heard peer is fenced", view: unheard(claimed("n2", time.Hour)), want: []string{"fence n1"}},
		{name: "claims once the never-heard peer is fenced", view: unheard(fenced("n1")), want: []string{"claim", "start"}},
		{name: "claims once the peer is heard", view: twoNodes(local("n2"), noInst("n1"), frozenNode("n1")), want: []string{"claim"}},
		{name: "a never-heard node outside the service's nodes does not hold it", view: base(addNode("n4"), nodeState("n4", NodeUnknown), noInst("n4")), want: []string{"claim"}},
	})
}

func TestDecide_UnreadableInstanceIsActive(t *testing.T) {
	var cases []decideCase
	for _, st := range []InstanceState{Idle, Stopped, StopFailed, StartFailed, Failed, Started} {
		for _, a := range []status.Status{status.Down, status.NA, status.Undef} {
			name := string(st) + " " + a.String()
			cases = append(cases,
				decideCase{name: "refuses to claim while a peer's instance reads " + name + " with a resource undef", view: base(unreadable("n2", st, a))},
				decideCase{name: "releases its claim while a peer's instance reads " + name + " with a resource undef", view: base(claimed("n1", time.Hour), unreadable("n2", st, a)), want: []string{"release"}},
				decideCase{name: "fences a lost peer whose instance read " + name + " with a resource undef", view: base(local("n2"), nodeState("n1", NodeLost), unreadable("n1", st, a)), want: []string{"fence n1"}},
			)
		}
	}
	runCases(t, cases)
}

func TestDecide_PartialInstanceConverges(t *testing.T) {
	runCases(t, []decideCase{
		{name: "stops a partial instance left idle (a fenced node back with its VG up)", view: base(local("n2"), inst("n2", Idle, status.Warn)), want: []string{"stop"}},
		{name: "stops a partial instance left stopped", view: base(inst("n1", Stopped, status.Warn)), want: []string{"stop"}},
		{name: "stops a partial instance whose start failed", view: base(inst("n1", StartFailed, status.Warn)), want: []string{"stop"}},
		{name: "stops a partial instance that failed its monitor", view: base(inst("n1", Failed, status.Warn)), want: []string{"stop"}},
		{name: "leaves a started partial instance to its monitor", view: base(inst("n1", Started, status.Warn))},
		{name: "leaves a starting instance alone", view: base(inst("n1", Starting, status.Warn))},
		{name: "leaves a partial instance alone on a frozen service", view: base(expect(ExpectFrozen), inst("n1", Idle, status.Warn))},
		{name: "leaves a partial instance alone on a frozen node", view: base(frozenNode("n1"), inst("n1", Idle, status.Warn))},
		{name: "leaves a partial instance alone with orchestrate=no", view: base(orchestrate("no"), inst("n1", Idle, status.Warn))},
		{name: "the peers wait while a partial instance is stopped", view: base(local("n1"), inst("n2", Idle, status.Warn))},
	})
}

func TestDecide_ResumedNodeStopsWhatAPeerTookOver(t *testing.T) {
	resumed := func(v *View) { v.Resumed = true }
	runCases(t, []decideCase{
		{name: "a node back from a freeze stops its instance a peer took over", view: base(resumed, running("n1"), running("n2")), want: []string{"stop"}},
		{name: "a node back from a freeze stops its instance a peer is starting", view: base(resumed, running("n1"), inst("n2", Starting, status.Down)), want: []string{"stop"}},
		{name: "a node back from a freeze keeps its instance when no peer took it", view: base(resumed, running("n1"))},
		{name: "without a freeze, up on two nodes is only a warning", view: base(running("n1"), running("n2")), want: []string{"warn"}},
		{name: "the peer that took over does not stop", view: base(local("n2"), running("n1"), running("n2")), want: []string{"warn"}},
		{name: "a node back from a freeze leaves a frozen service alone", view: base(resumed, expect(ExpectFrozen), running("n1"), running("n2")), want: []string{"warn"}},
	})
}

func TestDecide_DefensiveFence(t *testing.T) {
	runCases(t, []decideCase{
		{name: "the node running the service fences a lost peer that could take it over", view: twoNodes(running("n1"), nodeState("n2", NodeLost)), want: []string{"fence n2"}},
		{name: "no defensive fence of a fenced peer", view: twoNodes(running("n1"), nodeState("n2", NodeLost), fenced("n2"))},
		{name: "no defensive fence of a peer without stonith", view: twoNodes(running("n1"), nodeState("n2", NodeLost), noStonith("n2"))},
		{name: "no defensive fence with stonith=false", view: twoNodes(running("n1"), nodeState("n2", NodeLost), svc(func(s *Service) { s.Stonith = false }))},
		{name: "no defensive fence for orchestrate=start", view: twoNodes(orchestrate("start"), running("n1"), nodeState("n2", NodeLost))},
		{name: "nothing runs here: the lost peer is fenced before the start (not defensively)", view: twoNodes(nodeState("n2", NodeLost)), want: []string{"fence n2"}},
		{name: "no defensive fence from a frozen node", view: twoNodes(frozenNode("n1"), running("n1"), nodeState("n2", NodeLost))},
		{name: "no defensive fence with three nodes (quorum decides)", view: base(running("n1"), nodeState("n2", NodeLost), func(v *View) { v.Order = []string{"n1", "n2", "n3"} })},
	})
}

func TestFenceDelay_TheSideRunningTheServicesWins(t *testing.T) {
	const prio = 5 * time.Second
	other := func(v *View) {
		v.Services = append(v.Services, Service{Name: "other", Orchestrate: "ha", Nodes: []string{"n2", "n1"}, Stonith: true,
			Instances: map[string]Instance{"n1": {State: Idle, Avail: status.Down}, "n2": {State: Started, Avail: status.Up}}})
	}
	static := func(n string, d time.Duration) mod {
		return func(v *View) { nd := v.Nodes[n]; nd.FenceDelay = d; v.Nodes[n] = nd }
	}
	cases := []struct {
		name   string
		view   View
		target string
		want   time.Duration
	}{
		{"the passive node waits before fencing the active one", twoNodes(local("n2"), running("n1")), "n1", prio},
		{"the active node fences the passive one at once", twoNodes(local("n1"), running("n1")), "n2", 0},
		{"a service on each side: fencing the first node waits", twoNodes(local("n2"), running("n1"), other), "n1", prio},
		{"a service on each side: the first node fences at once", twoNodes(local("n1"), running("n1"), other), "n2", 0},
		{"two services against one: the side with two wins", twoNodes(local("n1"), running("n2"), other), "n2", prio},
		{"nothing runs anywhere: the first node wins the tie", twoNodes(local("n2")), "n1", prio},
		{"a static fence_delay adds to the priority delay", twoNodes(local("n2"), running("n1"), static("n1", 2*time.Second)), "n1", prio + 2*time.Second},
		{"a static fence_delay applies alone", twoNodes(local("n1"), running("n1"), static("n2", 2*time.Second)), "n2", 2 * time.Second},
		// A node back from a fence, its links not yet up, has heard
		// nothing of the survivor that runs everything: its startup fence
		// must not win the race against the heal.
		{"a startup fence of a never-heard peer waits, whoever comes first", twoNodes(local("n1"), nodeState("n2", NodeUnknown), noInst("n2")), "n2", prio},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.view
			v.PriorityFenceDelay = prio
			if got := FenceDelay(v, tc.target); got != tc.want {
				t.Fatalf("FenceDelay(%s → %s) = %v, want %v", v.Local, tc.target, got, tc.want)
			}
		})
	}
	// Both sides of a split compute opposite delays: never both zero.
	v := twoNodes(running("n1"), func(v *View) { v.PriorityFenceDelay = prio })
	a := FenceDelay(v, "n2")
	v.Local = "n2"
	b := FenceDelay(v, "n1")
	if (a == 0) == (b == 0) {
		t.Fatalf("n1→n2 waits %v, n2→n1 waits %v: exactly one side must wait", a, b)
	}
	// The delay travels with the action.
	got := Decide(twoNodes(local("n2"), nodeState("n1", NodeLost), running("n1"), func(v *View) { v.PriorityFenceDelay = prio }))
	if len(got) != 1 || got[0].Kind != Fence || got[0].Delay != prio {
		t.Fatalf("Decide = %v, want a fence of n1 delayed %v", got, prio)
	}
}

func TestAdmit_OperatorStartChecksWhatTheOrchestratorChecks(t *testing.T) {
	cases := []struct {
		name string
		view View
		want string // "" admitted, else a fragment of the refusal
	}{
		{"admitted when down everywhere", base(), ""},
		{"admitted when a lost peer that ran it is fenced", base(nodeState("n2", NodeLost), running("n2"), fenced("n2")), ""},
		{"admitted when a lost peer without stonith ran it (takeover without fencing)", base(nodeState("n2", NodeLost), running("n2"), noStonith("n2")), ""},
		{"refused while a peer runs it", base(running("n2")), "started/up on n2"},
		{"refused while a peer is half up", base(inst("n2", Started, status.Warn)), "on n2"},
		{"refused while a peer is starting it", base(inst("n2", Starting, status.Down)), "on n2"},
		{"refused while a peer is stopping it", base(inst("n2", Stopping, status.Down)), "on n2"},
		{"refused while a peer's stop failed with it up", base(inst("n2", StopFailed, status.Up)), "on n2"},
		{"refused while a peer has not evaluated it yet", base(unknownInst("n2")), "on n2"},
		{"refused while a peer's status cannot be read", base(unreadable("n2", Idle, status.Down)), "on n2"},
		{"refused while a lost peer that ran it is not fenced", base(nodeState("n2", NodeLost), running("n2")), "not fenced"},
		{"refused while a node of the service was never heard", base(nodeState("n2", NodeUnknown), noInst("n2")), "not been heard"},
		{"refused while this node is joining", base(nodeState("n1", NodeJoining)), "joining"},
		{"refused without quorum", base(func(v *View) { v.Quorum = false }), "quorum"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.view.Services[0].Instances["n1"] = Instance{State: Idle, Avail: status.Down}
			err := Admit(tc.view, tc.view.Services[0])
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Admit = %v, want admitted", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Admit = %v, want a refusal saying %q", err, tc.want)
			}
		})
	}
}

// The guards the simulation switches off: each one, off, changes a
// decision that is unsafe.
func TestDisabled_EachGuardMatters(t *testing.T) {
	cases := []struct {
		name string
		view View
		off  Disabled
	}{
		{"fence confirmation", twoNodes(local("n2"), nodeState("n1", NodeLost), running("n1")), Disabled{FenceConfirmation: true}},
		{"unheard peer", twoNodes(local("n2"), nodeState("n1", NodeUnknown), noInst("n1")), Disabled{UnheardPeer: true}},
		{"undef is active", base(unreadable("n2", Idle, status.Down)), Disabled{UndefIsActive: true}},
		{"stale report", twoNodes(local("n2"), nodeState("n1", NodeLost)), Disabled{StaleReport: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			on := summary(Decide(tc.view))
			tc.view.Off = tc.off
			off := summary(Decide(tc.view))
			if slices.Contains(on, "claim") || !slices.Contains(off, "claim") {
				t.Fatalf("with the guard: %v, without: %v; want a claim only without it", on, off)
			}
		})
	}
}

func TestDecide_ClaimStartsOnlyWhenEveryLivePeerWasHeardSince(t *testing.T) {
	silent := func(n string) mod {
		return func(v *View) { nd := v.Nodes[n]; nd.HeardAt = t0.Add(-time.Hour); v.Nodes[n] = nd }
	}
	runCases(t, []decideCase{
		{name: "starts after the window when every ready peer was heard since the claim", view: base(claimed("n1", window)), want: []string{"start"}},
		{name: "holds a claim past the window while a ready peer has been silent since (a fresh cut)", view: base(claimed("n1", window), silent("n2"))},
		{name: "holds it for a silent joining peer too", view: base(claimed("n1", window), nodeState("n3", NodeJoining), silent("n3"))},
		{name: "a silent peer judged lost and fenced no longer holds it", view: base(claimed("n1", window), silent("n2"), nodeState("n2", NodeLost), fenced("n2")), want: []string{"start"}},
	})
}

func TestDecide_InterruptedActionIsActiveAndStopped(t *testing.T) {
	runCases(t, []decideCase{
		{name: "an interrupted local instance is stopped", view: base(inst("n1", Interrupted, status.Down)), want: []string{"stop"}},
		{name: "a peer's interrupted instance blocks the start here", view: base(inst("n2", Interrupted, status.Down))},
		{name: "a lost peer's interrupted instance is fenced first", view: base(local("n2"), nodeState("n1", NodeLost), inst("n1", Interrupted, status.Down)), want: []string{"fence n1"}},
		{name: "an interrupted instance on a frozen service is left alone", view: base(expect(ExpectFrozen), inst("n1", Interrupted, status.Down))},
	})
}

func TestDecide_UnfenceableLostPeerIsGivenTimeToStop(t *testing.T) {
	const wait = 6 * time.Second
	// n2's view of a two-node service with stonith = false, in a
	// cluster whose quorum is a majority (an arbitrator): n1 is lost,
	// last heard ago.
	lost := func(ago time.Duration, mods ...mod) View {
		return twoNodes(append([]mod{local("n2"), nodeState("n1", NodeLost), svc(func(s *Service) { s.Stonith = false }),
			func(v *View) {
				v.SelfStopWait = wait
				nd := v.Nodes["n1"]
				nd.HeardAt = t0.Add(-ago)
				v.Nodes["n1"] = nd
			}}, mods...)...)
	}
	runCases(t, []decideCase{
		{name: "waits before taking over from a lost owner it cannot fence", view: lost(time.Second, running("n1"))},
		{name: "takes over once the lost owner has had the time to lose quorum and stop", view: lost(wait+time.Second, running("n1")), want: []string{"claim", "start"}},
		{name: "waits before starting beside a lost idle node it cannot fence", view: lost(time.Second)},
		{name: "starts once the lost idle node has had the time to stop", view: lost(wait + time.Second), want: []string{"claim", "start"}},
		{name: "a claim past its window does not start while the lost node may still run it", view: lost(time.Second, claimed("n2", time.Hour))},
		{name: "a node without fencing in a stonith service waits too", view: lost(time.Second, running("n1"), svc(func(s *Service) { s.Stonith = true }), noStonith("n1"))},
		{name: "a fenceable lost owner is fenced, not waited for", view: lost(time.Second, running("n1"), svc(func(s *Service) { s.Stonith = true })), want: []string{"fence n1"}},
		{name: "without a majority quorum (two nodes, no arbitrator) the takeover is at once", view: lost(time.Second, running("n1"), func(v *View) { v.SelfStopWait = 0 }), want: []string{"claim", "start"}},
	})
}

func TestAdmit_RefusesWhileAnUnfenceableLostPeerMayStillRunIt(t *testing.T) {
	v := twoNodes(local("n2"), nodeState("n1", NodeLost), running("n1"), svc(func(s *Service) { s.Stonith = false }),
		func(v *View) {
			v.SelfStopWait = 6 * time.Second
			nd := v.Nodes["n1"]
			nd.HeardAt = t0.Add(-time.Second)
			v.Nodes["n1"] = nd
		})
	err := Admit(v, v.Services[0])
	if err == nil || !strings.Contains(err.Error(), "n1") {
		t.Fatalf("Admit = %v, want a refusal naming n1", err)
	}
	v.Now = t0.Add(10 * time.Second)
	if err := Admit(v, v.Services[0]); err != nil {
		t.Fatalf("Admit after the wait = %v, want nil", err)
	}
}

func TestDecide_FailedNodeIsTheLastResortWhenEveryOtherNodeIsLost(t *testing.T) {
	runCases(t, []decideCase{
		{name: "a node where the service failed before takes it over from a lost and fenced owner", view: twoNodes(local("n1"), nodeState("n2", NodeLost), fenced("n2"), running("n2"), inst("n1", Failed, status.Down)), want: []string{"claim", "start"}},
		{name: "it fences the lost owner first", view: twoNodes(local("n1"), nodeState("n2", NodeLost), running("n2"), inst("n1", StartFailed, status.Down)), want: []string{"fence n2"}},
		{name: "while another node can run it, a failed node stays out", view: base(local("n1"), nodeState("n2", NodeLost), fenced("n2"), running("n2"), inst("n1", Failed, status.Down))},
		{name: "a stop failure is never the last resort", view: twoNodes(local("n1"), nodeState("n2", NodeLost), fenced("n2"), running("n2"), inst("n1", StopFailed, status.Down))},
		{name: "with the other node alive, a failed node does not take it back", view: twoNodes(local("n1"), inst("n1", Failed, status.Down))},
	})
}
