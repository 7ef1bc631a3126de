package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/e2e/clusterlab"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clusterlab.Cleanup()
	os.Exit(code)
}

const (
	hbInterval = 200 * time.Millisecond
	hbTimeout  = time.Second
)

func webService(marker string) string {
	return "[DEFAULT]\nnodes = n1 n2 n3\nservice_type = DEV\n\n[app#1]\ntype = test\nfile = " + marker + "\n"
}

// seesPeer reports whether nd sees peer ready with a dataset that lists svc.
func seesPeer(t *testing.T, nd *clusterlab.Node, peer, svc string) bool {
	st := nd.Status(t)
	ns := st.Node[peer]
	if ns == nil || ns.State != cluster.Ready {
		return false
	}
	_, ok := ns.Services[svc]
	return ok
}

func TestCluster_TwoNodesSeeEachOtherAndMarkAStoppedPeerLost(t *testing.T) {
	l := clusterlab.New(t, 2, hbInterval, hbTimeout)
	marker := filepath.Join(t.TempDir(), "web")
	for _, nd := range l.Nodes {
		clusterlab.WriteService(t, nd, "web", webService(marker))
	}
	l.StartAll()
	n1, n2 := l.Nodes[0], l.Nodes[1]
	clusterlab.WaitFor(t, "n1 to see n2's services", 15*time.Second, func() bool { return seesPeer(t, n1, "n2", "web") })
	clusterlab.WaitFor(t, "n2 to see n1's services", 15*time.Second, func() bool { return seesPeer(t, n2, "n1", "web") })
	clusterlab.WaitFor(t, "both nodes ready", 10*time.Second, func() bool { return n1.Status(t).Node["n1"].State == cluster.Ready })

	l.Kill(n2, syscall.SIGKILL)
	took := clusterlab.WaitFor(t, "n1 to mark n2 lost", 10*time.Second, func() bool { return n1.Status(t).Node["n2"].State == cluster.Lost })
	t.Logf("n2 marked lost %s after its daemon was killed (timeout %s, interval %s)", took.Round(time.Millisecond), hbTimeout, hbInterval)
}

func TestCluster_NetworkCutWithDiskAliveIsNotLost(t *testing.T) {
	l := clusterlab.New(t, 2, hbInterval, hbTimeout)
	l.StartAll()
	n1, n2 := l.Nodes[0], l.Nodes[1]
	clusterlab.WaitFor(t, "n1 to see n2", 15*time.Second, func() bool { return n1.Status(t).Node["n2"].State == cluster.Ready })

	clusterlab.Sh(t, "ip", "-n", n2.NS, "link", "set", "eth0", "down")
	clusterlab.WaitFor(t, "the network heartbeat to go stale for n2", 10*time.Second, func() bool {
		hb := n1.Status(t).Node["n2"].HB["hb#1"]
		return hb != nil && hb.Stale
	})
	// Several timeouts with only the disk heartbeat: never lost.
	end := time.Now().Add(4 * hbTimeout)
	for time.Now().Before(end) {
		ns := n1.Status(t).Node["n2"]
		if ns.State == cluster.Lost {
			t.Fatalf("n2 marked lost while its disk heartbeat lives: %+v", ns.HB)
		}
		if ns.HB["hb#2"].Stale {
			t.Fatalf("the disk heartbeat went stale: %+v", ns.HB["hb#2"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	clusterlab.Sh(t, "ip", "-n", n2.NS, "link", "set", "eth0", "up")
	clusterlab.WaitFor(t, "the network heartbeat to come back", 15*time.Second, func() bool { return !n1.Status(t).Node["n2"].HB["hb#1"].Stale })
}

func TestCluster_ConfigChangeReachesTheServiceNodes(t *testing.T) {
	l := clusterlab.New(t, 2, hbInterval, hbTimeout)
	marker := filepath.Join(t.TempDir(), "web")
	for _, nd := range l.Nodes {
		clusterlab.WriteService(t, nd, "web", webService(marker))
	}
	// A service only n1 has yet, for both nodes: n2 gets it.
	clusterlab.WriteService(t, l.Nodes[0], "api", strings.Replace(webService(marker+"-api"), "n1 n2 n3", "n1 n2", 1))
	l.StartAll()
	n1, n2 := l.Nodes[0], l.Nodes[1]
	ctx := context.Background()
	clusterlab.WaitFor(t, "n2 to receive the api service", 15*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(n2.Etc, "api.conf"))
		return err == nil
	})

	// A change that does not validate is refused where it is made and
	// reaches nobody.
	if err := n1.Client.ConfigSet(ctx, "web", []string{"orchestrate=sometimes"}); err == nil {
		t.Fatal("an invalid change was accepted")
	}
	// Nor does orchestrate = ha without fencing for every node (this lab
	// has none) unless the service opts out with stonith = false.
	if err := n1.Client.ConfigSet(ctx, "web", []string{"orchestrate=ha"}); err == nil || !strings.Contains(err.Error(), "needs a fencing method") {
		t.Fatalf("orchestrate=ha without fencing: %v, want a refusal", err)
	}
	if err := n1.Client.ConfigSet(ctx, "web", []string{"orchestrate=ha", "stonith=false"}); err != nil {
		t.Fatal(err)
	}
	took := clusterlab.WaitFor(t, "the change on n2", 15*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(n2.Etc, "web.conf"))
		return strings.Contains(string(b), "orchestrate = ha")
	})
	t.Logf("config change reached n2 in %s", took.Round(time.Millisecond))
	b, _ := os.ReadFile(filepath.Join(n2.Etc, "web.conf"))
	if strings.Contains(string(b), "sometimes") {
		t.Fatal("the refused value reached n2")
	}
	// Both agree: the sync branch reads up.
	clusterlab.WaitFor(t, "sync#i0 up on n2", 20*time.Second, func() bool {
		inst := n2.Status(t).Node["n2"].Services["web"]
		for _, r := range inst.Status.Resources {
			if r.RID == "sync#i0" {
				return r.Status.String() == "up"
			}
		}
		return false
	})
}

