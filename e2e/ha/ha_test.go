package ha

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// The active node powered off, with fence_ipmilan (through the fence
// agent plugin) as the STONITH method: the peer fences it, once, and only
// then starts both services.
func TestFailover_PowerOffFencedFirstWithFenceAgent(t *testing.T) {
	l := newLab(t, labtest.Options{Prefix: "hf", Nodes: 2, Stonith: "fence_agent"})

	off := l.LogSize("n2")
	l.MustLab("poweroff", "n1")
	t0 := time.Now()
	l.waitStarted("n2", off)
	lines := l.logSince("n2", off)
	fenced := find(lines, reFenced("n1"))
	if fenced < 0 {
		t.Fatalf("n2 started the services without a \"node fenced\" line for n1 in its log")
	}
	if !strings.Contains(lines[fenced].text, "fence_ipmilan") {
		t.Errorf("the fence did not go through fence_ipmilan: %s", lines[fenced].text)
	}
	if n := count(lines, reFenced("n1")); n != 1 {
		t.Errorf("n1 fenced %d times, want once", n)
	}
	for _, svc := range labtest.SeedServices {
		up := find(lines, reStarted(svc))
		if up < 0 || up < fenced {
			t.Errorf("%s started on n2 at log line %d, before n1 was fenced (line %d)", svc, up, fenced)
		}
		if n := count(lines, reStarted(svc)); n != 1 {
			t.Errorf("%s started %d times on n2, want once", svc, n)
		}
	}
	if l.mounted("n2", labtest.RegistryMount) != true {
		t.Errorf("%s is not mounted on n2", labtest.RegistryMount)
	}
	t.Logf("n1 powered off: lost after %s, fenced with fence_ipmilan after %s, registry up on n2 after %s, busybox after %s",
		secsAfter(lines, find(lines, rePeerLost), t0), secsAfter(lines, fenced, t0),
		secsAfter(lines, find(lines, reStarted(labtest.Registry)), t0), secsAfter(lines, find(lines, reStarted(labtest.Busybox)), t0))
	t.Logf("n2: %s", lines[fenced].text)
}

// n1 unreachable but still running, its BMC ignoring power changes: n2
// fails to fence it, again and again, and starts nothing (the filesystems
// stay mounted on n1 alone); once the BMC works, the next attempt powers
// n1 off and n2 takes over.
func TestFailover_FailedFenceBlocksTakeoverUntilFencingWorks(t *testing.T) {
	l := newLab(t, labtest.Options{Prefix: "hb", Nodes: 2})

	l.MustLab("bmc", "n1", "--fail", "on")
	off := l.LogSize("n2")
	l.MustLab("cut", "n1", "--link", "all")
	t0 := time.Now()

	// Blocked: at least two failed attempts and 10 s, all the while
	// nothing started on n2 and the registry's filesystem mounted on n1
	// only.
	const blockedFor = 10 * time.Second
	checks := 0
	l.WaitFor("n2 to fail to fence n1 twice", labtest.FailoverTimeout, func() (bool, string) {
		if inst := l.Instance("n2", "n2", labtest.Registry); inst != nil {
			if inst.Status.Avail == status.Up || inst.State == string(orchestrator.Starting) || inst.State == string(orchestrator.Started) {
				t.Fatalf("registry %s (state %s) on n2 while n1 is not fenced", inst.Status.Avail, inst.State)
			}
		}
		if l.mounted("n2", labtest.RegistryMount) {
			t.Fatalf("%s mounted on n2 while n1 is not fenced", labtest.RegistryMount)
		}
		if !l.mounted("n1", labtest.RegistryMount) {
			t.Fatalf("%s no longer mounted on n1: n1 was not fenced and must keep its services", labtest.RegistryMount)
		}
		checks++
		lines := l.logSince("n2", off)
		if find(lines, reStarted(labtest.Registry)) >= 0 {
			t.Fatalf("n2 started the registry while n1 is not fenced")
		}
		n := count(lines, reFenceFailed("n1"))
		return n >= 2 && time.Since(t0) >= blockedFor, "fencing failed " + itoa(n) + " times so far"
	})
	lines := l.logSince("n2", off)
	failed := count(lines, reFenceFailed("n1"))
	if find(lines, reFenced("n1")) >= 0 {
		t.Fatalf("n2 says n1 was fenced while its BMC ignores power changes")
	}
	if p := l.LabNode("n1").Power; p != "on" {
		t.Fatalf("n1's BMC says power %s, want on (a failing BMC)", p)
	}
	t.Logf("blocked for %s: n2 failed to fence n1 %d times (%d checks: never started on n2, %s mounted on n1 only)",
		time.Since(t0).Round(time.Millisecond), failed, checks, labtest.RegistryMount)
	t.Logf("n2: %s", lines[find(lines, reFenceFailed("n1"))].text)

	l.MustLab("bmc", "n1", "--fail", "off")
	t1 := time.Now()
	l.waitStarted("n2", off)
	lines = l.logSince("n2", off)
	fenced := find(lines, reFenced("n1"))
	up := find(lines, reStarted(labtest.Registry))
	if fenced < 0 || up < fenced {
		t.Fatalf("registry started on n2 (log line %d) before n1 was fenced (line %d)", up, fenced)
	}
	if p := l.LabNode("n1").Power; p != "off" {
		t.Errorf("after the takeover n1's BMC says power %s, want off", p)
	}
	t.Logf("BMC working again: n1 fenced %s later, registry up on n2 %s later",
		secsAfter(lines, fenced, t1), secsAfter(lines, up, t1))

	// Back to a whole cluster: n1 rejoins and leaves the services on n2.
	l.MustLab("heal", "n1")
	l.MustLab("poweron", "n1")
	l.WaitFor("n1 ready in n2's view", labtest.RejoinTimeout, func() (bool, string) {
		st := l.NodeState("n2", "n1")
		return st == cluster.Ready, "n1 is " + string(st)
	})
	if got := l.Avail("n2", "n2", labtest.Registry); got != status.Up.String() {
		t.Errorf("after n1's return the registry is %s on n2", got)
	}
}

