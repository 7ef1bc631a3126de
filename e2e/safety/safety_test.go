package safety

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// The registry's disks, as the lab names them.
var registryDisks = []string{"registry-root", "registry-docker", "registry-data"}

// Hole 1. A daemon restarted on a node cut from its peer must not start
// what the peer may run: n1 runs the registry; n1 is cut from the lab
// (both heartbeats, and it reaches no BMC), and n1's BMC is unreachable
// from n2 (an iptables rule in n2's namespace drops its answers); the
// registry's address has no ARP probe, so nothing but the orchestrator
// stands between n2 and a second start. n2's vigild is killed -9 and the
// lab's init restarts it: the new daemon never heard n1, fails to fence it
// and starts nothing, and the registry's filesystems are never mounted on
// n2. Once n1's BMC answers n2 again, n2 fences n1 and only then takes
// over.
//
// n1 is the node cut, not n2: with its own port down, n2 would reach no BMC
// at all, and n1, which reaches n2's, would fence n2 at once to defend its
// services.
func TestSafety_RestartedDaemonOnPartitionedNodeStartsNothing(t *testing.T) {
	l := newLab(t, "sr")
	l.configSet("n1", labtest.Registry, "ip#1.arp_probe=0")

	w := l.watch(registryDisks, []string{l.st.RegistryAddr()})
	block := l.blockBMC("n2", "n1")
	l.MustLab("cut", "n1", "--link", "all")
	l.WaitFor("n2 to see n1 lost", 30*time.Second, func() (bool, string) {
		st := l.NodeState("n2", "n1")
		return st == cluster.Lost, "n1 is " + string(st)
	})
	old := l.vigild("n2")
	if old == 0 {
		t.Fatal("no vigild on n2")
	}
	off := l.LogSize("n2")
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 n2's vigild %d: %v", old, err)
	}
	killed := time.Now()
	l.WaitFor("a new vigild on n2", 30*time.Second, func() (bool, string) {
		p := l.vigild("n2")
		return p != 0 && p != old, fmt.Sprintf("pid %d", p)
	})

	// The window: at least 20 s, and until the restarted daemon has
	// failed to fence n1 (its first attempt waits its delays: the power
	// status, the fence delay, then the power-off's timeout).
	const window = 20 * time.Second
	var states []string
	l.WaitFor("the restarted vigild on n2 to fail to fence n1, 20 s at least", 90*time.Second, func() (bool, string) {
		if inst := l.instance("n2", "n2", labtest.Registry); inst != nil {
			if inst.Status.Avail == status.Up || inst.Status.Avail == status.Warn || slices.Contains([]string{"ready", "starting", "started"}, inst.State) {
				t.Fatalf("registry %s/%s on n2 %s after its vigild restarted, n1 never fenced", inst.Status.Avail, inst.State, time.Since(killed).Round(time.Millisecond))
			}
		}
		if s := string(l.NodeState("n2", "n1")); len(states) == 0 || states[len(states)-1] != s {
			states = append(states, s)
		}
		lines := l.LogSince("n2", off)
		return time.Since(killed) >= window && first(lines, reFenceFailed("n1")) >= 0, fmt.Sprintf("%d fence failures logged", len(grep(lines, reFenceFailed("n1"))))
	})
	blocked := w.Samples()
	lines := l.LogSince("n2", off)
	t.Logf("n1 as the restarted n2 saw it: %s", strings.Join(states, " → "))
	t.Logf("n2, %s after the restart: %s", time.Since(killed).Round(time.Millisecond), grep(lines, reFenceFailed("n1"))[0])
	if got := grep(lines, regexp.MustCompile(`service=`+regexp.QuoteMeta(labtest.Registry)+`.*(claiming the start|orchestrated start)|(claiming the start|orchestrated start).*service=`+regexp.QuoteMeta(labtest.Registry))); len(got) > 0 {
		t.Errorf("the restarted n2 went for the registry's start while n1 was not fenced:\n%s", strings.Join(got, "\n"))
	}
	if got := grep(lines, reFenced("n1")); len(got) > 0 {
		t.Errorf("n2 says it fenced n1 while n1's BMC is unreachable from it:\n%s", strings.Join(got, "\n"))
	}
	onN1 := 0
	for _, s := range blocked {
		if on := s.nodesWith(nil); len(on) > 1 || len(on) == 1 && on[0] != "n1" {
			t.Fatalf("the registry's disks mounted outside n1 while n1 was not fenced: %s", s)
		}
		if len(s.mounts["n1"]) == len(registryDisks) {
			onN1++
		}
		if slices.Contains(s.addrs[l.st.RegistryAddr()], "n2") {
			t.Fatalf("n2 holds the registry's address while n1 was not fenced: %s", s)
		}
	}
	t.Logf("%d samples over the cut (every 50 ms, every mount namespace): the registry's disks never mounted on n2; all three on n1 in %d", len(blocked), onN1)
	if onN1 != len(blocked) {
		t.Errorf("the registry's disks were not all mounted on n1 in %d of %d samples: n1, cut but alive, must keep its services", len(blocked)-onN1, len(blocked))
	}

	// n1's BMC answers n2 again: n2 fences n1, then takes over.
	l.delRule(block)
	restored := time.Now()
	l.WaitAvail("n2", "n2", labtest.Registry, status.Up, labtest.FailoverTimeout)
	t.Logf("registry up on n2 %s after n1's BMC answers again", time.Since(restored).Round(time.Millisecond))
	lines = l.LogSince("n2", off)
	fenced, started := first(lines, reFenced("n1")), first(lines, reStarted(labtest.Registry))
	switch {
	case fenced < 0:
		t.Errorf("the registry is up on n2 and n2 never fenced n1:\n%s", tail(lines, 20))
	case started >= 0 && started < fenced:
		t.Errorf("n2 started the registry (line %d) before n1 was fenced (line %d)", started, fenced)
	default:
		t.Logf("n2: %s", lines[fenced])
	}
	if p := l.power("n1"); p != "off" {
		t.Errorf("n1's BMC says %s after n2 took over: n1 must be off", p)
	}
	for _, s := range w.Stop() {
		if len(s.nodesWith(nil)) > 1 {
			t.Errorf("the registry's disks mounted on two nodes at once: %s", s)
			break
		}
	}
}

