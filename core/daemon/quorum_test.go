package daemon

import (
	"testing"

	"github.com/vigil-ha/vigil/core/cluster"
)

func TestQuorum_MajorityOfVotesWithArbitrators(t *testing.T) {
	for _, tc := range []struct {
		name        string
		nodes, arbs int
		alive       int
		arbsReached int32
		want        bool
	}{
		{"two nodes alone always orchestrate", 2, 0, 1, 0, true},
		{"three nodes, two alive: majority", 3, 0, 2, 0, true},
		{"three nodes, one alive: isolated minority", 3, 0, 1, 0, false},
		{"four nodes split two-two: no majority", 4, 0, 2, 0, false},
		{"four nodes split two-two, the arbitrator breaks the tie", 4, 1, 2, 1, true},
		{"two nodes and an arbitrator: a lone node reaching it has quorum", 2, 1, 1, 1, true},
		{"two nodes and an arbitrator: a lone node without it has none", 2, 1, 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &cluster.NodeConfig{}
			for i := range tc.nodes {
				n.Nodes = append(n.Nodes, string(rune('a'+i)))
			}
			for range tc.arbs {
				n.Arbitrators = append(n.Arbitrators, "127.0.0.1:1")
			}
			d := &Daemon{node: n}
			d.arbitratorVotes.Store(tc.arbsReached)
			if got := d.quorum(tc.alive); got != tc.want {
				t.Fatalf("quorum = %v, want %v", got, tc.want)
			}
		})
	}
}
