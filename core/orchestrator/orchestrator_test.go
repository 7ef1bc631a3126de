package orchestrator

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const window = 5 * time.Second

// mod changes the base view of a case.
type mod func(*View)

// base is three ready nodes with fencing configured, quorum, and one
// service "svc" (orchestrate = ha, nodes n1 n2 n3, stonith on) that is idle
// and down everywhere, seen from n1.
func base(mods ...mod) View {
	v := View{
		Local: "n1",
		Now:   t0,
		Nodes: map[string]Node{
			"n1": {Name: "n1", State: NodeReady, Stonith: true, HeardAt: t0},
			"n2": {Name: "n2", State: NodeReady, Stonith: true, HeardAt: t0},
			"n3": {Name: "n3", State: NodeReady, Stonith: true, HeardAt: t0},
		},
		Quorum:      true,
		ReadyWindow: window,
		Services: []Service{{
			Name:        "svc",
			Orchestrate: "ha",
			Nodes:       []string{"n1", "n2", "n3"},
			Stonith:     true,
			Instances: map[string]Instance{
				"n1": {State: Idle, Avail: status.Down, Since: t0.Add(-time.Hour)},
				"n2": {State: Idle, Avail: status.Down, Since: t0.Add(-time.Hour)},
				"n3": {State: Idle, Avail: status.Down, Since: t0.Add(-time.Hour)},
			},
		}},
	}
	for _, m := range mods {
		m(&v)
	}
	return v
}

func local(n string) mod { return func(v *View) { v.Local = n } }

func nodeState(n string, st NodeState) mod {
	return func(v *View) { nd := v.Nodes[n]; nd.State = st; v.Nodes[n] = nd }
}

func frozenNode(n string) mod {
	return func(v *View) { nd := v.Nodes[n]; nd.Frozen = true; v.Nodes[n] = nd }
}

func fenced(n string) mod {
	return func(v *View) { nd := v.Nodes[n]; nd.Fenced = true; v.Nodes[n] = nd }
}

func noStonith(n string) mod {
	return func(v *View) { nd := v.Nodes[n]; nd.Stonith = false; v.Nodes[n] = nd }
}

func dropNode(n string) mod { return func(v *View) { delete(v.Nodes, n) } }

func addNode(n string) mod {
	return func(v *View) {
		v.Nodes[n] = Node{Name: n, State: NodeReady, Stonith: true, HeardAt: t0}
		v.Services[0].Instances[n] = Instance{State: Idle, Avail: status.Down}
	}
}

// moveInst reports from's instance as to's, and from as idle and down.
func moveInst(from, to string) mod {
	return svc(func(s *Service) {
		s.Instances[to] = s.Instances[from]
		s.Instances[from] = Instance{State: Idle, Avail: status.Down}
	})
}

func svc(f func(*Service)) mod { return func(v *View) { f(&v.Services[0]) } }

func orchestrate(o string) mod { return svc(func(s *Service) { s.Orchestrate = o }) }

func expect(e Expectation) mod { return svc(func(s *Service) { s.Expect = e }) }

func target(n string) mod { return svc(func(s *Service) { s.Target = n }) }

func inst(n string, st InstanceState, a status.Status) mod {
	return svc(func(s *Service) { s.Instances[n] = Instance{State: st, Avail: a, Since: t0.Add(-time.Minute)} })
}

// running: started and up.
func running(n string) mod { return inst(n, Started, status.Up) }

// claimed: n published its ready claim ago.
func claimed(n string, ago time.Duration) mod {
	return svc(func(s *Service) { s.Instances[n] = Instance{State: Ready, Avail: status.Down, Since: t0.Add(-ago)} })
}

// summary renders actions as "kind" or "kind node", in order, ignoring the
// reasons (they are for humans).
func summary(as []Action) []string {
	var out []string
	for _, a := range as {
		s := string(a.Kind)
		if a.Node != "" {
			s += " " + a.Node
		}
		out = append(out, s)
	}
	return out
}

type decideCase struct {
	name string
	view View
	want []string
	bug  string // non-empty: Decide is wrong here; the case states the safe behaviour
}

func runCases(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip("BUG: " + tc.bug)
			}
			got := Decide(tc.view)
			if !slices.Equal(summary(got), tc.want) {
				t.Fatalf("Decide from %s = %v, want %v\nactions: %v", tc.view.Local, summary(got), tc.want, got)
			}
			for _, a := range got {
				if a.Service != "svc" || a.Reason == "" {
					t.Errorf("action %+v: want service svc and a reason", a)
				}
			}
		})
	}
}

