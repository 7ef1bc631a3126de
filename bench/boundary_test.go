package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/plugin"
)

// BenchmarkPluginBoundary times a status call whose driver does almost
// nothing (one stat): what the plugin boundary itself costs.
func BenchmarkPluginBoundary(b *testing.B) {
	dir := b.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "vigil-plugin-test"), "../core/plugin/testdata/testplugin").CombinedOutput(); err != nil {
		b.Fatalf("build test plugin: %v\n%s", err, out)
	}
	host := plugin.New(plugin.Config{Dir: dir, Logger: hclog.NewNullLogger()})
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
