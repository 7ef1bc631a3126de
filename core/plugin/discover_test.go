package plugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// A leftover copy (vigil-plugin-fs.old, .dpkg-old, .bak) once made every
// lookup fail with "served by both".
func TestHost_IgnoresNamesWithADot(t *testing.T) {
	dir := t.TempDir()
	bin := buildPlugin(t, dir, "testplugin", "test")
	for _, name := range []string{".old", ".dpkg-old", ".bak~"} {
		copyFile(t, bin, bin+name, 0o755)
	}
	h := newTestHost(t, dir)
	if _, err := h.Driver(context.Background(), "app.test"); err != nil {
		t.Fatalf("Driver: %v", err)
	}
	names, err := h.Discover()
	if err != nil || len(names) != 1 || names[0] != BinaryPrefix+"test" {
		t.Fatalf("Discover = %q, %v; want only %stest", names, err, BinaryPrefix)
	}
}

func TestHost_RefusesPluginsOthersCanWrite(t *testing.T) {
	root := os.Geteuid() == 0
	src := buildPlugin(t, t.TempDir(), "testplugin", "test")
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int // -1: the test's own user
		want  string
	}{
		{"group writable", 0o775, -1, "mode 0775"},
		{"world writable", 0o757, -1, "mode 0757"},
		{"owned by another user", 0o755, 65534, "owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 && !root {
				t.Skip("giving a file to another user needs root")
			}
			dir := t.TempDir()
			bin := filepath.Join(dir, BinaryPrefix+"test")
			copyFile(t, src, bin, tc.mode)
			if tc.owner >= 0 {
				if err := os.Chown(bin, tc.owner, -1); err != nil {
					t.Fatal(err)
				}
			}
			h := newTestHost(t, dir)
			infos, errs, err := h.Plugins(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			perr := errs[BinaryPrefix+"test"]
			if len(infos) != 0 || !errors.Is(perr, ErrInsecurePlugin) {
				t.Fatalf("a plugin (%s) was started: infos %+v, error %v", tc.want, infos, perr)
			}
			for _, want := range []string{bin, tc.want, "chmod go-w " + bin, "chown root " + bin} {
				if !strings.Contains(perr.Error(), want) {
					t.Errorf("error %q does not say %q", perr, want)
				}
			}
			if pid := h.PIDs()[BinaryPrefix+"test"]; pid != 0 {
				t.Errorf("the refused plugin runs as pid %d", pid)
			}
			if _, err := h.Driver(context.Background(), "app.test"); !errors.Is(err, ErrUnknownType) {
				t.Errorf("Driver of the refused plugin's type = %v, want ErrUnknownType", err)
			}
		})
	}
}

func TestHost_RefusesAPluginDirectoryOthersCanWrite(t *testing.T) {
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int
		want  string
	}{
		{"world writable", 0o777, -1, "mode 0777"},
		{"group writable", 0o770, -1, "mode 0770"},
		{"owned by another user", 0o755, 65534, "owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 && !root {
				t.Skip("giving a directory to another user needs root")
			}
			dir := filepath.Join(t.TempDir(), "plugins")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			buildPlugin(t, dir, "testplugin", "test")
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.owner >= 0 {
				if err := os.Chown(dir, tc.owner, -1); err != nil {
					t.Fatal(err)
				}
			}
			h := newTestHost(t, dir)
			_, err := h.Driver(context.Background(), "app.test")
			if !errors.Is(err, ErrInsecurePlugin) {
				t.Fatalf("Driver from a directory (%s) = %v, want ErrInsecurePlugin", tc.want, err)
			}
			for _, want := range []string{dir, tc.want, "chmod go-w " + dir} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if len(h.PIDs()) != 0 {
				t.Errorf("plugins started from an unsafe directory: %v", h.PIDs())
			}
		})
	}
}

