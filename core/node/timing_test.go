package node

import (
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
)

func TestQuorum_MajorityOfVotesWithArbitrators(t *testing.T) {
	for _, tc := range []struct {
		name        string
		nodes, arbs int
		alive       int
		votes       int
		want        bool
	}{
		{"two nodes alone always orchestrate", 2, 0, 1, 0, true},
		{"three nodes, two alive: majority", 3, 0, 2, 0, true},
		{"three nodes, one alive: isolated minority", 3, 0, 1, 0, false},
		{"four nodes split two-two: no majority", 4, 0, 2, 0, false},
		{"four nodes split two-two, the arbitrator breaks the tie", 4, 1, 2, 1, true},
		{"two nodes and an arbitrator: a lone node holding its vote has quorum", 2, 1, 1, 1, true},
		{"two nodes and an arbitrator: a lone node without its vote has none", 2, 1, 1, 0, false},
		{"two nodes and an arbitrator: both nodes together need no vote", 2, 1, 2, 0, true},
		{"five nodes and two arbitrators split three-two: the three win alone", 5, 2, 3, 0, false},
		{"five nodes and two arbitrators split three-two: the three with one vote", 5, 2, 3, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HasQuorum(tc.nodes, tc.arbs, tc.alive, tc.votes); got != tc.want {
				t.Fatalf("HasQuorum(%d nodes, %d arbitrators, %d alive, %d votes) = %v, want %v",
					tc.nodes, tc.arbs, tc.alive, tc.votes, got, tc.want)
			}
		})
	}
}

func TestSelfStopWait_OnlyWhereQuorumIsAMajority(t *testing.T) {
	for _, tc := range []struct {
		name        string
		nodes, arbs int
		want        time.Duration
	}{
		{"two nodes without an arbitrator: both sides keep quorum, no wait", 2, 0, 0},
		{"two nodes and an arbitrator: three timeouts", 2, 1, 3 * time.Second},
		{"three nodes: three timeouts", 3, 0, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SelfStopWait(tc.nodes, tc.arbs, time.Second); got != tc.want {
				t.Fatalf("SelfStopWait(%d, %d, 1s) = %s, want %s", tc.nodes, tc.arbs, got, tc.want)
			}
		})
	}
}

func TestTimingsOf_ShortestAndLongestHeartbeat(t *testing.T) {
	got := TimingsOf([]cluster.HeartbeatConfig{
		{Interval: 200 * time.Millisecond, Timeout: time.Second},
		{Interval: time.Second, Timeout: 4 * time.Second},
	})
	want := Timings{Publish: 200 * time.Millisecond, Tick: 50 * time.Millisecond, Timeout: time.Second,
		ReadyWindow: 2500 * time.Millisecond, LongestTimeout: 4 * time.Second}
	if got != want {
		t.Fatalf("TimingsOf = %+v, want %+v", got, want)
	}
	if d := TimingsOf(nil); d.Publish != cluster.DefaultInterval || d.Timeout != cluster.DefaultTimeout {
		t.Fatalf("TimingsOf(nil) = %+v, want the defaults", d)
	}
}
