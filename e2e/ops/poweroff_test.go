package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/journal"
	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// alertScript writes each event it is run for as one file of its
// VIGIL_EVENT_* variables followed by the JSON it read on stdin.
const alertScript = `#!/bin/sh
d=/etc/vigil/alerts; mkdir -p $d
f=$d/$VIGIL_EVENT_SEQ.$VIGIL_EVENT_KIND
env | grep ^VIGIL_EVENT_ | sort > $f.tmp
cat >> $f.tmp
mv $f.tmp $f
`

// opsConf turns the lab's cluster.conf into one with a fencing check every
// second and the alert above.
func opsConf(conf string) string {
	conf = strings.Replace(conf, "[cluster]\n", "[cluster]\nfence_check_interval = 1s\n", 1)
	return conf + "\n[alert#1]\ncommand = /etc/vigil/alert.sh\nkinds = lost fence fence_failed fence_confirm failover fence_check\ntimeout = 5s\n"
}

// restartVigild ends node's vigild; the node's init starts it again, which
// rereads cluster.conf.
func restartVigild(t *testing.T, l *labtest.Lab, node string) {
	t.Helper()
	pid := l.State().VigildPid(node)
	if pid == 0 {
		t.Fatalf("%s runs no vigild", node)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(node+"'s vigild restarted", 30*time.Second, func() (bool, string) {
		p := l.State().VigildPid(node)
		return p != 0 && p != pid && l.View(node) != nil, "not yet"
	})
}

func iptables(l *labtest.Lab, node string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.State().NodeNS(node), "iptables", "-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: iptables %s: %v: %s", node, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// blockBMC drops target's BMC's answers in node's namespace: for node,
// that BMC stops answering. It returns the rule's removal.
func blockBMC(t *testing.T, l *labtest.Lab, node, target string) func() {
	t.Helper()
	st := l.State()
	k, _ := st.NodeIndex(target)
	spec := []string{"INPUT", "-s", st.BMCAddr(k), "-p", "udp", "--sport", "623", "-j", "DROP"}
	if err := iptables(l, node, append([]string{"-I"}, spec...)...); err != nil {
		t.Fatal(err)
	}
	done := false
	undo := func() {
		if !done {
			done = true
			_ = iptables(l, node, append([]string{"-D"}, spec...)...)
		}
	}
	t.Cleanup(undo)
	return undo
}

func journalOf(t *testing.T, l *labtest.Lab, node string, q map[string][]string) []journal.Entry {
	t.Helper()
	var out []journal.Entry
	if err := l.Client(node).Journal(context.Background(), q, func(e journal.Entry) { out = append(out, e) }); err != nil {
		t.Fatalf("%s's journal: %v", node, err)
	}
	return out
}

// The scenarios that need power-offs and broken BMCs, on one lab, in an
// order that leaves each the lab the next needs.
func TestOps_FencingChecksFreezeJournalAlertsAndFailovers(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (a BMC that stops answering is a rule in a node's network namespace)")
	}
	l := suite.New(t, labtest.Options{Prefix: "p", Nodes: 2})
	ctx := context.Background()
	for _, n := range l.Nodes {
		dir := filepath.Join(l.NodeDir(n), "etc")
		conf, err := os.ReadFile(filepath.Join(dir, "cluster.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cluster.conf"), []byte(opsConf(string(conf))), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "alert.sh"), []byte(alertScript), 0o700); err != nil {
			t.Fatal(err)
		}
		restartVigild(t, l, n)
	}
	l.WaitReady("n1", "n2", labtest.RejoinTimeout)
	l.WaitReady("n2", "n1", labtest.RejoinTimeout)
	for _, svc := range labtest.SeedServices {
		l.WaitAvail("n1", "n1", svc, status.Up, labtest.StartTimeout)
	}

	t.Run("a BMC that stops answering shows in svcmon before any failover needs it", func(t *testing.T) {
		l.T = t
		check := func(ok bool) (bool, string) {
			st, err := l.Client("n1").Ops(ctx)
			if err != nil {
				return false, err.Error()
			}
			for _, c := range st.FenceChecks {
				if c.Method == "stonith#n2" {
					return c.OK == ok, fmt.Sprintf("%+v", c)
				}
			}
			return false, "no check of stonith#n2 yet"
		}
		l.WaitFor("n1's check of n2's BMC to pass", 30*time.Second, func() (bool, string) { return check(true) })
		unblock := blockBMC(t, l, "n1", "n2")
		l.WaitFor("n1's check of n2's BMC to fail", 60*time.Second, func() (bool, string) { return check(false) })
		out, _ := l.Exec("n1", "svcmon")
		t.Logf("n1: svcmon:\n%s", out)
		if !strings.Contains(out, "stonith#n2") || !strings.Contains(out, "FAILED") {
			t.Errorf("svcmon on n1 does not show n2's BMC failing:\n%s", out)
		}
		if e := journalOf(t, l, "n1", map[string][]string{"kind": {"fence_check"}}); len(e) == 0 {
			t.Error("no fence_check event in n1's journal")
		}
		unblock()
		l.WaitFor("n1's check of n2's BMC to pass again", 60*time.Second, func() (bool, string) { return check(true) })
	})

	t.Run("the journal survives a daemon restart", func(t *testing.T) {
		l.T = t
		before := journalOf(t, l, "n2", nil)
		if len(before) == 0 {
			t.Fatal("n2's journal is empty")
		}
		restartVigild(t, l, "n2")
		l.WaitReady("n2", "n1", labtest.RejoinTimeout)
		after := journalOf(t, l, "n2", nil)
		last := before[len(before)-1]
		if !slices.ContainsFunc(after, func(e journal.Entry) bool { return e.Seq == last.Seq && e.Kind == last.Kind }) ||
			after[len(after)-1].Seq <= last.Seq {
			t.Errorf("after the restart n2's journal has %d entries (last seq %d), before %d (last seq %d)",
				len(after), after[len(after)-1].Seq, len(before), last.Seq)
		}
	})

	t.Run("a frozen node's failed container is not failed over", func(t *testing.T) {
		l.T = t
		if err := l.Client("n1").ConfigSet(ctx, labtest.Registry, []string{"container#1.monitor=true", "container#1.restart=2"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Client("n1").NodeAction(ctx, "freeze", api.NodeRequest{}, func(string) {}); err != nil {
			t.Fatal(err)
		}
		ids, err := l.Exec("n1", "svcmgr", "-s", labtest.Registry, "docker", "ps", "-q")
		if err != nil || strings.TrimSpace(ids) == "" {
			t.Fatalf("the registry's container on n1: %q %v", ids, err)
		}
		if out, err := l.Exec("n1", append([]string{"svcmgr", "-s", labtest.Registry, "docker", "kill"}, strings.Fields(ids)...)...); err != nil {
			t.Fatalf("docker kill: %v %s", err, out)
		}
		l.WaitFor("n1 to read the registry not up", 60*time.Second, func() (bool, string) {
			a := l.Avail("n1", "n1", labtest.Registry)
			return a != "up", a
		})
		// Several evaluations later: nothing restarted, stopped or moved.
		for range 3 {
			before := l.Instance("n1", "n1", labtest.Registry).Updated
			l.WaitFor("another evaluation on n1", 60*time.Second, func() (bool, string) {
				return l.Instance("n1", "n1", labtest.Registry).Updated.After(before), "not yet"
			})
		}
		if inst := l.Instance("n1", "n1", labtest.Registry); inst.State != "started" || inst.Status.Avail == status.Up {
			t.Errorf("the frozen n1 acted on the failed container: %s/%s", inst.State, inst.Status.Avail)
		}
		if a := l.Avail("n2", "n2", labtest.Registry); a != "down" {
			t.Errorf("the registry was failed over to n2 from a frozen node: %s", a)
		}
		if err := l.Client("n1").NodeAction(ctx, "thaw", api.NodeRequest{}, func(string) {}); err != nil {
			t.Fatal(err)
		}
		l.WaitAvail("n1", "n1", labtest.Registry, status.Up, labtest.FailoverTimeout)
	})

	t.Run("a power-off: alerts with every variable, print failovers phase by phase", func(t *testing.T) {
		l.T = t
		alerts := filepath.Join(l.NodeDir("n2"), "etc", "alerts")
		os.RemoveAll(alerts)
		offBegin := time.Now()
		l.MustLab("poweroff", "n1")
		offAt := time.Now()
		var upAt time.Time
		l.WaitFor("the registry up on n2", labtest.FailoverTimeout, func() (bool, string) {
			a := l.Avail("n2", "n2", labtest.Registry)
			upAt = time.Now()
			return a == "up", a
		})
		t.Logf("outage seen from the test: %.3fs from the power-off command (%.3fs from its return)", upAt.Sub(offBegin).Seconds(), upAt.Sub(offAt).Seconds())
		var flights []api.Flight
		l.WaitFor("the registry's takeover recorded on n2", 60*time.Second, func() (bool, string) {
			out, err := l.Exec("n2", "svcmgr", "-s", labtest.Registry, "print", "failovers", "--format", "json")
			if err != nil {
				return false, out
			}
			flights = nil
			i := strings.Index(out, "[")
			if i < 0 || json.Unmarshal([]byte(out[i:]), &flights) != nil {
				return false, out
			}
			return len(flights) > 0 && flights[len(flights)-1].Kind == "takeover", out
		})
		f := flights[len(flights)-1]
		sum := 0.0
		var names []string
		for _, p := range f.Phases {
			names = append(names, p.Name)
			if p.Name != "first_monitor" {
				sum += p.Seconds
			}
		}
		out, _ := l.Exec("n2", "svcmgr", "-s", labtest.Registry, "print", "failovers", "--last", "1")
		t.Logf("n2: svcmgr print failovers:\n%s", out)
		t.Logf("phases %v sum to %.3fs, total %.3fs; the test saw %.3fs", names, sum, f.Total, upAt.Sub(offBegin).Seconds())
		if !slices.Equal(f.From, []string{"n1"}) || !slices.Contains(names, "detect") || !slices.Contains(names, "fence") || !slices.Contains(names, "start") {
			t.Errorf("the takeover's record: %+v", f)
		}
		if math.Abs(sum-f.Total) > 0.001 {
			t.Errorf("phases sum to %.3fs, the record's total is %.3fs", sum, f.Total)
		}
		// How the record compares with a clock outside the cluster is
		// reported, not asserted: the outside figure carries the poll's
		// lag and the power-off command's own time (the ground rule: no
		// timing in a test).
		t.Logf("recorded %.3fs, seen from outside %.3fs from the power-off's return: %+.3fs apart", sum, upAt.Sub(offAt).Seconds(), sum-upAt.Sub(offAt).Seconds())
		// The alert ran for lost, fence and failover, with every variable.
		l.WaitFor("n2's alerts for lost, fence and failover", 30*time.Second, func() (bool, string) {
			names, _ := filepath.Glob(filepath.Join(alerts, "*"))
			var kinds []string
			for _, n := range names {
				kinds = append(kinds, filepath.Ext(n))
			}
			return slices.Contains(kinds, ".lost") && slices.Contains(kinds, ".fence") && slices.Contains(kinds, ".failover"), strings.Join(kinds, " ")
		})
		files, _ := filepath.Glob(filepath.Join(alerts, "*.failover"))
		b, _ := os.ReadFile(files[0])
		for _, v := range []string{"VIGIL_EVENT_KIND=failover", "VIGIL_EVENT_NODE=n2", "VIGIL_EVENT_SERVICE=", "VIGIL_EVENT_MESSAGE=takeover", "VIGIL_EVENT_TIME=20", `"kind":"failover"`} {
			if !strings.Contains(string(b), v) {
				t.Errorf("the failover alert saw:\n%s\nwant %q", b, v)
			}
		}
		files, _ = filepath.Glob(filepath.Join(alerts, "*.lost"))
		if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), "VIGIL_EVENT_NODE=n1") {
			t.Errorf("the lost alert saw:\n%s", b)
		}
		l.MustLab("poweron", "n1")
		l.WaitReady("n2", "n1", labtest.RejoinTimeout)
		l.WaitReady("n1", "n2", labtest.RejoinTimeout)
	})

	t.Run("fence confirm unblocks a takeover behind a failing BMC", func(t *testing.T) {
		l.T = t
		for _, svc := range labtest.SeedServices {
			l.WaitAvail("n2", "n2", svc, status.Up, labtest.FailoverTimeout)
		}
		blockBMC(t, l, "n1", "n2")
		l.MustLab("poweroff", "n2")
		l.WaitFor("n1's fence of n2 to fail", labtest.FailoverTimeout, func() (bool, string) {
			e := journalOf(t, l, "n1", map[string][]string{"kind": {"fence_failed"}, "since": {"2m"}})
			return len(e) > 0, "no fence_failed yet"
		})
		for _, svc := range labtest.SeedServices {
			if a := l.Avail("n1", "n1", svc); a == "up" {
				t.Fatalf("%s started on n1 with n2 not fenced", svc)
			}
		}
		out, err := l.Exec("n1", "nodemgr", "fence", "confirm", "n2")
		t.Logf("n1: nodemgr fence confirm n2: %s", out)
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range labtest.SeedServices {
			l.WaitAvail("n1", "n1", svc, status.Up, labtest.FailoverTimeout)
		}
		e := journalOf(t, l, "n1", map[string][]string{"kind": {"fence_confirm"}})
		if len(e) == 0 || e[len(e)-1].UID == nil || *e[len(e)-1].UID != 0 {
			t.Errorf("the confirmation in n1's journal: %+v", e)
		}
	})
}