func rejects(t *testing.T, nd *clusterlab.Node, hb string) int {
	n := 0
	for k, v := range nd.Status(t).Rejects {
		if strings.HasPrefix(k, hb+"/") {
			n += v
		}
	}
	return n
}

func TestCluster_ForgedReplayedAndCorruptMessagesAreRejected(t *testing.T) {
	l := clusterlab.New(t, 2, hbInterval, hbTimeout)
	l.StartAll()
	n1, n2 := l.Nodes[0], l.Nodes[1]
	clusterlab.WaitFor(t, "n1 to see n2", 15*time.Second, func() bool { return n1.Status(t).Node["n2"].State == cluster.Ready })

	// A forged network heartbeat: packets to n1's heartbeat port from a
	// node that does not hold the key.
	before := rejects(t, n1, "hb#1")
	sendUDP(t, n2.NS, n1.Addr, "10000")
	clusterlab.WaitFor(t, "the forged packet counted as rejected", 10*time.Second, func() bool { return rejects(t, n1, "hb#1") > before })

	// A replayed disk heartbeat: n2's slot as it was a moment ago, written
	// back over the live one.
	f, err := os.OpenFile(l.HBDisk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// n2 has slot 1, after the 4 KiB label and slot 0 (hb-disk's default
	// slot size, 1 MiB).
	const slot = 4096 + 1<<20
	old := make([]byte, 64*1024)
	if _, err := f.ReadAt(old, slot); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * hbInterval)
	before = rejects(t, n1, "hb#2")
	// n2 keeps rewriting its slot: keep replaying the old one for a while
	// so n1's reads meet it.
	for end := time.Now().Add(10 * hbInterval); time.Now().Before(end); {
		f.WriteAt(old, slot)
		f.Sync()
		time.Sleep(5 * time.Millisecond)
	}
	clusterlab.WaitFor(t, "the replayed slot counted as rejected", 10*time.Second, func() bool { return rejects(t, n1, "hb#2") > before })

	// A torn slot: garbage in n2's payload.
	before = rejects(t, n1, "hb#2")
	// n2 rewrites its slot every interval: keep tearing it for a while so
	// n1's reads meet the damage.
	for end := time.Now().Add(10 * hbInterval); time.Now().Before(end); {
		f.WriteAt([]byte("torn-torn-torn-torn"), slot+600)
		f.Sync()
		time.Sleep(5 * time.Millisecond)
	}
	clusterlab.WaitFor(t, "the corrupt slot counted as rejected", 10*time.Second, func() bool { return rejects(t, n1, "hb#2") > before })
	if n1.Status(t).Node["n2"].State != cluster.Ready {
		t.Fatal("rejected messages changed what n1 thinks of n2")
	}
}

// sendUDP sends a few garbage datagrams from inside a namespace (bash's
// /dev/udp).
func sendUDP(t *testing.T, ns, host, port string) {
	t.Helper()
	script := "for i in 1 2 3; do echo forged-heartbeat-$i > /dev/udp/" + host + "/" + port + "; sleep 0.2; done"
	if out, err := exec.Command("ip", "netns", "exec", ns, "bash", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("send forged packets: %v %s", err, out)
	}
}

func TestCluster_ThreeNodesSeeEachOtherAndMarkALostOne(t *testing.T) {
	l := clusterlab.New(t, 3, hbInterval, hbTimeout)
	l.StartAll()
	for _, a := range l.Nodes {
		for _, b := range l.Nodes {
			if a == b {
				continue
			}
			clusterlab.WaitFor(t, a.Name+" to see "+b.Name, 20*time.Second, func() bool { return a.Status(t).Node[b.Name].State == cluster.Ready })
		}
	}
	l.Kill(l.Nodes[2], syscall.SIGTERM)
	for _, nd := range l.Nodes[:2] {
		took := clusterlab.WaitFor(t, nd.Name+" to mark n3 lost", 10*time.Second, func() bool { return nd.Status(t).Node["n3"].State == cluster.Lost })
		t.Logf("%s marked n3 lost after %s", nd.Name, took.Round(time.Millisecond))
	}
}

func TestCluster_MetricsShowHeartbeatAges(t *testing.T) {
	l := clusterlab.New(t, 2, hbInterval, hbTimeout)
	l.StartAll()
	n1 := l.Nodes[0]
	clusterlab.WaitFor(t, "n1 to hear n2 on both heartbeats", 15*time.Second, func() bool {
		ns := n1.Status(t).Node["n2"]
		return ns.State == cluster.Ready && ns.HB["hb#1"] != nil && !ns.HB["hb#1"].Stale && ns.HB["hb#2"] != nil && !ns.HB["hb#2"].Stale
	})
	// The endpoint listens on the node's own loopback: ask from inside.
	out, err := exec.Command("ip", "netns", "exec", n1.NS, "curl", "-sf", "http://127.0.0.1:9100/metrics").CombinedOutput()
	if err != nil {
		t.Fatalf("curl /metrics: %v\n%s", err, out)
	}
	for _, want := range []string{`vigil_heartbeat_last_beat_timestamp_seconds{hb="hb#1",peer="n2"}`, `vigil_heartbeat_last_beat_timestamp_seconds{hb="hb#2",peer="n2"}`,
		"vigil_heartbeat_rejects_total", "vigil_plugin_restarts_total"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(strings.ToLower(string(out)), "secret") {
		t.Error("/metrics mentions the secret")
	}
}
