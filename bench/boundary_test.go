package bench

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/plugin"
	"github.com/vigil-ha/vigil/core/plugin/plugintest"
	"github.com/vigil-ha/vigil/core/status"
)

// boundaryDriver starts the test plugin and returns its driver and a
// request its status answers down to (one stat of a missing file).
func boundaryDriver(b *testing.B) (plugin.Driver, plugin.Request) {
	host := plugin.New(plugin.Config{Dir: plugintest.Dir(b), Logger: hclog.NewNullLogger()})
	b.Cleanup(host.Close)
	d, err := host.Driver(context.Background(), "app.test")
	if err != nil {
		b.Fatal(err)
	}
	r := plugin.Request{RID: "app#1", Type: "app.test", Keywords: map[string]string{"file": "/nonexistent"}, Service: plugin.ServiceEnv{Name: "bench"}}
	if st := d.Status(context.Background(), r); st.Status != status.Down {
		b.Fatalf("status %v %v", st.Status, st.Log)
	}
	return d, r
}

// BenchmarkPluginBoundary times a status call whose driver does almost
// nothing (one stat): what the plugin boundary itself costs.
func BenchmarkPluginBoundary(b *testing.B) {
	d, r := boundaryDriver(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if st := d.Status(ctx, r); st.Status != status.Down {
			b.Fatalf("status %v %v", st.Status, st.Log)
		}
	}
}

// BenchmarkPluginBoundaryParallel is the same call made from several
// goroutines at once, as a status refresh of many services makes it.
func BenchmarkPluginBoundaryParallel(b *testing.B) {
	d, r := boundaryDriver(b)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if st := d.Status(ctx, r); st.Status != status.Down {
				b.Errorf("status %v %v", st.Status, st.Log)
				return
			}
		}
	})
}