func TestDecide_Gates(t *testing.T) {
	runCases(t, []decideCase{
		{name: "does nothing while the local node is joining", view: base(nodeState("n1", NodeJoining))},
		{name: "does nothing while the local node sees itself unknown", view: base(nodeState("n1", NodeUnknown))},
		{name: "does nothing when the local node is missing from the view", view: base(dropNode("n1"))},
		{name: "does nothing without quorum", view: base(func(v *View) { v.Quorum = false })},
		{name: "does nothing without quorum even when a fenced lost peer ran it",
			view: base(local("n2"), nodeState("n1", NodeLost), fenced("n1"), running("n1"), func(v *View) { v.Quorum = false })},
		{name: "does nothing for orchestrate=no", view: base(orchestrate("no"))},
		{name: "does nothing when orchestrate is unset", view: base(orchestrate(""))},
		{name: "does nothing for orchestrate=no even with a claim past the window", view: base(orchestrate("no"), claimed("n1", time.Minute))},
		{name: "does nothing for a cluster without services", view: base(func(v *View) { v.Services = nil })},
	})
}

func TestDecide_StartUp(t *testing.T) {
	runCases(t, []decideCase{
		{name: "first node in order claims a service down everywhere (ha)", view: base(), want: []string{"claim"}},
		{name: "first node in order claims a service down everywhere (start)", view: base(orchestrate("start")), want: []string{"claim"}},
		{name: "first node claims when instances report stopped", view: base(inst("n1", Stopped, status.Down), inst("n2", Stopped, status.Down)), want: []string{"claim"}},
		{name: "first node claims when peers have not reported the service yet", view: base(svc(func(s *Service) { s.Instances = map[string]Instance{} })), want: []string{"claim"}},
		{name: "second node does nothing while the first is a ready candidate", view: base(local("n2"))},
		{name: "third node does nothing while the first is a ready candidate", view: base(local("n3"))},
		{name: "second node leads when the first node is frozen", view: base(local("n2"), frozenNode("n1")), want: []string{"claim"}},
		{name: "second node leads when the first node is joining", view: base(local("n2"), nodeState("n1", NodeJoining)), want: []string{"claim"}},
		{name: "second node fences the first when it is lost (its last report is stale)", view: base(local("n2"), nodeState("n1", NodeLost)), want: []string{"fence n1"}},
		{name: "second node leads when the first node is lost and fenced", view: base(local("n2"), nodeState("n1", NodeLost), fenced("n1")), want: []string{"claim"}},
		{name: "second node leads when the first node is lost without stonith", view: base(local("n2"), nodeState("n1", NodeLost), noStonith("n1")), want: []string{"claim"}},
		{name: "second node fences the first when it was never heard (startup fencing)", view: base(local("n2"), nodeState("n1", NodeUnknown)), want: []string{"fence n1"}},
		{name: "second node leads once the never-heard first node is fenced", view: base(local("n2"), nodeState("n1", NodeUnknown), fenced("n1")), want: []string{"claim"}},
		{name: "second node leads when the first node is missing from the view", view: base(local("n2"), dropNode("n1")), want: []string{"claim"}},
		{name: "second node leads when the first node's instance start failed", view: base(local("n2"), inst("n1", StartFailed, status.Down)), want: []string{"claim"}},
		{name: "second node leads when the first node's instance failed", view: base(local("n2"), inst("n1", Failed, status.Down)), want: []string{"claim"}},
		{name: "second node leads when the first node's instance stop failed", view: base(local("n2"), inst("n1", StopFailed, status.Down)), want: []string{"claim"}},
		{name: "first node with a frozen node does not claim", view: base(frozenNode("n1"))},
		{name: "third node does nothing when the second leads", view: base(local("n3"), frozenNode("n1"))},
		{name: "third node leads when the first two cannot", view: base(local("n3"), frozenNode("n1"), nodeState("n2", NodeJoining)), want: []string{"claim"}},
		{name: "a node outside the service's nodes never claims", view: base(addNode("n4"), local("n4"), frozenNode("n1"), frozenNode("n2"), frozenNode("n3"))},
		{name: "nobody claims when no node is a candidate", view: base(local("n2"), frozenNode("n1"), inst("n2", StartFailed, status.Down), frozenNode("n3"))},
	})
}

