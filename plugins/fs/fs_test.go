package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

func TestParseMountinfoLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want mount
	}{
		{
			name: "plain",
			line: `36 35 98:0 / /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`,
			want: mount{ID: 36, ParentID: 35, Major: 98, Minor: 0, Root: "/", Point: "/mnt2", FSType: "ext3", Source: "/dev/root"},
		},
		{
			name: "no optional fields, escaped space",
			line: `120 26 7:3 / /tmp/a\040b rw,relatime - ext4 /dev/loop3 rw`,
			want: mount{ID: 120, ParentID: 26, Major: 7, Minor: 3, Root: "/", Point: "/tmp/a b", FSType: "ext4", Source: "/dev/loop3"},
		},
		{
			name: "several optional fields",
			line: `50 26 0:45 /sub /data rw shared:7 master:2 - tmpfs tmpfs rw`,
			want: mount{ID: 50, ParentID: 26, Major: 0, Minor: 45, Root: "/sub", Point: "/data", FSType: "tmpfs", Source: "tmpfs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountinfoLine(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := parseMountinfoLine("1 2 3"); err == nil {
		t.Error("short line: want an error")
	}
}

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		in      string
		flags   uintptr
		data    string
		wantErr bool
	}{
		{in: "", flags: 0},
		{in: "defaults", flags: 0},
		{in: "rw", flags: 0},
		{in: "ro,noatime", flags: unix.MS_RDONLY | unix.MS_NOATIME},
		{in: "ro,rw", flags: 0},
		{in: "nodev,nosuid,noexec,sync", flags: unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_SYNCHRONOUS},
		{in: "rw,data=ordered,errors=remount-ro,_netdev,x-systemd.automount", data: "data=ordered,errors=remount-ro"},
		{in: "bind", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseMountOptions(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.Flags != tt.flags || got.Data != tt.data {
				t.Errorf("got flags %#x data %q, want %#x %q", got.Flags, got.Data, tt.flags, tt.data)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	d := New(Config{})
	errs := d.Validate(context.Background(), res("", "relative/dir", "", "bind"))
	kws := map[string]bool{}
	for _, e := range errs {
		kws[e.Keyword] = true
	}
	for _, k := range []string{KwDev, KwMnt, KwType, KwMntOpt} {
		if !kws[k] {
			t.Errorf("no error for %s in %+v", k, errs)
		}
	}
	if errs := d.Validate(context.Background(), res("/dev/loop0", "/mnt/x", "ext4", "rw")); len(errs) != 0 {
		t.Errorf("valid resource: %+v", errs)
	}
}

func res(dev, mnt, typ, opt string) sdk.Resource {
	return sdk.Resource{RID: "fs#1", Type: "fs", Keywords: map[string]string{
		KwDev: dev, KwMnt: mnt, KwType: typ, KwMntOpt: opt,
	}}
}

// requireRealFS skips unless the test can make and mount a filesystem.
func requireRealFS(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach loop devices and mount")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

// loopExt4 makes an ext4 filesystem on a fresh loop device, detached at
// cleanup.
func loopExt4(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		// The test may have failed with the device still mounted.
		if st, err := New(Config{}).inspect(spec{dev: dev, mnt: "/nonexistent"}); err == nil {
			for _, m := range st.elsewhere {
				_ = unix.Unmount(m.Point, unix.MNT_DETACH)
			}
		}
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", dev, err, out)
	}
	return dev
}

func mountedOn(t *testing.T, dev, mnt string) bool {
	t.Helper()
	st, err := New(Config{}).inspect(spec{dev: dev, mnt: mnt})
	if err != nil {
		t.Fatal(err)
	}
	return st.mounted
}

func TestDriver_MountStatusBusyUnmount(t *testing.T) {
	requireRealFS(t)
	ctx := context.Background()
	dev := loopExt4(t)
	base := t.TempDir()
	mnt := filepath.Join(base, "data", "mnt")
	r := res(dev, mnt, "ext4", "rw,noatime")
	d := New(Config{})
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })

	if st := d.Status(ctx, r); st.Status != sdk.StatusDown || st.Label != dev+"@"+mnt {
		t.Fatalf("before start: status %v label %q, want down %q", st.Status, st.Label, dev+"@"+mnt)
	}
	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("start: %v", err)
	}
	if !mountedOn(t, dev, mnt) {
		t.Fatal("start returned but the device is not mounted on mnt")
	}
	log, err := d.Start(ctx, r)
	if err != nil || len(log) == 0 || !strings.Contains(log[0], "already mounted") {
		t.Fatalf("second start: log %q err %v, want an already-mounted no-op", log, err)
	}
	if st := d.Status(ctx, r); st.Status != sdk.StatusUp {
		t.Fatalf("status after start: %v %q", st.Status, st.Log)
	}

	t.Run("RefusesSameDeviceThroughSymlinkOnAnotherMountPoint", func(t *testing.T) {
		link := filepath.Join(base, "devlink")
		if err := os.Symlink(dev, link); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(base, "other")
		_, err := d.Start(ctx, res(link, other, "ext4", ""))
		if !errors.Is(err, ErrDevMountedElsewhere) || !strings.Contains(err.Error(), mnt) {
			t.Fatalf("err = %v, want ErrDevMountedElsewhere naming %s", err, mnt)
		}
		if mountedOn(t, dev, other) {
			t.Fatal("mounted anyway")
		}
		// Not up on other, but not free either: the device is live here.
		if st := d.Status(ctx, res(link, other, "ext4", "")); st.Status != sdk.StatusWarn || !strings.Contains(strings.Join(st.Log, "\n"), mnt) {
			t.Fatalf("status on the other mount point: %v %q, want warn naming %s", st.Status, st.Log, mnt)
		}
		if _, err := d.Stop(ctx, res(link, other, "ext4", "")); !errors.Is(err, ErrDevMountedElsewhere) || errors.Is(err, ErrMountedInOtherNamespace) {
			t.Fatalf("stop on the other mount point: err = %v, want ErrDevMountedElsewhere only", err)
		}
		if !mountedOn(t, dev, mnt) {
			t.Fatal("a stop of another mount point unmounted mnt")
		}
		// The same device through its symlink on the right mount point is up.
		if st := d.Status(ctx, res(link, mnt, "ext4", "")); st.Status != sdk.StatusUp {
			t.Fatalf("status via symlink: %v %q", st.Status, st.Log)
		}
	})

	t.Run("RefusesMountPointUsedByAnotherFilesystem", func(t *testing.T) {
		other := filepath.Join(base, "tmpfs")
		if err := os.Mkdir(other, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", other, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(other, unix.MNT_DETACH) })
		// Use a second device so the refusal is about the mount point.
		dev2 := loopExt4(t)
		_, err := d.Start(ctx, res(dev2, other, "ext4", ""))
		if !errors.Is(err, ErrMountPointInUse) {
			t.Fatalf("err = %v, want ErrMountPointInUse", err)
		}
		st := d.Status(ctx, res(dev2, other, "ext4", ""))
		if st.Status != sdk.StatusDown || len(st.Log) == 0 {
			t.Fatalf("status: %v %q, want down with a reason", st.Status, st.Log)
		}
	})

	t.Run("RefusesToUnmountBelowASubmount", func(t *testing.T) {
		sub := filepath.Join(mnt, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		_, err := d.Stop(ctx, r)
		_ = unix.Unmount(sub, 0)
		if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), sub) {
			t.Fatalf("err = %v, want ErrBusy naming %s", err, sub)
		}
	})

	t.Run("BusyUnmountListsHolderAndKillsNothing", func(t *testing.T) {
		holder := exec.Command("sleep", "60")
		holder.Dir = mnt
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		pid := holder.Process.Pid
		exited := make(chan struct{})
		go func() { _ = holder.Wait(); close(exited) }()
		stopHolder := func() {
			_ = holder.Process.Kill()
			<-exited
		}
		t.Cleanup(stopHolder)

		start := time.Now()
		_, err := d.Stop(ctx, r)
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("stop with a holder: err = %v, want ErrBusy", err)
		}
		if want := fmt.Sprintf("pid %d (sleep): cwd", pid); !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
		t.Logf("busy stop took %v: %v", time.Since(start), err)
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("holder %d is gone after stop: %v", pid, err)
		}
		if !mountedOn(t, dev, mnt) {
			t.Fatal("a failed stop unmounted anyway")
		}

		stopHolder()
		if _, err := d.Stop(ctx, r); err != nil {
			t.Fatalf("stop after the holder exited: %v", err)
		}
	})

	if mountedOn(t, dev, mnt) {
		t.Fatal("still mounted after stop")
	}
	if log, err := d.Stop(ctx, r); err != nil || len(log) == 0 || !strings.Contains(log[0], "not mounted") {
		t.Fatalf("second stop: log %q err %v, want a not-mounted no-op", log, err)
	}
	if st := d.Status(ctx, r); st.Status != sdk.StatusDown {
		t.Fatalf("status after stop: %v %q", st.Status, st.Log)
	}
}
