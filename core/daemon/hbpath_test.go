package daemon

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// TestPublish_GenerationsLeaveInOrder: publications from several
// goroutines (the publish loop, actions, config changes) reach the
// heartbeats in the order of their generations; an older dataset with a
// newer generation would make peers drop the newer one as a replay.
func TestPublish_GenerationsLeaveInOrder(t *testing.T) {
	d := testDaemon(t, "a")
	d.svcs = map[string]*service{}
	ch := make(chan []byte, 1)
	d.hbChans = []chan []byte{ch}
	done := make(chan struct{})
	var gens []uint64
	go func() {
		defer close(done)
		for raw := range ch {
			env, err := cluster.Open(d.view.Key(), raw)
			if err != nil {
				t.Error(err)
				return
			}
			gens = append(gens, env.Gen)
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				d.publish()
			}
		}()
	}
	wg.Wait()
	close(ch)
	<-done
	for i := 1; i < len(gens); i++ {
		if gens[i] <= gens[i-1] {
			t.Fatalf("generation %d left after %d (of %d received)", gens[i], gens[i-1], len(gens))
		}
	}
}

// TestOnHeartbeat_NeverWorksOnTheHeartbeatPath: a peer's dataset offering
// a newer config is only noted in the heartbeat callback; the parse (a
// plugin call), the file write and the expectations wait for the sync
// loop. The daemon here has no engine at all: a callback that parsed
// would crash.
func TestOnHeartbeat_NeverWorksOnTheHeartbeatPath(t *testing.T) {
	d := testDaemon(t, "a")
	d.svcs = map[string]*service{}
	d.syncPending, d.syncWake = map[string]bool{}, make(chan struct{}, 1)
	d.metrics = newMetrics(d)
	peer := testDaemon(t, "b")
	ds := cluster.Dataset{Node: "b", State: cluster.Ready, Services: map[string]*cluster.ServiceInstance{
		"web": {Nodes: []string{"a", "b"}, Config: cluster.ConfigVersion{Version: 9, Sum: "x", Content: []byte("[DEFAULT]\nnodes = a b\n")},
			Expect: cluster.Expectation{Value: "stopped", Version: 3, By: "b"}},
	}}
	payload, _ := json.Marshal(ds)
	raw, err := cluster.Seal(peer.view.Key(), &cluster.Envelope{Cluster: "c1", Node: "b", Boot: 1, Gen: 1, Time: time.Now().UnixNano(), Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	d.onHeartbeat("hb#1", sdk.HeartbeatEvent{Kind: sdk.EventBeat, Peer: "b", Dataset: raw})
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	if !d.syncPending["b"] {
		t.Fatal("the new dataset was not handed to the sync loop")
	}
}