func TestDecide_ClaimAndStart(t *testing.T) {
	runCases(t, []decideCase{
		{name: "holds a fresh claim inside the ready window", view: base(claimed("n1", 0))},
		{name: "holds a claim just inside the ready window", view: base(claimed("n1", window-time.Millisecond))},
		{name: "starts once the ready window has passed", view: base(claimed("n1", window)), want: []string{"start"}},
		{name: "starts long after the claim", view: base(claimed("n1", time.Hour)), want: []string{"start"}},
		{name: "starts with orchestrate=start after the window", view: base(orchestrate("start"), claimed("n1", window)), want: []string{"start"}},
		{name: "releases its claim when a peer reports it up", view: base(claimed("n1", window), running("n2")), want: []string{"release"}},
		{name: "releases its claim when a peer reports it warn", view: base(claimed("n1", window), inst("n2", Started, status.Warn)), want: []string{"release"}},
		{name: "releases its claim when a peer reports it starting", view: base(claimed("n1", window), inst("n2", Starting, status.Down)), want: []string{"release"}},
		{name: "releases its claim when a peer reports it ready", view: base(claimed("n1", window), claimed("n2", time.Second)), want: []string{"release"}},
		{name: "releases its claim when a peer reports it stopping", view: base(claimed("n1", window), inst("n2", Stopping, status.Up)), want: []string{"release"}},
		{name: "releases its claim when a joining peer reports it up", view: base(claimed("n1", window), nodeState("n2", NodeJoining), running("n2")), want: []string{"release"}},
		{name: "releases its claim inside the window too when a peer has it", view: base(claimed("n1", 0), inst("n2", Starting, status.Down)), want: []string{"release"}},
		{name: "releases its claim when another node became leader", view: base(local("n2"), claimed("n2", window)), want: []string{"release"}},
		{name: "releases its claim when its own node froze", view: base(frozenNode("n1"), claimed("n1", window)), want: []string{"release"}},
		{name: "keeps its claim when a lost peer reports it up but the peer is fenced", view: base(local("n2"), nodeState("n1", NodeLost), fenced("n1"), running("n1"), claimed("n2", time.Second))},
	})
}

func TestDecide_RefusesStartWhileLivePeerHasIt(t *testing.T) {
	var cases []decideCase
	peers := []struct {
		what string
		m    mod
	}{
		{"up", running("n2")},
		{"warn", inst("n2", Started, status.Warn)},
		{"starting", inst("n2", Starting, status.Down)},
		{"ready", claimed("n2", time.Second)},
		{"stopping", inst("n2", Stopping, status.Up)},
		{"stopping and already down", inst("n2", Stopping, status.Down)},
		{"up though stop failed", inst("n2", StopFailed, status.Up)},
		{"up though its instance failed", inst("n2", Failed, status.Up)},
	}
	for _, p := range peers {
		cases = append(cases,
			decideCase{name: "refuses to claim while a live peer reports it " + p.what, view: base(p.m)},
			decideCase{name: "refuses to claim while a joining peer reports it " + p.what, view: base(nodeState("n2", NodeJoining), p.m)},
			decideCase{name: "refuses to start while a live peer reports it " + p.what, view: base(claimed("n1", time.Hour), p.m), want: []string{"release"}},
			decideCase{name: "refuses to claim with orchestrate=start while a live peer reports it " + p.what, view: base(orchestrate("start"), p.m)},
			decideCase{name: "refuses to claim while a peer outside the service's nodes reports it " + p.what,
				view: base(addNode("n4"), p.m, moveInst("n2", "n4"))},
		)
	}
	cases = append(cases,
		decideCase{name: "refuses to claim while a live peer reports it up with an unknown status", view: base(inst("n2", Started, status.Undef))},
		decideCase{name: "refuses to claim while an unknown peer's last report has it up", view: base(nodeState("n2", NodeUnknown), running("n2"))},
		decideCase{name: "releases its claim while an unknown peer's last report has it up", view: base(nodeState("n2", NodeUnknown), running("n2"), claimed("n1", time.Hour)), want: []string{"release"}},
		decideCase{name: "refuses to claim while a peer missing from the node list reports it up", view: base(dropNode("n2"), running("n2"))},
	)
	runCases(t, cases)
}

