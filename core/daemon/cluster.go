package daemon

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/node"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

type hbEvent = sdk.HeartbeatEvent

func hbConfig(n *cluster.NodeConfig, hb cluster.HeartbeatConfig) sdk.HeartbeatConfig {
	return sdk.HeartbeatConfig{
		Name: hb.Name, Type: hb.Type, Cluster: n.Cluster, LocalNode: n.Local, Nodes: n.Nodes,
		Interval: hb.Interval, Timeout: hb.Timeout, Keywords: hb.Keywords, Key: n.Key(hb.Name),
	}
}

// onHeartbeat takes what a heartbeat plugin reports. It runs inside the
// plugin's emit, on the heartbeat path: it must never block (no plugin
// call, no file write, no wait on a lock held across either), or beats
// starve past the timeout and a healthy node is declared lost. A new
// dataset only marks its peer for the sync loop (peerSyncLoop).
func (d *Daemon) onHeartbeat(hb string, e hbEvent) {
	switch e.Kind {
	case sdk.EventBeat:
		events, err := d.view.Beat(hb, e.Peer, e.Dataset, time.Now())
		if err != nil {
			d.metrics.reject(hb)
			d.log.Warn("dropped a cluster message", "hb", hb, "error", err)
			return
		}
		for _, ev := range events {
			switch ev.Kind {
			case "found":
				d.log.Info("peer heard", "peer", ev.Peer, "hb", hb)
				go d.emit(api.Event{Kind: "peer", Node: ev.Peer, Message: "found"})
			case "dataset":
				d.markPeerSync(ev.Peer)
			}
		}
	case sdk.EventStale:
		d.view.Stale(hb, e.Peer, e.Reason)
	case sdk.EventReject:
		d.view.Reject(hb, e.Reason)
		d.metrics.reject(hb)
		d.log.Warn("heartbeat rejected a message", "hb", hb, "peer", e.Peer, "reason", e.Reason)
	}
}

// publishInterval is the shortest heartbeat interval: datasets are sealed
// afresh that often, so a replayed copy never passes for a live node.
func (d *Daemon) publishInterval() time.Duration { return node.TimingsOf(d.node.Heartbeats).Publish }

// tickInterval is how often peers are judged: a twentieth of the shortest
// heartbeat timeout (between 10 and 100 ms), so that the judgement adds
// little to the timeout itself.
func (d *Daemon) tickInterval() time.Duration { return node.TimingsOf(d.node.Heartbeats).Tick }

func (d *Daemon) publishLoop(ctx context.Context) {
	if len(d.hbChans) == 0 {
		return
	}
	t := time.NewTicker(d.publishInterval())
	defer t.Stop()
	for {
		d.publish()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// markPeerSync notes that peer published a new dataset, for the sync
// loop; it never blocks.
func (d *Daemon) markPeerSync(peer string) {
	d.syncMu.Lock()
	d.syncPending[peer] = true
	d.syncMu.Unlock()
	select {
	case d.syncWake <- struct{}{}:
	default:
	}
}

// peerSyncLoop takes, off the heartbeat path, what peers' new datasets
// carry for this node: newer service configs and operator expectations.
func (d *Daemon) peerSyncLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.syncWake:
		}
		d.syncMu.Lock()
		peers := make([]string, 0, len(d.syncPending))
		for p := range d.syncPending {
			peers = append(peers, p)
		}
		clear(d.syncPending)
		d.syncMu.Unlock()
		for _, p := range peers {
			d.syncConfigs(p)
			d.adoptExpectations(p)
		}
	}
}

// heartbeatTimeout is the shortest heartbeat timeout: a daemon silent
// longer than this may have been declared lost by its peers.
func (d *Daemon) heartbeatTimeout() time.Duration { return node.TimingsOf(d.node.Heartbeats).Timeout }

// lastPublished is when this daemon last handed a dataset to its
// heartbeats (zero before the first, or without heartbeats).
func (d *Daemon) lastPublished() time.Time {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	return d.pubAt
}

// publish seals the current dataset and hands it to every heartbeat. One
// publication at a time, the generation taken with the snapshot it
// numbers: an older dataset never carries a newer generation (peers would
// drop the newer one as a replay).
func (d *Daemon) publish() {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	payload, err := json.Marshal(d.dataset())
	if err != nil {
		d.log.Error("encode dataset", "error", err)
		return
	}
	d.gen++
	now := time.Now()
	raw, err := cluster.Seal(d.view.Key(), &cluster.Envelope{
		Cluster: d.node.Cluster, Node: d.node.Local, Boot: d.boot, Gen: d.gen,
		Time: now.UnixNano(), Payload: payload,
	})
	if err != nil {
		d.log.Error("seal dataset", "error", err)
		return
	}
	d.pubAt = now
	for _, ch := range d.hbChans {
		select { // latest wins
		case <-ch:
		default:
		}
		ch <- raw
	}
}

// dataset is what this node publishes.
func (d *Daemon) dataset() *cluster.Dataset {
	d.mu.Lock()
	defer d.mu.Unlock()
	sees := node.Sees(d.view.Snapshot().Peers)
	ds := &cluster.Dataset{Node: d.node.Local, State: d.state, Services: map[string]*cluster.ServiceInstance{}, Sync: d.syncAddrs, Sees: sees, ClusterConf: d.node.Sum}
	for name, s := range d.svcs {
		ds.Services[name] = d.instanceLocked(s)
	}
	ds.Frozen, ds.ClusterFreeze = d.publishedMaintenance()
	return ds
}

func (d *Daemon) instanceLocked(s *service) *cluster.ServiceInstance {
	inst := &cluster.ServiceInstance{Status: withState(s.status, s.name, s.persist), Frozen: s.persist.Expect.Value == "frozen", Config: s.version,
		Updated: s.statusAt, State: s.persist.State, Expect: s.persist.Expect, Restarts: d.restartCounts(s.name)}
	if s.conf != nil {
		inst.Nodes = strings.Fields(s.conf.Keywords["nodes"])
		inst.Type = s.conf.Keywords["service_type"]
	}
	return inst
}