// Hole 4. A split of the heartbeats alone (both BMCs reachable from both
// nodes): each side sees the other lost and can fence it. Exactly one node
// must be powered off, never both, and the survivor runs every service;
// when one node runs all the services, its side wins.
func TestSafety_HeartbeatOnlySplitFencesExactlyOneNode(t *testing.T) {
	l := newLab(t, "sh")

	t.Run("ServicesOnOneNode_ItsSideWins", func(t *testing.T) {
		l.T = t
		survivor, victim := l.split(t)
		if survivor != "n1" || victim != "n2" {
			t.Errorf("%s was fenced, %s survived: n1 runs both services and must win the split", victim, survivor)
		}
		l.rejoin(victim)
	})
	t.Run("ServicesOnBothNodes_ExactlyOneFenced", func(t *testing.T) {
		l.T = t
		l.action("n1", labtest.Busybox, api.ActionRequest{Action: "switch", To: "n2", Wait: true})
		l.WaitAvail("n2", "n2", labtest.Busybox, status.Up, labtest.FailoverTimeout)
		l.WaitAvail("n1", "n1", labtest.Registry, status.Up, labtest.FailoverTimeout)
		l.WaitAvail("n1", "n1", labtest.Busybox, status.Down, labtest.FailoverTimeout)
		t.Logf("registry on n1, busybox on n2")
		survivor, victim := l.split(t)
		t.Logf("%s survived, %s was fenced", survivor, victim)
	})
}