func TestDecide_UpOnTwoNodes(t *testing.T) {
	runCases(t, []decideCase{
		{name: "warns and stops nothing when up on two live nodes (one of them local)", view: base(running("n1"), running("n2")), want: []string{"warn"}},
		{name: "warns on a node that runs neither instance", view: base(local("n3"), running("n1"), running("n2")), want: []string{"warn"}},
		{name: "warns when one instance is up and the other warn", view: base(running("n1"), inst("n2", Started, status.Warn)), want: []string{"warn"}},
		{name: "warns when a joining peer also has it up", view: base(running("n1"), nodeState("n2", NodeJoining), running("n2")), want: []string{"warn"}},
		{name: "warns rather than stopping on the operator's stop", view: base(expect(ExpectStopped), running("n1"), running("n2")), want: []string{"warn"}},
		{name: "warns rather than stopping for a move to another node", view: base(target("n3"), running("n1"), running("n2")), want: []string{"warn"}},
		{name: "warns rather than starting a claim past its window", view: base(local("n3"), claimed("n3", time.Hour), running("n1"), running("n2")), want: []string{"warn"}},
		{name: "does not warn when the second up report comes from a lost node (fences it instead)", view: base(running("n1"), nodeState("n2", NodeLost), running("n2")), want: []string{"fence n2"}},
		{name: "does not warn for up on one node and starting on another", view: base(running("n1"), inst("n2", Starting, status.Down))},
	})
}

func TestDecide_PeerLost(t *testing.T) {
	lostN1 := func(mods ...mod) View {
		return base(append([]mod{local("n2"), nodeState("n1", NodeLost), running("n1")}, mods...)...)
	}
	runCases(t, []decideCase{
		{name: "leader fences the lost peer that ran it before anything else", view: lostN1(), want: []string{"fence n1"}},
		{name: "leader does not start a claim past its window before the fence is confirmed", view: lostN1(claimed("n2", time.Hour)), want: []string{"fence n1"}},
		{name: "leader claims once the lost peer is fenced", view: lostN1(fenced("n1")), want: []string{"claim"}},
		{name: "leader holds its claim inside the window after the fence", view: lostN1(fenced("n1"), claimed("n2", time.Second))},
		{name: "leader starts after the window once the lost peer is fenced", view: lostN1(fenced("n1"), claimed("n2", window)), want: []string{"start"}},
		{name: "non-leader does not fence the lost peer", view: lostN1(local("n3"))},
		{name: "non-leader does nothing once the lost peer is fenced", view: lostN1(local("n3"), fenced("n1"))},
		{name: "next leader fences when the second node cannot lead", view: lostN1(local("n3"), frozenNode("n2")), want: []string{"fence n1"}},
		{name: "fences a lost peer that was starting it", view: lostN1(inst("n1", Starting, status.Down)), want: []string{"fence n1"}},
		{name: "fences a lost peer that was stopping it", view: lostN1(inst("n1", Stopping, status.Down)), want: []string{"fence n1"}},
		{name: "fences a lost peer that had claimed it", view: lostN1(claimed("n1", time.Second)), want: []string{"fence n1"}},
		{name: "fences a lost peer that reported it warn", view: lostN1(inst("n1", Started, status.Warn)), want: []string{"fence n1"}},
		{name: "fences a lost peer outside the service's nodes that ran it",
			view: base(addNode("n4"), local("n1"), nodeState("n4", NodeLost), running("n4")), want: []string{"fence n4"}},
		{name: "fences each lost peer that ran it, one at a time",
			view: base(local("n3"), nodeState("n1", NodeLost), nodeState("n2", NodeLost), running("n1"), running("n2")), want: []string{"fence n1"}},
		{name: "fences the second lost peer once the first is fenced",
			view: base(local("n3"), nodeState("n1", NodeLost), nodeState("n2", NodeLost), running("n1"), running("n2"), fenced("n1")), want: []string{"fence n2"}},
		{name: "claims and starts at once when both lost peers are fenced (nobody else can claim)",
			view: base(local("n3"), nodeState("n1", NodeLost), nodeState("n2", NodeLost), running("n1"), running("n2"), fenced("n1"), fenced("n2")), want: []string{"claim", "start"}},
		{name: "claims without fencing a lost node that has no stonith", view: lostN1(noStonith("n1")), want: []string{"claim"}},
		{name: "starts after the window without fencing a lost node that has no stonith", view: lostN1(noStonith("n1"), claimed("n2", window)), want: []string{"start"}},
		{name: "claims without fencing when the service sets stonith=false", view: lostN1(svc(func(s *Service) { s.Stonith = false })), want: []string{"claim"}},
		{name: "does not take over with orchestrate=start", view: lostN1(orchestrate("start"))},
		{name: "does not take over with orchestrate=start even once fenced", view: lostN1(orchestrate("start"), fenced("n1"))},
		{name: "does not fence with orchestrate=start", view: lostN1(orchestrate("start"), claimed("n2", time.Hour))},
		{name: "fences a lost peer whose last report had it idle: it may have started it since", view: base(local("n2"), nodeState("n1", NodeLost)), want: []string{"fence n1"}},
		{name: "fences a lost peer whose last report had it stopped", view: base(local("n2"), nodeState("n1", NodeLost), inst("n1", Stopped, status.Down)), want: []string{"fence n1"}},
		{name: "claims when the lost peer whose last report had it stopped is fenced", view: base(local("n2"), nodeState("n1", NodeLost), inst("n1", Stopped, status.Down), fenced("n1")), want: []string{"claim"}},
		{name: "does not fence a lost peer when a live peer already runs it", view: lostN1(local("n3"), running("n2"))},
		{name: "does not fence on a frozen service", view: lostN1(expect(ExpectFrozen))},
		{name: "does not fence from a frozen node", view: lostN1(frozenNode("n2"))},
		{name: "does not take over when the service was stopped by the operator", view: lostN1(expect(ExpectStopped), fenced("n1"))},
	})
}

