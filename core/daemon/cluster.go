package daemon

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

type hbEvent = sdk.HeartbeatEvent

func hbConfig(n *cluster.NodeConfig, hb cluster.HeartbeatConfig) sdk.HeartbeatConfig {
	return sdk.HeartbeatConfig{
		Name: hb.Name, Type: hb.Type, Cluster: n.Cluster, LocalNode: n.Local, Nodes: n.Nodes,
		Interval: hb.Interval, Timeout: hb.Timeout, Keywords: hb.Keywords, Key: n.Key(hb.Name),
	}
}

// onHeartbeat takes what a heartbeat plugin reports.
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
				d.emit(api.Event{Kind: "peer", Node: ev.Peer, Message: "found"})
			case "dataset":
				d.syncConfigs(ev.Peer)
				d.adoptExpectations(ev.Peer)
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
func (d *Daemon) publishInterval() time.Duration {
	return d.shortest(cluster.DefaultInterval, func(hb cluster.HeartbeatConfig) time.Duration { return hb.Interval })
}

// tickInterval is how often peers are judged: a twentieth of the shortest
// heartbeat timeout (between 10 and 100 ms), so that the judgement adds
// little to the timeout itself.
func (d *Daemon) tickInterval() time.Duration {
	to := d.shortest(cluster.DefaultTimeout, func(hb cluster.HeartbeatConfig) time.Duration { return hb.Timeout })
	return min(max(to/20, 10*time.Millisecond), 100*time.Millisecond)
}

// shortest is the smallest of a heartbeat setting, or def without any
// heartbeat.
func (d *Daemon) shortest(def time.Duration, of func(cluster.HeartbeatConfig) time.Duration) time.Duration {
	for i, hb := range d.node.Heartbeats {
		if i == 0 || of(hb) < def {
			def = of(hb)
		}
	}
	return def
}

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

// publish seals the current dataset and hands it to every heartbeat.
func (d *Daemon) publish() {
	payload, err := json.Marshal(d.dataset())
	if err != nil {
		d.log.Error("encode dataset", "error", err)
		return
	}
	raw, err := cluster.Seal(d.view.Key(), &cluster.Envelope{
		Cluster: d.node.Cluster, Node: d.node.Local, Boot: d.boot, Gen: d.gen.Add(1),
		Time: time.Now().UnixNano(), Payload: payload,
	})
	if err != nil {
		d.log.Error("seal dataset", "error", err)
		return
	}
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
	ds := &cluster.Dataset{Node: d.node.Local, State: d.state, Services: map[string]*cluster.ServiceInstance{}}
	for name, s := range d.svcs {
		ds.Services[name] = d.instanceLocked(s)
	}
	return ds
}

func (d *Daemon) instanceLocked(s *service) *cluster.ServiceInstance {
	inst := &cluster.ServiceInstance{Status: s.status, Frozen: s.persist.Expect.Value == "frozen", Config: s.version,
		Updated: s.statusAt, State: s.persist.State, Expect: s.persist.Expect}
	if s.conf != nil {
		inst.Nodes = strings.Fields(s.conf.Keywords["nodes"])
		inst.Type = s.conf.Keywords["service_type"]
	}
	return inst
}
