package bench

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/plugin"
	"github.com/vigil-ha/vigil/core/plugin/plugintest"
)

// BenchmarkPluginBoundary times a status call whose driver does almost
// nothing (one stat): what the plugin boundary itself costs.
func BenchmarkPluginBoundary(b *testing.B) {
	host := plugin.New(plugin.Config{Dir: plugintest.Dir(b), Logger: hclog.NewNullLogger()})
	defer host.Close()
	ctx := context.Background()
	d, err := host.Driver(ctx, "app.test")
	if err != nil {
		b.Fatal(err)
	}
	r := plugin.Request{RID: "app#1", Type: "app.test", Keywords: map[string]string{"file": "/nonexistent"}, Service: plugin.ServiceEnv{Name: "bench"}}
	d.Status(ctx, r)
	b.ResetTimer()
	for range b.N {
		d.Status(ctx, r)
	}
}