// split cuts the heartbeats between n1 and n2 (iptables in n1's namespace
// and n1's view of the heartbeat disk), waits until a node is powered off
// and then long enough for the other side's delayed fence to have gone
// off too, checks that exactly one node was fenced and that the survivor
// runs both services, and returns the survivor and the fenced node.
func (l *lab) split(t *testing.T) (survivor, victim string) {
	t.Helper()
	offs := map[string]int64{"n1": l.LogSize("n1"), "n2": l.LogSize("n2")}
	rules := l.cutHeartbeats("n1")
	cut := time.Now()
	l.WaitFor("a node powered off", 60*time.Second, func() (bool, string) {
		for _, n := range l.Nodes {
			if l.st.NodeInit(n) == nil {
				victim = n
				return true, ""
			}
		}
		return false, "both on"
	})
	t.Logf("%s powered off %s after the cut", victim, time.Since(cut).Round(time.Millisecond))
	survivor = peerOf(victim)
	// The loser's fence waits the priority delay (5 s) after its power
	// status: leave it time to fire, had it not died with its node.
	time.Sleep(12 * time.Second)
	powers := map[string]string{}
	for _, n := range l.Nodes {
		powers[n] = l.power(n)
	}
	if powers["n1"] != "on" && powers["n2"] != "on" {
		t.Fatalf("both nodes powered off by the split: n1 %s, n2 %s", powers["n1"], powers["n2"])
	}
	if powers[survivor] != "on" || powers[victim] != "off" {
		t.Errorf("after the split: n1 %s, n2 %s; want exactly %s off", powers["n1"], powers["n2"], victim)
	}
	lines := l.LogSince(survivor, offs[survivor])
	if i := first(lines, reFenced(victim)); i < 0 {
		t.Errorf("%s is off but %s's log has no \"node fenced\" line for it:\n%s", victim, survivor, tail(lines, 20))
	} else {
		t.Logf("%s: %s", survivor, lines[i])
	}
	if got := grep(l.LogSince(victim, offs[victim]), regexp.MustCompile(`waiting the fence delay|fencing failed|node fenced`)); len(got) > 0 {
		t.Logf("%s before it was powered off:\n%s", victim, strings.Join(got, "\n"))
	}
	for _, svc := range labtest.SeedServices {
		l.WaitAvail(survivor, survivor, svc, status.Up, labtest.FailoverTimeout)
	}
	t.Logf("%s runs both services %s after the cut", survivor, time.Since(cut).Round(time.Millisecond))
	if survivor == "n1" {
		for _, r := range rules {
			l.delRule(r)
		}
	}
	l.MustLab("heal", "n1")
	return survivor, victim
}

// rejoin powers a fenced node on and waits until both nodes see each
// other ready, the services left where they run.
func (l *lab) rejoin(node string) {
	l.T.Helper()
	l.MustLab("poweron", node)
	l.WaitReady(node, peerOf(node), labtest.RejoinTimeout)
	l.WaitReady(peerOf(node), node, labtest.RejoinTimeout)
}