func TestDecide_NoFailback(t *testing.T) {
	runCases(t, []decideCase{
		{name: "first node back ready leaves the service up on the second", view: base(running("n2"))},
		{name: "first node back after a fence leaves the service up on the second", view: base(running("n2"), inst("n1", Stopped, status.Down))},
		{name: "first node back while the second is still starting it does nothing", view: base(inst("n2", Starting, status.Down))},
		{name: "the second node keeps running it when the first comes back", view: base(local("n2"), running("n2"))},
	})
}

func TestDecide_Operator(t *testing.T) {
	runCases(t, []decideCase{
		// stop: cluster-wide, left alone until started again.
		{name: "stop: the local running instance stops", view: base(expect(ExpectStopped), running("n1")), want: []string{"stop"}},
		{name: "stop: the local starting instance stops", view: base(expect(ExpectStopped), inst("n1", Starting, status.Down)), want: []string{"stop"}},
		{name: "stop: the local warn instance stops", view: base(expect(ExpectStopped), inst("n1", Started, status.Warn)), want: []string{"stop"}},
		{name: "stop: a stopping instance is not stopped twice", view: base(expect(ExpectStopped), inst("n1", Stopping, status.Up))},
		{name: "stop: other nodes do nothing", view: base(local("n2"), expect(ExpectStopped), running("n1"))},
		{name: "stop: the leader does not start it when down everywhere", view: base(expect(ExpectStopped))},
		{name: "stop: a claim past its window is not started", view: base(expect(ExpectStopped), claimed("n1", time.Hour)), want: []string{"stop"}},
		// freeze: left alone as it is.
		{name: "freeze: a running instance is left alone", view: base(expect(ExpectFrozen), running("n1"))},
		{name: "freeze: the leader does not claim it when down everywhere", view: base(expect(ExpectFrozen))},
		{name: "freeze: a claim past its window is not started", view: base(expect(ExpectFrozen), claimed("n1", time.Hour))},
		{name: "freeze: a move is not carried out", view: base(expect(ExpectFrozen), target("n2"), running("n1"))},
		// switch --to n2 / takeover from n2 / giveback to n1.
		{name: "switch: the owner stops when the target is ready", view: base(target("n2"), running("n1")), want: []string{"stop"}},
		{name: "switch: an owner that is starting stops when the target is ready", view: base(target("n2"), inst("n1", Starting, status.Down)), want: []string{"stop"}},
		{name: "switch: an owner already stopping is not stopped twice", view: base(target("n2"), inst("n1", Stopping, status.Up))},
		{name: "switch: the target waits while the owner runs it", view: base(local("n2"), target("n2"), running("n1"))},
		{name: "switch: the target waits while the owner stops it", view: base(local("n2"), target("n2"), inst("n1", Stopping, status.Down))},
		{name: "switch: the target claims once it is down everywhere", view: base(local("n2"), target("n2"), inst("n1", Stopped, status.Down)), want: []string{"claim"}},
		{name: "switch: the target starts after the window", view: base(local("n2"), target("n2"), inst("n1", Stopped, status.Down), claimed("n2", window)), want: []string{"start"}},
		{name: "switch: the first node in order does not claim against the target", view: base(target("n2"), inst("n1", Stopped, status.Down))},
		{name: "switch: a non-target node never claims", view: base(local("n3"), target("n2"))},
		{name: "switch: a non-target node releases its claim", view: base(target("n2"), claimed("n1", window)), want: []string{"release"}},
		{name: "switch: the owner keeps it while the target is joining", view: base(target("n2"), nodeState("n2", NodeJoining), running("n1"))},
		{name: "switch: the owner keeps it while the target is lost (and fences it)", view: base(target("n2"), nodeState("n2", NodeLost), running("n1")), want: []string{"fence n2"}},
		{name: "switch: the owner keeps it while the target is unknown", view: base(target("n2"), nodeState("n2", NodeUnknown), running("n1"))},
		{name: "switch: the owner keeps it when the target is not a cluster node", view: base(target("n9"), running("n1"))},
		{name: "switch: the owner keeps it while the target is frozen", view: base(target("n2"), frozenNode("n2"), running("n1"))},
		{name: "switch: the owner keeps it while the target's instance failed", view: base(target("n2"), inst("n2", Failed, status.Down), running("n1"))},
		{name: "switch: a frozen owner does not stop", view: base(target("n2"), frozenNode("n1"), running("n1"))},
		{name: "switch: the target that already runs it does nothing", view: base(local("n2"), target("n2"), running("n2"))},
		{name: "switch: the former owner does nothing once the target runs it", view: base(target("n2"), running("n2"), inst("n1", Stopped, status.Down))},
		{name: "takeover: the local target waits for the owner to stop", view: base(local("n3"), target("n3"), running("n1"))},
		{name: "takeover: the owner stops for the target", view: base(target("n3"), running("n1")), want: []string{"stop"}},
		{name: "takeover: the target fences a lost owner before claiming", view: base(local("n3"), target("n3"), nodeState("n1", NodeLost), running("n1")), want: []string{"fence n1"}},
		{name: "takeover: the target claims once the lost owner is fenced", view: base(local("n3"), target("n3"), nodeState("n1", NodeLost), running("n1"), fenced("n1")), want: []string{"claim"}},
		{name: "giveback: the owner stops for the first node", view: base(local("n2"), target("n1"), running("n2")), want: []string{"stop"}},
		{name: "giveback: the first node claims once it is down everywhere", view: base(target("n1"), inst("n2", Stopped, status.Down)), want: []string{"claim"}},
		{name: "giveback: the former owner does not claim back", view: base(local("n2"), target("n1"), inst("n2", Stopped, status.Down))},
	})
}