// TestHost_HungPluginDoesNotBlockLookupsOfOthers starts a directory holding
// a working plugin and one that never completes its handshake: lookups of
// the working plugin's type must answer while the other is still starting.
func TestHost_HungPluginDoesNotBlockLookupsOfOthers(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "testplugin", "test")
	buildPlugin(t, dir, "hung", "hung")
	// Longer than the test may take: the hung start is still under way
	// whenever the lookups run, and Close must end it.
	h := New(Config{Dir: dir, StartTimeout: 10 * time.Minute, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})})
	t.Cleanup(h.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type answer struct {
		what string
		err  error
	}
	got := make(chan answer, 3)
	go func() {
		d, err := h.Driver(ctx, "app.test")
		if err == nil {
			d.Status(ctx, testRequest(filepath.Join(t.TempDir(), "m"), nil))
		}
		got <- answer{"driver", err}
	}()
	go func() { _, err := h.Stonith(ctx, "app.test"); got <- answer{"stonith lookup", err} }()
	go func() { _, err := h.Heartbeat(ctx, "app.test"); got <- answer{"heartbeat lookup", err} }()
	for range 3 {
		a := <-got
		if a.err != nil {
			t.Fatalf("%s: %v", a.what, a.err)
		}
	}
	h.mu.Lock()
	hung := h.plugins[BinaryPrefix+"hung"]
	h.mu.Unlock()
	if hung == nil {
		t.Fatal("the hung plugin was not discovered")
	}
	if _, err := hung.cachedInfo(); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("the hung plugin's start ended (%v): the test no longer shows lookups answering during it", err)
	}
	// A lookup of a type nobody serves must wait for every plugin; it
	// ends with the caller's context.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := h.Driver(short, "app.none"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lookup of an unknown type during a hung start = %v, want the caller's deadline", err)
	}
}

// pluginSockets reports whether names are one plugin's sockets: go-plugin's
// gRPC one and the SDK's status channel.
func pluginSockets(names []string) bool {
	var grpc, channel int
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "plugin"):
			grpc++
		case strings.HasPrefix(n, "status"):
			channel++
		}
	}
	return len(names) == 2 && grpc == 1 && channel == 1
}

// go-plugin's server puts its unix socket in /tmp unless told otherwise,
// and the status channel goes where go-plugin's socket does.
func TestHost_PluginSocketsLiveInAPrivateDirectory(t *testing.T) {
	plugins := t.TempDir()
	buildPlugin(t, plugins, "testplugin", "test")
	sockets := func(t *testing.T, dir string) []string {
		t.Helper()
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("socket directory %s is mode %04o, want 0700", dir, fi.Mode().Perm())
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			if e.Type()&os.ModeSocket != 0 {
				out = append(out, e.Name())
			}
		}
		return out
	}
	t.Run("configured directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "plugins")
		h := New(Config{Dir: plugins, SocketDir: dir, Logger: hclog.NewNullLogger()})
		t.Cleanup(h.Close)
		if _, err := h.Driver(context.Background(), "app.test"); err != nil {
			t.Fatal(err)
		}
		if got := sockets(t, dir); !pluginSockets(got) {
			t.Fatalf("sockets in %s: %q, want the plugin's two (gRPC and status channel)", dir, got)
		}
		// A plugin stopped by Close leaves none behind.
		h.Close()
		if got := sockets(t, dir); len(got) != 0 {
			t.Errorf("sockets left in %s after Close: %q", dir, got)
		}
	})
	t.Run("default directory", func(t *testing.T) {
		h := New(Config{Dir: plugins, Logger: hclog.NewNullLogger()})
		if _, err := h.Driver(context.Background(), "app.test"); err != nil {
			h.Close()
			t.Fatal(err)
		}
		h.mu.Lock()
		dir := h.socketDir
		h.mu.Unlock()
		if got := sockets(t, dir); !pluginSockets(got) {
			t.Errorf("sockets in %s: %q, want the plugin's two (gRPC and status channel)", dir, got)
		}
		h.Close()
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("Close left %s: %v", dir, err)
		}
	})
	t.Run("directory others can read is refused", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		h := New(Config{Dir: plugins, SocketDir: dir, Logger: hclog.NewNullLogger()})
		t.Cleanup(h.Close)
		d, err := h.Driver(context.Background(), "app.test")
		if err == nil {
			st := d.Status(context.Background(), testRequest(filepath.Join(dir, "m"), nil))
			t.Fatalf("a plugin started with its socket in a 0755 directory: %+v", st)
		}
		if !strings.Contains(err.Error(), "chmod 700 "+dir) {
			t.Errorf("error %q does not give the fix", err)
		}
	})
}
