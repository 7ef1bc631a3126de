package bench

import (
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/e2e/clusterlab"
)

// BenchmarkPeerLost times, over LOST_RUNS runs (default 20), how long after
// a peer's vigild is killed (SIGKILL) the other node marks it lost, with
// both heartbeats at interval 0.2 s and timeout 1 s. Needs root. Reports
// the median and the max.
func BenchmarkPeerLost(b *testing.B) {
	clusterlab.RequireRoot(b)
	runs := 20
	if v, err := strconv.Atoi(os.Getenv("LOST_RUNS")); err == nil && v > 0 {
		runs = v
	}
	for range b.N {
		l := clusterlab.New(b, 2, 200*time.Millisecond, time.Second)
		l.StartAll()
		n1, n2 := l.Nodes[0], l.Nodes[1]
		var took []time.Duration
		for range runs {
			clusterlab.WaitFor(b, "n1 to see n2 ready", 30*time.Second, func() bool { return n1.Status(b).Node["n2"].State == cluster.Ready })
			time.Sleep(500 * time.Millisecond)
			l.Kill(n2, syscall.SIGKILL)
			took = append(took, clusterlab.WaitFor(b, "n1 to mark n2 lost", 10*time.Second, func() bool {
				return n1.Status(b).Node["n2"].State == cluster.Lost
			}))
			l.Start(n2)
		}
		slices.Sort(took)
		b.ReportMetric(took[len(took)/2].Seconds(), "s-lost-median")
		b.ReportMetric(took[len(took)-1].Seconds(), "s-lost-max")
	}
}