func TestDecide_FrozenNode(t *testing.T) {
	runCases(t, []decideCase{
		{name: "a frozen local node that leads does not claim", view: base(frozenNode("n1"))},
		{name: "a frozen local node releases its claim instead of starting", view: base(frozenNode("n1"), claimed("n1", time.Hour)), want: []string{"release"}},
		{name: "a frozen local node running it does nothing", view: base(frozenNode("n1"), running("n1"))},
		{name: "a frozen local node does not fence a lost owner", view: base(frozenNode("n1"), nodeState("n2", NodeLost), running("n2"))},
		{name: "a frozen local node still warns about a double start", view: base(frozenNode("n1"), running("n1"), running("n2")), want: []string{"warn"}},
	})
}

func TestDecide_MonitorVerdict(t *testing.T) {
	runCases(t, []decideCase{
		{name: "a failed local instance is not a candidate", view: base(inst("n1", Failed, status.Down))},
		{name: "the next node leads when the first node's instance failed", view: base(local("n2"), inst("n1", Failed, status.Down)), want: []string{"claim"}},
		{name: "the next node starts after the window when the first failed", view: base(local("n2"), inst("n1", Failed, status.Down), claimed("n2", window)), want: []string{"start"}},
		{name: "a start-failed local instance is not a candidate", view: base(inst("n1", StartFailed, status.Down))},
		{name: "a failed instance whose resources are still up blocks the start elsewhere", view: base(local("n2"), inst("n1", Failed, status.Up))},
		{name: "a failed local instance does nothing while the next node's claim stands", view: base(inst("n1", Failed, status.Down), claimed("n2", time.Second))},
		{name: "the next node leads with orchestrate=start too", view: base(local("n2"), orchestrate("start"), inst("n1", Failed, status.Down)), want: []string{"claim"}},
	})
}

func TestDecide_ServicesAreIndependent(t *testing.T) {
	v := base(running("n2"))
	other := Service{
		Name: "other", Orchestrate: "ha", Nodes: []string{"n1", "n2"}, Stonith: true,
		Instances: map[string]Instance{"n1": {State: Ready, Avail: status.Down, Since: t0.Add(-time.Hour)}},
	}
	v.Services = append(v.Services, other)
	got := Decide(v)
	if len(got) != 1 || got[0].Kind != Start || got[0].Service != "other" {
		t.Fatalf("Decide = %v, want only start other", got)
	}
}