// Hole 5. A service that opts out of fencing (stonith = false, orchestrate
// = ha) and its owner's daemon frozen (SIGSTOP to vigild and each of its
// plugin processes, heartbeats included; the services' own processes run
// on) past the heartbeat timeout: the peer takes the service over without
// fencing, as configured. When the
// owner's daemon resumes (SIGCONT), it must stop its own instance: the
// service ends up on one node only. The service is a floating address
// alone, without ARP probe (an address is the resource two nodes can hold
// at once in the lab, and its holders are read in each node's namespace);
// the seed's services are frozen, so that nothing else has n2 fence n1.
func TestSafety_ResumedOwnerWithoutFencingStopsItsInstance(t *testing.T) {
	l := newLab(t, "sf")
	for _, svc := range labtest.SeedServices {
		l.action("n1", svc, api.ActionRequest{Action: "freeze"})
	}
	l.WaitFor("the seed services frozen in n2's instances", 30*time.Second, func() (bool, string) {
		for _, svc := range labtest.SeedServices {
			if inst := l.instance("n2", "n2", svc); inst == nil || !inst.Frozen {
				return false, svc + " not frozen on n2"
			}
		}
		return true, ""
	})
	const svc = "unfenced"
	addr := l.st.Addr(60)
	conf := fmt.Sprintf(`# A floating address under orchestrate = ha without fencing.
[DEFAULT]
nodes = n1 n2
orchestrate = ha
stonith = false

[ip#1]
ipdev = eth0
ipname = %s
netmask = 24
arp_probe = 0
`, addr)
	for _, n := range l.Nodes {
		if err := os.WriteFile(filepath.Join(l.NodeDir(n), "etc", svc+".conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.WaitAvail("n1", "n1", svc, status.Up, labtest.StartTimeout)
	l.WaitAvail("n2", "n2", svc, status.Down, labtest.StartTimeout)
	w := l.watch(nil, []string{addr})

	vpid := l.vigild("n1")
	if vpid == 0 {
		t.Fatal("no vigild on n1")
	}
	kids := plugins(vpid)
	var names []string
	for _, p := range kids {
		names = append(names, fmt.Sprintf("%s %d", commOf(p), p))
	}
	off1, off2 := l.LogSize("n1"), l.LogSize("n2")
	frozen := append([]int{vpid}, kids...)
	if err := signal(frozen, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if resumed {
			return
		}
		resumed = true
		// The plugins first: a daemon resumed before its heartbeat
		// plugins would time its calls to them out.
		slices.Reverse(frozen)
		if err := signal(frozen, syscall.SIGCONT); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(resume)
	stoppedAt := time.Now()
	t.Logf("SIGSTOP to n1's vigild %d and its %d plugins: %s", vpid, len(kids), strings.Join(names, ", "))
	took := l.WaitAvail("n2", "n2", svc, status.Up, 60*time.Second)
	t.Logf("n2 took %s over %s after the freeze", svc, took.Round(time.Millisecond))
	// Frozen a while longer: the owner comes back well past the
	// timeout, to a cluster that moved on.
	time.Sleep(2 * time.Second)
	if s := w.Samples(); len(s) > 0 {
		t.Logf("while n1 was frozen: %s", s[len(s)-1])
	}
	resume()
	contAt := time.Now()
	t.Logf("SIGCONT after %s", contAt.Sub(stoppedAt).Round(time.Millisecond))

	var owner string
	took = l.WaitFor(svc+" on one node only after n1 resumed", 60*time.Second, func() (bool, string) {
		n, why := l.convergedOn(svc)
		if n == "" {
			return false, why
		}
		s := w.Samples()
		last := s[len(s)-1]
		if holders := last.addrs[addr]; len(holders) != 1 || holders[0] != n {
			return false, fmt.Sprintf("up on %s, address held by %v", n, holders)
		}
		owner = n
		return true, ""
	})
	t.Logf("%s on %s only, %s after SIGCONT", svc, owner, took.Round(time.Millisecond))
	if owner != "n2" {
		t.Errorf("%s ends up on %s: n2 took it over and n1, resumed, must stop its own instance", svc, owner)
	}
	// It stays so.
	time.Sleep(3 * time.Second)
	samples := w.Stop()
	for _, s := range samples {
		if s.at.After(contAt.Add(took)) && (len(s.addrs[addr]) != 1 || s.addrs[addr][0] != owner) {
			t.Errorf("the address is held by %v after the service converged on %s: %s", s.addrs[addr], owner, s)
			break
		}
	}
	if n, why := l.convergedOn(svc); n != owner {
		t.Errorf("3 s later %s no longer runs on %s only: %s", svc, owner, why)
	}
	lines1 := l.LogSince("n1", off1)
	if i := first(lines1, regexp.MustCompile(`went unheard longer than the heartbeat timeout`)); i < 0 {
		t.Errorf("n1's log does not say it went unheard:\n%s", tail(lines1, 20))
	} else {
		t.Logf("n1: %s", lines1[i])
	}
	if i := first(lines1, reOrchStop(svc)); i >= 0 {
		t.Logf("n1: %s", lines1[i])
	}
	if got := grep(l.LogSince("n2", off2), regexp.MustCompile(`node fenced|waiting the fence delay`)); len(got) > 0 {
		t.Errorf("n2 went for a fence of n1, though nothing of n1's needs one:\n%s", strings.Join(got, "\n"))
	}
	if l.st.NodeInit("n1") == nil {
		t.Errorf("n1 was powered off")
	}
}

// Hole 5, the configuration side: orchestrate = ha needs a fencing method
// for every node of the service, unless the service sets stonith = false
// itself. svcmgr validate, against a cluster.conf without a [stonith#n2]
// section, refuses the first and accepts the second (and both against a
// cluster.conf that fences every node).
func TestSafety_HAWithoutFencingForEveryNodeIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (cluster.conf's secret file must be root's)")
	}
	bin := suite.BinDir(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("cluster.secret", strings.Repeat("ab", 32)+"\n")
	write("bmc.pass", "secret\n")
	stonith := func(node string) string {
		return fmt.Sprintf("\n[stonith#%s]\ntype = ipmi\nhost = 127.0.0.1\nuser = admin\npassword_file = %s\n", node, filepath.Join(dir, "bmc.pass"))
	}
	base := fmt.Sprintf("[cluster]\nname = safety\nnode = n1\nnodes = n1 n2\nsecret_file = %s\n\n[hb#1]\ntype = net\nport = 10000\naddrs = n1=127.0.0.1 n2=127.0.0.2\n",
		filepath.Join(dir, "cluster.secret"))
	svc := func(extra string) string {
		return "[DEFAULT]\nnodes = n1 n2\norchestrate = ha\n" + extra + "\n[ip#1]\nipdev = lo\nipname = 127.0.0.9\n"
	}
	fenced := write("fenced.conf", svc(""))
	unfenced := write("unfenced.conf", svc("stonith = false\n"))
	for _, tc := range []struct {
		name    string
		cluster string
		file    string
		refuse  bool
	}{
		{"NoStonithForN2_Refused", base + stonith("n1"), fenced, true},
		{"NoStonithForN2_StonithFalse_Accepted", base + stonith("n1"), unfenced, false},
		{"StonithForEveryNode_Accepted", base + stonith("n1") + stonith("n2"), fenced, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write("cluster.conf", tc.cluster)
			cmd := exec.Command(filepath.Join(bin, "svcmgr"), "validate", tc.file)
			cmd.Env = append(os.Environ(), "VIGIL_CONFIG_DIR="+dir, "VIGIL_PLUGIN_DIR="+bin, "VIGIL_RUN_DIR="+filepath.Join(dir, "run"), "VIGIL_STATE_DIR="+filepath.Join(dir, "lib"))
			out, err := cmd.CombinedOutput()
			t.Logf("svcmgr validate %s: %v\n%s", filepath.Base(tc.file), err, out)
			switch {
			case tc.refuse && err == nil:
				t.Errorf("accepted: orchestrate = ha with no fencing for n2 and no stonith = false")
			case tc.refuse && !strings.Contains(string(out), "stonith#n2"):
				t.Errorf("refused without naming the missing [stonith#n2] section")
			case !tc.refuse && err != nil:
				t.Errorf("refused: %v", err)
			}
		})
	}
}

// Hole 14. The owner fenced (powered off through its BMC) and powered on
// again at once, its volume groups still tagged with its name: whatever
// the order in which the peer's takeover and the old owner's return
// happen, each service converges without an operator: up on exactly one
// node, down (no partial instance) on the other, its disks mounted and its
// address held on that node alone, and never mounted on two nodes at
// once. Three gaps between the power-off and the power-on: none (back
// before the peer can see it lost), one second (about when the peer sees
// it lost and finds it off) and three (the peer's takeover under way).
func TestSafety_FencedOwnerBackAtOnceConverges(t *testing.T) {
	l := newLab(t, "sb")
	disks := append(slices.Clone(registryDisks), "busybox-root", "busybox-data")
	addrs := map[string]string{labtest.Registry: l.st.RegistryAddr(), labtest.Busybox: l.st.BusyboxAddr()}
	roles := map[string][]string{labtest.Registry: registryDisks, labtest.Busybox: {"busybox-root", "busybox-data"}}
	owner := "n1"
	for _, gap := range []time.Duration{0, time.Second, 3 * time.Second} {
		t.Run(fmt.Sprintf("BackAfter%s", gap), func(t *testing.T) {
			l.T = t
			l.WaitReady("n1", "n2", labtest.RejoinTimeout)
			l.WaitReady("n2", "n1", labtest.RejoinTimeout)
			w := l.watch(disks, []string{addrs[labtest.Registry], addrs[labtest.Busybox]})
			offs := map[string]int64{"n1": l.LogSize("n1"), "n2": l.LogSize("n2")}
			l.MustLab("poweroff", owner)
			offAt := time.Now()
			time.Sleep(gap)
			l.MustLab("poweron", owner)
			t.Logf("%s (running the registry) powered off, and on again %s later", owner, time.Since(offAt).Round(time.Millisecond))

			owners := map[string]string{}
			converged := func() (bool, string) {
				s := w.Samples()
				last := s[len(s)-1]
				for _, svc := range labtest.SeedServices {
					n, why := l.convergedOn(svc)
					if n == "" {
						return false, svc + ": " + why
					}
					if h := last.addrs[addrs[svc]]; len(h) != 1 || h[0] != n {
						return false, fmt.Sprintf("%s up on %s, its address held by %v", svc, n, h)
					}
					for _, r := range roles[svc] {
						if !slices.Contains(last.mounts[n], r) {
							return false, fmt.Sprintf("%s up on %s; its disk %s not mounted there", svc, n, r)
						}
						for node, rs := range last.mounts {
							if node != n && slices.Contains(rs, r) {
								return false, fmt.Sprintf("%s up on %s; its disk %s mounted on %s too", svc, n, r, node)
							}
						}
					}
					owners[svc] = n
				}
				return true, ""
			}
			took := l.WaitFor("both services converged (one node each, nothing partial)", 150*time.Second, converged)
			t.Logf("converged %s after the power-off: registry on %s, busybox on %s", took.Round(time.Millisecond), owners[labtest.Registry], owners[labtest.Busybox])
			// And they stay so.
			was := maps.Clone(owners)
			time.Sleep(5 * time.Second)
			if ok, why := converged(); !ok || !maps.Equal(owners, was) {
				t.Errorf("5 s later no longer converged as before (%v → %v): %s", was, owners, why)
			}
			var lingered time.Duration
			for _, s := range w.Stop() {
				if _, ok := s.mounts[owner+"~"]; ok {
					lingered = s.at.Sub(offAt)
				}
				for _, svc := range labtest.SeedServices {
					if on := s.nodesWith(roles[svc]); len(on) > 1 {
						t.Errorf("%s's disks mounted on %v at once (nK~: nK's namespaces from before its power-off): %s", svc, on, s)
						break
					}
				}
			}
			if lingered > 0 {
				t.Logf("the mounts of %s's life before the power-off were last seen %s after `vigil-lab poweroff` returned", owner, lingered.Round(time.Millisecond))
			}
			for _, n := range l.Nodes {
				got := grep(l.LogSince(n, offs[n]), regexp.MustCompile(`node fenced|fencing failed|fencing called off|orchestrated (start|stop)|instance state read back|action failed`))
				t.Logf("%s:\n%s", n, strings.Join(got, "\n"))
			}
			owner = owners[labtest.Registry]
		})
	}
}

// Hole 13. A cut of a few seconds (3 to 8) on every heartbeat link of the
// active node while its BMC does not answer the peer (nor the peer's BMC
// the active node: the cut node reaches no BMC anyway), the BMCs answering
// again a second after the heal, as a slow BMC would: no node is powered
// off, the daemons keep their boot (same node init, same vigild, same boot
// counter), and the services stay where they ran. Three cuts in a row.
func TestSafety_ShortCutWithSlowBMCPowersNothingOff(t *testing.T) {
	l := newLab(t, "sc")
	for i, cut := range []time.Duration{3 * time.Second, 5500 * time.Millisecond, 8 * time.Second} {
		t.Run(fmt.Sprintf("Cut%d_%s", i+1, cut), func(t *testing.T) {
			l.T = t
			l.WaitReady("n1", "n2", labtest.RejoinTimeout)
			l.WaitReady("n2", "n1", labtest.RejoinTimeout)
			type life struct {
				init, vigild int
				boot         string
			}
			before := map[string]life{}
			for _, n := range l.Nodes {
				before[n] = life{l.st.NodeInit(n).Pid, l.vigild(n), l.bootCounter(n)}
			}
			offs := map[string]int64{"n1": l.LogSize("n1"), "n2": l.LogSize("n2")}
			slow := []rule{l.blockBMC("n2", "n1"), l.blockBMC("n1", "n2")}
			l.MustLab("cut", "n1", "--link", "all")
			time.Sleep(cut)
			l.MustLab("heal", "n1")
			time.Sleep(time.Second)
			for _, r := range slow {
				l.delRule(r)
			}
			// Long enough for any fence still under way to land: the
			// power status (5 s at most), the fence delay (5 s), the
			// power-off itself.
			time.Sleep(15 * time.Second)
			for _, n := range l.Nodes {
				if p := l.power(n); p != "on" {
					t.Errorf("%s's BMC says %s after a %s cut", n, p, cut)
				}
				now := life{0, l.vigild(n), l.bootCounter(n)}
				if p := l.st.NodeInit(n); p != nil {
					now.init = p.Pid
				}
				if now != before[n] {
					t.Errorf("%s lost its boot across a %s cut: before init %d vigild %d boot %s, after init %d vigild %d boot %s",
						n, cut, before[n].init, before[n].vigild, before[n].boot, now.init, now.vigild, now.boot)
				}
				lines := l.LogSince(n, offs[n])
				if got := grep(lines, regexp.MustCompile(`node fenced|fencing failed|fencing called off|heard again|waiting the fence delay|action (done|failed)`)); len(got) > 0 {
					t.Logf("%s:\n%s", n, strings.Join(got, "\n"))
				}
			}
			for _, svc := range labtest.SeedServices {
				if got := l.Avail("n1", "n1", svc); got != "up" {
					t.Errorf("%s is %s on n1 after a %s cut", svc, got, cut)
				}
				if got := l.Avail("n2", "n2", svc); got != "down" {
					t.Errorf("%s is %s on n2 after a %s cut", svc, got, cut)
				}
			}
		})
	}
}
