package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/plugin"
	"github.com/vigil-ha/vigil/plugins/fs"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// fsPluginDir returns a plugin directory holding vigil-plugin-fs: the one
// `make` built (VIGIL_BIN_DIR), else a fresh build.
func fsPluginDir(b *testing.B) string {
	dir := b.TempDir()
	src := ""
	if bin := os.Getenv("VIGIL_BIN_DIR"); bin != "" {
		src = filepath.Join(bin, "vigil-plugin-fs")
	}
	dst := filepath.Join(dir, "vigil-plugin-fs")
	if src != "" {
		if err := os.Symlink(src, dst); err != nil {
			b.Fatal(err)
		}
		return dir
	}
	if out, err := exec.Command("go", "build", "-o", dst, "../plugins/fs/cmd/vigil-plugin-fs").CombinedOutput(); err != nil {
		b.Fatalf("build fs plugin: %v\n%s", err, out)
	}
	return dir
}

var fsKeywords = map[string]string{"dev": "/dev/vigil-bench-none", "mnt": "/nonexistent/vigil-bench", "type": "ext4", "mnt_opt": "rw"}

// BenchmarkFSStatus compares one fs status call (parse the mount table,
// answer down) made through the plugin process with the same driver code
// called in-process: the difference is the plugin boundary.
func BenchmarkFSStatus(b *testing.B) {
	ctx := context.Background()
	b.Run("in-process", func(b *testing.B) {
		d := fs.New(fs.Config{})
		r := sdk.Resource{RID: "fs#1", Type: "fs", Keywords: fsKeywords, Service: sdk.Service{Name: "bench"}}
		b.ResetTimer()
		for range b.N {
			if st := d.Status(ctx, r); st.Status != sdk.StatusDown {
				b.Fatalf("status %v %v", st.Status, st.Log)
			}
		}
	})
	b.Run("plugin", func(b *testing.B) {
		host := plugin.New(plugin.Config{Dir: fsPluginDir(b), Logger: hclog.NewNullLogger()})
		defer host.Close()
		d, err := host.Driver(ctx, "fs")
		if err != nil {
			b.Fatal(err)
		}
		r := plugin.Request{RID: "fs#1", Type: "fs", Keywords: fsKeywords, Service: plugin.ServiceEnv{Name: "bench"}}
		d.Status(ctx, r) // the plugin is started on first use: not timed
		b.ResetTimer()
		for range b.N {
			if st := d.Status(ctx, r); st.Status.String() != "down" {
				b.Fatalf("status %v %v", st.Status, st.Log)
			}
		}
	})
}