// randomView draws a view over up to four nodes and two services, biased
// towards claims past their window so that Start shows up often.
func randomView(r *rand.Rand) View {
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	names := []string{"n1", "n2", "n3", "n4"}[:2+r.Intn(3)]
	v := View{
		Local:       names[r.Intn(len(names))],
		Now:         t0,
		Nodes:       map[string]Node{},
		Quorum:      r.Intn(10) > 0,
		ReadyWindow: window,
	}
	for _, n := range names {
		st := NodeState(pick("ready", "ready", "ready", "joining", "lost", "lost", "unknown"))
		heard := t0
		if r.Intn(6) == 0 {
			heard = t0.Add(-time.Hour)
		}
		v.Nodes[n] = Node{Name: n, State: st, Frozen: r.Intn(8) == 0, Fenced: r.Intn(2) == 0, Stonith: r.Intn(4) > 0, HeardAt: heard}
	}
	if r.Intn(3) > 0 {
		nd := v.Nodes[v.Local]
		nd.State = NodeReady
		v.Nodes[v.Local] = nd
	}
	states := []InstanceState{Idle, Idle, Ready, Ready, Starting, Started, Started, StartFailed, Stopping, Stopped, Stopped, StopFailed, Failed, Interrupted}
	avails := status.All()
	for i := range 1 + r.Intn(2) {
		s := Service{
			Name:        fmt.Sprintf("svc%d", i),
			Orchestrate: pick("ha", "ha", "start", "no"),
			Nodes:       slices.Clone(names),
			Stonith:     r.Intn(4) > 0,
			Expect:      Expectation(pick("", "", "", "stopped", "frozen")),
			Instances:   map[string]Instance{},
		}
		r.Shuffle(len(s.Nodes), func(a, b int) { s.Nodes[a], s.Nodes[b] = s.Nodes[b], s.Nodes[a] })
		if r.Intn(4) == 0 {
			s.Target = pick(append(slices.Clone(names), "n9")...)
		}
		for _, n := range names {
			if r.Intn(8) == 0 {
				continue // not reported yet
			}
			a := status.Down
			if r.Intn(3) == 0 {
				a = avails[r.Intn(len(avails))]
			}
			s.Instances[n] = Instance{
				State:      states[r.Intn(len(states))],
				Avail:      a,
				Unreadable: r.Intn(10) == 0,
				Since:      t0.Add(-time.Duration(r.Intn(int(2*window/time.Millisecond))) * time.Millisecond),
			}
		}
		if r.Intn(2) == 0 {
			mine := s.Instances[v.Local]
			mine.State = Ready
			s.Instances[v.Local] = mine
		}
		v.Services = append(v.Services, s)
	}
	return v
}

func describe(v View) string {
	var b strings.Builder
	fmt.Fprintf(&b, "local=%s quorum=%v\n", v.Local, v.Quorum)
	for _, n := range slices.Sorted(maps.Keys(v.Nodes)) {
		fmt.Fprintf(&b, "  node %+v\n", v.Nodes[n])
	}
	for _, s := range v.Services {
		fmt.Fprintf(&b, "  svc %s orchestrate=%s nodes=%v stonith=%v expect=%q target=%q\n", s.Name, s.Orchestrate, s.Nodes, s.Stonith, s.Expect, s.Target)
		for _, n := range sortedKeys(s.Instances) {
			i := s.Instances[n]
			fmt.Fprintf(&b, "    %s: %s %s since %v\n", n, i.State, i.Avail, v.Now.Sub(i.Since))
		}
	}
	return b.String()
}

