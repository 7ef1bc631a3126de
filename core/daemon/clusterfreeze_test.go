package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// A peer's newer cluster-wide freeze, arrived over a heartbeat, is taken
// here and kept in node.json, as an operator's freeze on this node would.
func TestOps_PeersClusterWideFreezeIsAdopted(t *testing.T) {
	d := testDaemon(t, "a")
	d.cfg.StateDir = t.TempDir()
	d.svcs = map[string]*service{}
	d.syncPending, d.syncWake = map[string]bool{}, make(chan struct{}, 1)
	d.metrics = newMetrics(d)
	o, err := newOps(d)
	if err != nil {
		t.Fatal(err)
	}
	d.ops = o
	t.Cleanup(func() { o.journal.Close() })

	peer := testDaemon(t, "b")
	ds := cluster.Dataset{Node: "b", State: cluster.Ready, Services: map[string]*cluster.ServiceInstance{},
		ClusterFreeze: cluster.Expectation{Value: "frozen", Version: 1, By: "b"}}
	payload, _ := json.Marshal(ds)
	raw, err := cluster.Seal(peer.view.Key(), &cluster.Envelope{Cluster: "c1", Node: "b", Boot: 1, Gen: 1, Time: time.Now().UnixNano(), Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	d.onHeartbeat("hb#1", sdk.HeartbeatEvent{Kind: sdk.EventBeat, Peer: "b", Dataset: raw})

	d.adoptClusterFreeze()
	if frozen, cf := d.publishedMaintenance(); frozen || cf.Value != "frozen" {
		t.Fatalf("after the peer's cluster-wide freeze: node frozen %v, cluster freeze %+v; want the cluster freeze adopted", frozen, cf)
	}
	b, err := os.ReadFile(filepath.Join(d.cfg.StateDir, "node.json"))
	if err != nil || !strings.Contains(string(b), `"frozen"`) {
		t.Fatalf("node.json = %q (%v), want the cluster freeze kept", b, err)
	}
	d.adoptClusterFreeze() // the same freeze again: nothing to take
}