// switch, takeover, freeze and thaw through the nodes' APIs; a frozen
// service is not failed over when its node is powered off, and is once
// thawed.
func TestOperatorActions_SwitchTakeoverFreezeThaw(t *testing.T) {
	l := newLab(t, labtest.Options{Prefix: "ho", Nodes: 2})

	begin := time.Now()
	if err := l.Action("n1", labtest.Registry, api.ActionRequest{Action: "switch", To: "n2", Wait: true}, labtest.FailoverTimeout); err != nil {
		t.Fatalf("switch --to n2: %v", err)
	}
	l.WaitAvail("n1", "n1", labtest.Registry, status.Down, labtest.FailoverTimeout)
	if got := l.Avail("n2", "n2", labtest.Registry); got != status.Up.String() {
		t.Fatalf("after switch --to n2 the registry is %s on n2", got)
	}
	if l.mounted("n1", labtest.RegistryMount) {
		t.Errorf("%s still mounted on n1 after the switch", labtest.RegistryMount)
	}
	if got := l.Avail("n1", "n1", labtest.Busybox); got != status.Up.String() {
		t.Errorf("busybox is %s on n1 after the registry's switch: it must stay", got)
	}
	t.Logf("switch --to n2: registry up on n2 in %s", time.Since(begin).Round(time.Millisecond))

	begin = time.Now()
	if err := l.Action("n1", labtest.Registry, api.ActionRequest{Action: "takeover", Wait: true}, labtest.FailoverTimeout); err != nil {
		t.Fatalf("takeover on n1: %v", err)
	}
	l.WaitAvail("n2", "n2", labtest.Registry, status.Down, labtest.FailoverTimeout)
	if got := l.Avail("n1", "n1", labtest.Registry); got != status.Up.String() {
		t.Fatalf("after takeover the registry is %s on n1", got)
	}
	if l.mounted("n2", labtest.RegistryMount) {
		t.Errorf("%s still mounted on n2 after the takeover", labtest.RegistryMount)
	}
	t.Logf("takeover on n1: registry back on n1 in %s", time.Since(begin).Round(time.Millisecond))

	for _, svc := range labtest.SeedServices {
		if err := l.Action("n1", svc, api.ActionRequest{Action: "freeze"}, 30*time.Second); err != nil {
			t.Fatalf("freeze %s: %v", svc, err)
		}
	}
	l.WaitFor("both services frozen in n2's own instances", 30*time.Second, func() (bool, string) {
		for _, svc := range labtest.SeedServices {
			if inst := l.Instance("n2", "n2", svc); inst == nil || !inst.Frozen {
				return false, svc + " not frozen on n2"
			}
		}
		return true, ""
	})
	err := l.Action("n2", labtest.Registry, api.ActionRequest{Action: "takeover"}, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Errorf("takeover of a frozen service: %v, want a refusal saying frozen", err)
	} else {
		t.Logf("takeover while frozen refused: %v", err)
	}

	off := l.LogSize("n2")
	l.MustLab("poweroff", "n1")
	t0 := time.Now()
	l.WaitFor("n2 to see n1 lost", 30*time.Second, func() (bool, string) {
		st := l.NodeState("n2", "n1")
		return st == cluster.Lost, "n1 is " + string(st)
	})
	// Frozen: nothing moves, however long n1 stays away.
	const frozenFor = 10 * time.Second
	for time.Since(t0) < frozenFor {
		for _, svc := range labtest.SeedServices {
			if inst := l.Instance("n2", "n2", svc); inst != nil && (inst.Status.Avail == status.Up || inst.State == string(orchestrator.Starting)) {
				t.Fatalf("%s %s (state %s) on n2 while frozen", svc, inst.Status.Avail, inst.State)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	lines := l.logSince("n2", off)
	for _, svc := range labtest.SeedServices {
		if find(lines, reStarted(svc)) >= 0 {
			t.Fatalf("n2 started %s while it was frozen", svc)
		}
	}
	t.Logf("frozen, owner powered off: nothing started on n2 in %s (n2 fenced n1 meanwhile: %v)",
		frozenFor, find(lines, reFenced("n1")) >= 0)

	t1 := time.Now()
	for _, svc := range labtest.SeedServices {
		if err := l.Action("n2", svc, api.ActionRequest{Action: "thaw"}, 30*time.Second); err != nil {
			t.Fatalf("thaw %s on n2: %v", svc, err)
		}
	}
	l.waitStarted("n2", off)
	lines = l.logSince("n2", off)
	fenced, up := find(lines, reFenced("n1")), find(lines, reStarted(labtest.Registry))
	if fenced < 0 || up < fenced {
		t.Errorf("registry started on n2 (log line %d) without n1 fenced first (line %d)", up, fenced)
	}
	t.Logf("thawed: registry up on n2 %s after the thaw", secsAfter(lines, up, t1))

	// n1 comes back: the services stay on n2. The takeover above named n1
	// as the registry's target; the failover since must not be undone by
	// it (no automatic failback).
	t.Run("NoFailbackToAnEarlierTarget", func(t *testing.T) {
		l := l.with(t)
		back := l.LogSize("n2")
		l.MustLab("poweron", "n1")
		l.WaitFor("n1 ready in n2's view", labtest.RejoinTimeout, func() (bool, string) {
			st := l.NodeState("n2", "n1")
			return st == cluster.Ready, "n1 is " + string(st)
		})
		const settle = 10 * time.Second
		for t2 := time.Now(); time.Since(t2) < settle; time.Sleep(200 * time.Millisecond) {
			for _, svc := range labtest.SeedServices {
				if got := l.Avail("n2", "n2", svc); got != status.Up.String() {
					lines := l.logSince("n2", back)
					t.Fatalf("%s %s on n2 after n1's return: failed back (n2: %s)", svc, got, lastMatch(lines, regexpLiteral("orchestrated stop")))
				}
			}
		}
		t.Logf("n1 back and ready: both services stay on n2 for %s", settle)
	})
}

// lastMatch is the text of the last line matching re ("" when none).
func lastMatch(lines []logLine, re *regexp.Regexp) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if re.MatchString(lines[i].text) {
			return lines[i].text
		}
	}
	return ""
}

// Three nodes, n1 (the owner) cut from the others and its BMC failing for
// a while: n1, the minority, loses quorum, orchestrates nothing and, with
// split_action = stop, stops its services; the majority starts nothing
// before it has fenced n1, then takes over on n2, the first candidate.
func TestQuorum_IsolatedMinorityStopsMajorityFencesThenTakesOver(t *testing.T) {
	l := newLab(t, labtest.Options{Prefix: "hq", Nodes: 3, SplitAction: "stop"})

	l.MustLab("bmc", "n1", "--fail", "on")
	offs := map[string]int64{}
	for _, n := range l.Nodes {
		offs[n] = l.LogSize(n)
	}
	l.MustLab("cut", "n1", "--link", "all")
	t0 := time.Now()

	// The minority: quorum lost, its services stopped.
	l.WaitFor("\"quorum lost\" in n1's log", 30*time.Second, func() (bool, string) {
		return find(l.logSince("n1", offs["n1"]), reQuorumLost) >= 0, "not yet"
	})
	for _, svc := range labtest.SeedServices {
		l.WaitAvail("n1", "n1", svc, status.Down, labtest.FailoverTimeout)
	}
	if l.mounted("n1", labtest.RegistryMount) {
		t.Errorf("%s still mounted on n1 after its services stopped", labtest.RegistryMount)
	}
	// The majority: still blocked on the fence, n2 and n3 with quorum.
	l.WaitFor("the majority to fail to fence n1", labtest.FailoverTimeout, func() (bool, string) {
		return count(l.logSince("n2", offs["n2"]), reFenceFailed("n1"))+count(l.logSince("n3", offs["n3"]), reFenceFailed("n1")) > 0, "no attempt yet"
	})
	for _, n := range []string{"n2", "n3"} {
		lines := l.logSince(n, offs[n])
		if find(lines, reQuorumLost) >= 0 {
			t.Errorf("%s, in the majority, logged quorum lost", n)
		}
		for _, svc := range labtest.SeedServices {
			if find(lines, reStarted(svc)) >= 0 {
				t.Fatalf("%s started %s before n1 was fenced", n, svc)
			}
		}
	}
	n1 := l.logSince("n1", offs["n1"])
	t.Logf("minority n1: quorum lost after %s, registry stopped after %s",
		secsAfter(n1, find(n1, reQuorumLost), t0), secsAfter(n1, find(n1, regexpStopped(labtest.Registry)), t0))
	// Orchestrating nothing: n1 neither fences nor claims anything.
	for _, re := range []string{"fencing failed", "node fenced", "claiming the start"} {
		if i := find(n1, regexpLiteral(re)); i >= 0 {
			t.Errorf("n1, without quorum, still orchestrates: %s", n1[i].text)
		}
	}

	l.MustLab("bmc", "n1", "--fail", "off")
	t1 := time.Now()
	l.waitStarted("n2", offs["n2"])
	n2 := l.logSince("n2", offs["n2"])
	fenced, up := find(n2, reFenced("n1")), find(n2, reStarted(labtest.Registry))
	n3 := l.logSince("n3", offs["n3"])
	if fenced < 0 && find(n3, reFenced("n1")) < 0 {
		t.Errorf("the registry is up on n2 and nobody fenced n1")
	}
	if fenced >= 0 && up < fenced {
		t.Errorf("registry started on n2 (log line %d) before n2 fenced n1 (line %d)", up, fenced)
	}
	for _, svc := range labtest.SeedServices {
		if got := l.Avail("n3", "n3", svc); got == status.Up.String() {
			t.Errorf("%s up on n3 too", svc)
		}
		if find(n3, reStarted(svc)) >= 0 {
			t.Errorf("n3 started %s: n2 is the first candidate", svc)
		}
	}
	if p := l.LabNode("n1").Power; p != "off" {
		t.Errorf("n1's BMC says power %s after the takeover, want off", p)
	}
	t.Logf("majority: fencing failed %d times on n2 and %d on n3 while n1's BMC failed; n1 fenced %s after it works again, registry up on n2 %s after",
		count(n2, reFenceFailed("n1")), count(n3, reFenceFailed("n1")), secsAfter(n2, fenced, t1), secsAfter(n2, up, t1))
}
