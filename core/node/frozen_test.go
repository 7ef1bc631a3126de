package node

import (
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
)

func TestBuildView_PeerFrozenByItsOperatorOrTheClusterFreeze(t *testing.T) {
	for _, tc := range []struct {
		name string
		ds   *cluster.Dataset
		want bool
	}{
		{"not frozen", &cluster.Dataset{Node: "n2", State: cluster.Ready}, false},
		{"node frozen", &cluster.Dataset{Node: "n2", State: cluster.Ready, Frozen: true}, true},
		{"cluster frozen", &cluster.Dataset{Node: "n2", State: cluster.Ready, ClusterFreeze: cluster.Expectation{Value: "frozen", Version: 1}}, true},
		{"no dataset yet", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := BuildView(ViewInput{Local: "n1", Now: time.Now(), LocalState: cluster.Ready,
				Peers: map[string]*cluster.Peer{"n2": {State: cluster.Ready, Dataset: tc.ds}}})
			if got := v.Nodes["n2"].Frozen; got != tc.want {
				t.Errorf("n2 frozen = %v, want %v", got, tc.want)
			}
		})
	}
}