func TestDecide_NeverStartsUnsafely(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	var starts, fences int
	for range 5000 {
		v := randomView(r)
		got := Decide(v)
		if again := Decide(v); !slices.Equal(got, again) {
			t.Fatalf("Decide is not deterministic: %v then %v\n%s", got, again, describe(v))
		}
		last := map[string]Kind{}
		for _, a := range got {
			// One action per service, but for a claim followed by its
			// start when no other node can claim, and the fences of lost
			// peers that threaten what runs here.
			if a.Kind == Fence {
				fences++
				if st := v.Nodes[a.Node].State; st != NodeLost && st != NodeUnknown || a.Node == v.Local {
					t.Fatalf("fence of %s, which is neither a lost nor a never-heard peer: %v\n%s", a.Node, a, describe(v))
				}
				continue
			}
			if prev, ok := last[a.Service]; ok && (prev != Claim || a.Kind != Start) {
				t.Fatalf("more than one action for %s: %v\n%s", a.Service, got, describe(v))
			}
			last[a.Service] = a.Kind
			var s Service
			for _, x := range v.Services {
				if x.Name == a.Service {
					s = x
				}
			}
			switch a.Kind {
			case Start:
				starts++
				for n, inst := range s.Instances {
					if n == v.Local {
						continue
					}
					node := v.Nodes[n]
					switch node.State {
					case NodeReady, NodeJoining:
						if inst.Avail == status.Up || inst.Avail == status.Warn ||
							inst.State == Ready || inst.State == Starting || inst.State == Stopping {
							t.Fatalf("start of %s while live peer %s reports %s/%s\n%s", s.Name, n, inst.State, inst.Avail, describe(v))
						}
					case NodeLost:
						if inst.active() && node.Stonith && s.Stonith && !node.Fenced {
							t.Fatalf("start of %s while lost peer %s, which had it %s/%s, is not fenced\n%s", s.Name, n, inst.State, inst.Avail, describe(v))
						}
					}
					if inst.Unreadable && node.State != NodeLost {
						t.Fatalf("start of %s while peer %s's status cannot be read\n%s", s.Name, n, describe(v))
					}
				}
				for _, n := range s.Nodes {
					if node, ok := v.Nodes[n]; ok && n != v.Local && node.State == NodeUnknown && !node.Fenced {
						t.Fatalf("start of %s while its node %s was never heard and is not fenced\n%s", s.Name, n, describe(v))
					}
					if node, ok := v.Nodes[n]; ok && n != v.Local && node.State == NodeLost && !node.Fenced && node.Stonith && s.Stonith {
						t.Fatalf("start of %s while its node %s is lost and not fenced\n%s", s.Name, n, describe(v))
					}
				}
				if err := Admit(v, s); err != nil && !slices.ContainsFunc(got, func(c Action) bool { return c.Service == a.Service && c.Kind == Claim }) {
					t.Fatalf("the orchestrator starts %s where an operator's start is refused (%v)\n%s", s.Name, err, describe(v))
				}
				if s.Orchestrate != "ha" && s.Orchestrate != "start" || s.Expect != ExpectAuto || v.Nodes[v.Local].Frozen {
					t.Fatalf("start of %s that must be left alone\n%s", s.Name, describe(v))
				}
				// The window is waited only when another node could be
				// claiming too; with nobody else, the claim comes with
				// its start.
				mine := s.Instances[v.Local]
				claimedNow := slices.ContainsFunc(got, func(c Action) bool { return c.Service == a.Service && c.Kind == Claim })
				if !claimedNow && mine.State != Ready || othersMayClaim(v) && (claimedNow || v.Now.Sub(mine.Since) < v.ReadyWindow) {
					t.Fatalf("start of %s without a claim past the window\n%s", s.Name, describe(v))
				}
				for n, node := range v.Nodes {
					if n != v.Local && (node.State == NodeReady || node.State == NodeJoining) && !node.HeardAt.After(mine.Since) && !claimedNow {
						t.Fatalf("start of %s while %s has not been heard since the claim\n%s", s.Name, n, describe(v))
					}
				}
			}
		}
	}
	if starts == 0 || fences == 0 {
		t.Fatalf("the random views never reached a start (%d) or a fence (%d): the property is vacuous", starts, fences)
	}
	t.Logf("%d starts, %d fences checked", starts, fences)
}

func TestDecide_ReadyWindowOnlyWhenAnotherNodeCouldClaim(t *testing.T) {
	runCases(t, []decideCase{
		{name: "starts at once after its claim when every other node is lost and fenced",
			view: base(local("n2"), nodeState("n1", NodeLost), fenced("n1"), running("n1"), nodeState("n3", NodeLost), fenced("n3"), claimed("n2", 0)),
			want: []string{"start"}},
		{name: "waits the window while another node is ready",
			view: base(local("n2"), nodeState("n1", NodeLost), fenced("n1"), running("n1"), claimed("n2", 0))},
	})
}

func unknownInst(n string) mod {
	return func(v *View) {
		i := v.Services[0].Instances[n]
		i.Unknown = true
		v.Services[0].Instances[n] = i
	}
}

func TestDecide_NotYetEvaluatedInstances(t *testing.T) {
	runCases(t, []decideCase{
		{name: "refuses to claim while a peer (a daemon just restarted) has not evaluated it yet",
			view: base(nodeState("n1", NodeJoining), local("n2"), unknownInst("n1"))},
		{name: "a local instance not evaluated yet decides nothing", view: base(unknownInst("n1"))},
	})
}
