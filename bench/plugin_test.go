package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
// answer down; a device mounted nowhere also has every mount namespace on
// the host scanned for it) made through the plugin process with the same
// driver code called in-process: the difference is the plugin boundary.
// The mounted case (an ext4 on a loop device: up, no scan; root only) is
// the cheap call, where the boundary's share shows.
func BenchmarkFSStatus(b *testing.B) {
	benchFSStatus(b, fsKeywords, sdk.StatusDown)
	b.Run("mounted", func(b *testing.B) {
		kw, err := loopMount(b)
		if err != nil {
			b.Skip(err)
		}
		benchFSStatus(b, kw, sdk.StatusUp)
	})
}

func benchFSStatus(b *testing.B, kw map[string]string, want sdk.Status) {
	ctx := context.Background()
	b.Run("in-process", func(b *testing.B) {
		d := fs.New(fs.Config{})
		r := sdk.Resource{RID: "fs#1", Type: "fs", Keywords: kw, Service: sdk.Service{Name: "bench"}}
		b.ResetTimer()
		for range b.N {
			if st := d.Status(ctx, r); st.Status != want {
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
		r := plugin.Request{RID: "fs#1", Type: "fs", Keywords: kw, Service: plugin.ServiceEnv{Name: "bench"}}
		d.Status(ctx, r) // the plugin is started on first use: not timed
		b.ResetTimer()
		for range b.N {
			if st := d.Status(ctx, r); st.Status.String() != want.String() {
				b.Fatalf("status %v %v", st.Status, st.Log)
			}
		}
	})
}

// loopMount makes a small ext4 on a loop device, mounted on a directory
// of its own, and returns fs keywords naming it; all undone at cleanup.
func loopMount(b *testing.B) (map[string]string, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root: cannot make a loop device")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not installed", tool)
		}
	}
	dir := b.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return nil, err
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		return nil, err
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		return nil, fmt.Errorf("losetup: %w", err)
	}
	dev := strings.TrimSpace(string(out))
	b.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mkfs.ext4", "-q", dev).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-t", "ext4", dev, mnt).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount: %v: %s", err, out)
	}
	b.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return map[string]string{"dev": dev, "mnt": mnt, "type": "ext4", "mnt_opt": "rw"}, nil
}
