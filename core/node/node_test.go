package node

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
)

func TestRecover_WhatAFormerLifeRecorded(t *testing.T) {
	cases := []struct {
		state    string
		rebooted bool
		want     string
	}{
		{"starting", false, "interrupted"},
		{"starting", true, ""},
		{"stopping", false, "interrupted"},
		{"stopping", true, ""},
		{"interrupted", false, "interrupted"},
		{"interrupted", true, ""},
		{"ready", false, ""},
		{"started", false, "started"},
		{"started", true, ""},
		{"stopped", false, "stopped"},
		{"stopped", true, ""},
		{"start failed", true, "start failed"},
		{"stop failed", true, "stop failed"},
		{"failed", true, "failed"},
		{"", false, ""},
	}
	for _, tc := range cases {
		if got := Recover(tc.state, tc.rebooted); got != tc.want {
			t.Errorf("Recover(%q, rebooted=%v) = %q, want %q", tc.state, tc.rebooted, got, tc.want)
		}
	}
}

func TestInstance_UnreadableResourceMakesItActive(t *testing.T) {
	rs := []status.Resource{
		{RID: "fs#1", Group: status.GroupFS, Status: status.Undef},
		{RID: "container#1", Group: "container", Status: status.Down},
	}
	st := status.Summarize("svc", rs)
	if st.Avail != status.Down {
		t.Fatalf("the merge reads %s; this test is about undef being neutral in it", st.Avail)
	}
	for _, state := range []string{"", "stopped", "stop failed", "start failed"} {
		inst := Instance(st, state, true)
		if !inst.Unreadable {
			t.Fatalf("state %q: a crashed fs plugin beside a stopped container reads as free", state)
		}
	}
	// Optional or disabled resources do not count.
	rs[0].Optional = true
	if Instance(status.Summarize("svc", rs), "", true).Unreadable {
		t.Fatal("an optional undef resource made the instance unreadable")
	}
}

func TestUnheard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	if Unheard(time.Time{}, t0, time.Second) {
		t.Fatal("unheard before the first publication")
	}
	if Unheard(t0, t0.Add(900*time.Millisecond), time.Second) {
		t.Fatal("unheard inside the timeout")
	}
	if !Unheard(t0, t0.Add(1100*time.Millisecond), time.Second) {
		t.Fatal("not unheard past the timeout")
	}
}

func TestBuildView_FencedAndDelays(t *testing.T) {
	peers := map[string]*cluster.Peer{"n1": {Name: "n1", State: cluster.Unknown}}
	v := BuildView(ViewInput{Local: "n2", LocalState: cluster.Ready, Peers: peers,
		Stonith: map[string]time.Duration{"n1": 3 * time.Second}, Fenced: map[string]bool{"n1": true},
		Services: []Service{{Name: "svc", Keywords: map[string]string{"nodes": "n1 n2", "orchestrate": "ha"}, Evaluated: true}}})
	n1 := v.Nodes["n1"]
	if n1.State != orchestrator.NodeUnknown || !n1.Fenced || !n1.Stonith || n1.FenceDelay != 3*time.Second {
		t.Fatalf("n1 = %+v", n1)
	}
	if v.Services[0].Instances["n2"].State != orchestrator.Idle {
		t.Fatalf("local instance %+v", v.Services[0].Instances["n2"])
	}
}

func TestSide_CountsOnlyPeersThatSeeThisNodeToo(t *testing.T) {
	peers := map[string]*cluster.Peer{
		"b": {State: cluster.Ready, Dataset: &cluster.Dataset{Sees: []string{"a"}}},
		"c": {State: cluster.Ready, Dataset: &cluster.Dataset{Sees: []string{"b"}}}, // heard one way only
		"d": {State: cluster.Lost, Dataset: &cluster.Dataset{Sees: []string{"a"}}},
		"e": {State: cluster.Joining},
	}
	if got := Side("a", peers); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Side = %v, want [a b]", got)
	}
}

func TestFenceDue_OnlyWhileLostAndWithQuorum(t *testing.T) {
	lost := &cluster.Peer{State: cluster.Lost}
	cases := []struct {
		name          string
		quorum, known bool
		p             *cluster.Peer
		want          bool
	}{
		{"lost, quorum", true, true, lost, true},
		{"lost, quorum not decided yet", false, false, lost, true},
		{"lost, this side became the minority", false, true, lost, false},
		{"never heard, quorum", true, true, &cluster.Peer{State: cluster.Unknown}, true},
		{"heard again", true, true, &cluster.Peer{State: cluster.Ready}, false},
		{"not a peer", true, true, nil, false},
	}
	for _, tc := range cases {
		if got := FenceDue(tc.quorum, tc.known, tc.p); got != tc.want {
			t.Errorf("%s: FenceDue = %v, want %v", tc.name, got, tc.want)
		}
	}
}
