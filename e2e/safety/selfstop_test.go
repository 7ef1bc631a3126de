package safety

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// Two nodes without fencing (the services set stonith = false), an
// arbitrator and split_action = stop; the registry runs on n1. A one-way
// partition: n2 no longer hears n1 (n1's packets to n2 are dropped, n1 is
// cut from the heartbeat disk and from the arbitrator), while n1 still
// hears n2. n2 sees n1 lost and wins the arbitrator's vote; n1, told by
// n2's datasets that n2 no longer sees it, loses quorum and stops what it
// runs. Nobody can fence n1, so n2 starts the services only once n1 has
// had the time to find out and stop (three heartbeat timeouts since n2
// last heard it): the registry's disks are never mounted on both nodes and
// its address is never held by both.
func TestSafety_OneWaySplitWithoutFencingWaitsForTheLoserToStop(t *testing.T) {
	const port, lease = 7401, 3 * time.Second
	l := newLabWith(t, labtest.Options{Prefix: "ss", Nodes: 2, ArbitratorPort: port, SplitAction: "stop"})
	l.StartArbitrator(port, lease)
	for _, svc := range labtest.SeedServices {
		l.configSet("n1", svc, "stonith=false")
	}
	l.configSet("n1", labtest.Registry, "ip#1.arp_probe=0")
	l.WaitFor("n1 to orchestrate with quorum", 60*time.Second, func() (bool, string) {
		return len(grep(l.LogSince("n1", 0), regexp.MustCompile(`arbitrator vote granted`))) > 0, "no arbitrator grant in n1's log"
	})
	w := l.watch(registryDisks, []string{l.st.RegistryAddr()})
	off1, off2 := l.LogSize("n1"), l.LogSize("n2")

	// n1's packets to n2 dropped at n2; n1 loses the disk and the
	// arbitrator: n2 hears nothing of n1, n1 still hears n2's network
	// heartbeat.
	l.addRule(rule{"n2", []string{"INPUT", "-s", l.addr("n1"), "-j", "DROP"}})
	l.addRule(rule{"n1", []string{"OUTPUT", "-d", l.st.ClientAddr(), "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP"}})
	l.MustLab("cut", "n1", "--link", "disk")
	cut := time.Now()
	l.WaitFor("n2 to see n1 lost", 30*time.Second, func() (bool, string) {
		st := l.NodeState("n2", "n1")
		return st == cluster.Lost, "n1 is " + string(st)
	})
	for _, svc := range labtest.SeedServices {
		l.WaitAvail("n2", "n2", svc, status.Up, labtest.FailoverTimeout)
	}
	took := time.Since(cut)
	time.Sleep(2 * time.Second)
	samples := w.Stop()

	lines1, lines2 := l.LogSince("n1", off1), l.LogSince("n2", off2)
	if i := first(lines1, regexp.MustCompile(`quorum lost`)); i < 0 {
		t.Errorf("n1 never lost quorum: n2's datasets say n2 no longer sees it\n%s", tail(lines1, 20))
	}
	stopped := first(lines1, regexp.MustCompile(`action done: .*service=`+regexp.QuoteMeta(labtest.Registry)+` action=stop`))
	if stopped < 0 {
		t.Errorf("n1 never stopped the registry after losing quorum (split_action = stop)\n%s", tail(lines1, 20))
	}
	if got := grep(lines2, regexp.MustCompile(`node fenced|waiting the fence delay`)); len(got) > 0 {
		t.Errorf("n2 went for a fence, though the services set stonith = false:\n%s", strings.Join(got, "\n"))
	}
	for _, s := range samples {
		if on := s.nodesWith(nil); len(on) > 1 {
			t.Errorf("the registry's disks mounted on two nodes at once: %s", s)
			break
		}
		if len(s.addrs[l.st.RegistryAddr()]) > 1 {
			t.Errorf("the registry's address held by two nodes at once: %s", s)
			break
		}
	}
	t.Logf("registry up on n2 %s after the cut; %d samples (every 50 ms, every mount namespace), none with the registry on both nodes", took.Round(time.Millisecond), len(samples))
	if st := l.st.NodeInit("n1"); st == nil {
		t.Errorf("n1 was powered off, though nobody fences it")
	}
}
