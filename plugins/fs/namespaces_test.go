package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// nsHolder is a process this test started in a mount namespace of its own.
type nsHolder struct {
	pid  int
	ns   string // its /proc/PID/ns/mnt link, "mnt:[4026532177]"
	stop func()
}

// startNamespaceHolder starts `unshare -m --propagation private`, runs
// script (sh) in the new namespace and then sleeps there until stopped.
// The namespace begins as a copy of this one, so it also holds whatever
// this process has mounted at that moment. Stopped (by its PID) at cleanup.
func startNamespaceHolder(t *testing.T, script string) *nsHolder {
	t.Helper()
	cmd := exec.Command("unshare", "-m", "--propagation", "private",
		"sh", "-c", script+" && echo ready && exec sleep 600")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start unshare: %v", err)
	}
	exited := make(chan struct{})
	var once sync.Once
	h := &nsHolder{pid: cmd.Process.Pid}
	h.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(h.stop)
	if strings.TrimSpace(line) != "ready" {
		h.stop()
		t.Fatalf("namespace holder %q did not get ready: %s", script, stderr.String())
	}
	// "ready" comes just before the exec: wait for it, so the holder is
	// named by the command it keeps running (sleep), not the shell.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.pid))
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace holder %d never ran sleep (comm %q)", h.pid, comm)
		}
	}
	if h.ns, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", h.pid)); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	if h.ns == self {
		t.Fatalf("holder %d shares this test's mount namespace %s", h.pid, self)
	}
	return h
}

func TestStop_RefusesWhileDeviceMountedInAnotherNamespace(t *testing.T) {
	requireRealFS(t)
	for _, tool := range []string{"unshare", "mount", "nsenter", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	tests := []struct {
		name string
		// holderFirst: the holder mounts the device on a directory of
		// its own before the driver mounts it; otherwise it unshares
		// after the driver's mount and keeps its copy (unshare -m).
		holderFirst bool
		// byHand: the operator runs the command the error suggests
		// instead of the holder exiting.
		byHand bool
	}{
		{name: "HolderMountedTheDeviceOnItsOwnDirectory", holderFirst: true},
		{name: "HolderKeptACopyOfTheDriversMount", holderFirst: false},
		{name: "SuggestedNsenterCommandReleasesIt", holderFirst: true, byHand: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dev := loopExt4(t)
			base := t.TempDir()
			mnt := filepath.Join(base, "mnt")
			r := res(dev, mnt, "ext4", "rw")
			d := New(Config{})
			t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })

			var holder *nsHolder
			holderMnt := mnt
			if tt.holderFirst {
				holderMnt = filepath.Join(base, "theirs")
				if err := os.Mkdir(holderMnt, 0o755); err != nil {
					t.Fatal(err)
				}
				holder = startNamespaceHolder(t, fmt.Sprintf("mount -t ext4 %s %s", dev, holderMnt))
			}
			if _, err := d.Start(ctx, r); err != nil {
				t.Fatalf("start: %v", err)
			}
			if !tt.holderFirst {
				holder = startNamespaceHolder(t, "true")
			}
			if st := d.Status(ctx, r); st.Status != sdk.StatusUp {
				t.Fatalf("status while mounted here: %v %q, want up", st.Status, st.Log)
			}

			_, err := d.Stop(ctx, r)
			if !errors.Is(err, ErrMountedInOtherNamespace) {
				t.Fatalf("stop: err = %v, want ErrMountedInOtherNamespace", err)
			}
			t.Logf("stop: %v", err)
			for _, want := range []string{
				holder.ns,
				fmt.Sprintf("pid %d (sleep)", holder.pid),
				fmt.Sprintf("nsenter -t %d -m umount %s", holder.pid, holderMnt),
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("stop error %q does not say %q", err, want)
				}
			}
			if mountedOn(t, dev, mnt) {
				t.Error("the driver's own mount is still there after the stop")
			}
			if err := syscall.Kill(holder.pid, 0); err != nil {
				t.Fatalf("holder %d is gone after stop: %v", holder.pid, err)
			}
			// A retried stop finds nothing mounted here, and must not
			// call the device free either.
			if _, err := d.Stop(ctx, r); !errors.Is(err, ErrMountedInOtherNamespace) {
				t.Fatalf("second stop: err = %v, want ErrMountedInOtherNamespace", err)
			}
			st := d.Status(ctx, r)
			if st.Status != sdk.StatusWarn || !strings.Contains(strings.Join(st.Log, "\n"), fmt.Sprintf("pid %d", holder.pid)) {
				t.Fatalf("status: %v %q, want warn naming pid %d", st.Status, st.Log, holder.pid)
			}

			if tt.byHand {
				suggested := fmt.Sprintf("nsenter -t %d -m umount %s", holder.pid, holderMnt)
				if out, err := exec.Command("sh", "-c", suggested).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v: %s", suggested, err, out)
				}
			} else {
				holder.stop()
			}
			log, err := d.Stop(ctx, r)
			if err != nil {
				t.Fatalf("stop once released: %v", err)
			}
			t.Logf("stop once released: %q", log)
			if st := d.Status(ctx, r); st.Status != sdk.StatusDown {
				t.Fatalf("status once released: %v %q, want down", st.Status, st.Log)
			}
		})
	}
}

// fakeProc is a process of a fake proc tree.
type fakeProc struct {
	pid       string
	ns        string // target of ns/mnt: "mnt:[N]", "EACCES" (modelled permission error), "" (no link: exited)
	mountinfo string // "" for none (exited)
	comm      string
}

// fakeProcRoot writes procs under a temporary directory; self links to the
// first one, as /proc/self does to the reader.
func fakeProcRoot(t *testing.T, procs []fakeProc) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, p.pid)
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if p.ns != "" {
			if err := os.Symlink(p.ns, filepath.Join(dir, "ns", "mnt")); err != nil {
				t.Fatal(err)
			}
		}
		if p.mountinfo != "" {
			if err := os.WriteFile(filepath.Join(dir, "mountinfo"), []byte(p.mountinfo), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(p.comm+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(procs[0].pid, filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	return root
}

// modelPermissionErrors makes readlink fail with EACCES on the fake links
// whose target is "EACCES", as the kernel does for a process this one may
// not ptrace.
func modelPermissionErrors(t *testing.T) {
	t.Cleanup(func() { readlink = os.Readlink })
	readlink = func(p string) (string, error) {
		target, err := os.Readlink(p)
		if err == nil && target == "EACCES" {
			return "", &os.PathError{Op: "readlink", Path: p, Err: syscall.EACCES}
		}
		return target, err
	}
}

func TestScanMountNamespaces_FindsTheDeviceInOtherNamespacesOnly(t *testing.T) {
	const (
		root  = "20 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
		ours  = root + "100 20 7:3 / /srv/data rw - ext4 /dev/loop3 rw\n"
		other = root + "200 20 7:3 / /mnt/x rw shared:4 - ext4 /dev/loop3 rw\n"
	)
	isLoop3 := func(m mount) bool { return m.Major == 7 && m.Minor == 3 }
	self := fakeProc{pid: "1", ns: "mnt:[1]", mountinfo: ours, comm: "vigil-plugin-fs"}
	tests := []struct {
		name    string
		procs   []fakeProc
		want    []nsMount
		wantErr bool
	}{
		{
			name: "OwnNamespaceIsLeftToInspect",
			procs: []fakeProc{self,
				{pid: "7", ns: "mnt:[1]", mountinfo: ours, comm: "bash"}},
		},
		{
			name: "MatchesByDeviceNumberNotByName",
			procs: []fakeProc{self,
				{pid: "9", ns: "mnt:[2]", comm: "containerd", mountinfo: root +
					"300 20 7:3 /sub /data rw - ext4 /dev/disk/by-label/x rw\n" +
					"301 20 7:4 / /other rw - ext4 /dev/loop3 rw\n" +
					"302 20 0:45 / /run rw - tmpfs tmpfs rw\n"}},
			want: []nsMount{{NS: 2, PID: 9, Comm: "containerd", Procs: 1, ID: 300, Point: "/data"}},
		},
		{
			name: "ReadsEachNamespaceOnceFromItsLowestPid",
			procs: []fakeProc{self,
				// Listed "30", "31", "4": the lowest pid is not the first name.
				{pid: "30", ns: "mnt:[3]", comm: "b", mountinfo: root + "400 20 7:3 / /seen-by-30 rw - ext4 /dev/loop3 rw\n"},
				{pid: "31", ns: "mnt:[3]", comm: "c", mountinfo: "not a mountinfo\n"},
				{pid: "4", ns: "mnt:[3]", comm: "a", mountinfo: root + "400 20 7:3 / /seen-by-4 rw - ext4 /dev/loop3 rw\n"}},
			want: []nsMount{{NS: 3, PID: 4, Comm: "a", Procs: 3, ID: 400, Point: "/seen-by-4"}},
		},
		{
			name: "ProcessGoneBetweenReadsGivesWayToTheNextOfItsNamespace",
			procs: []fakeProc{self,
				{pid: "40", ns: "mnt:[4]", comm: "gone"},
				{pid: "41", ns: "mnt:[4]", comm: "sleep", mountinfo: other}},
			want: []nsMount{{NS: 4, PID: 41, Comm: "sleep", Procs: 2, ID: 200, Point: "/mnt/x"}},
		},
		{
			name: "ExitedProcessesAndOtherEntriesAreSkipped",
			procs: []fakeProc{self,
				{pid: "50", comm: "zombie"},
				{pid: "sys", ns: "mnt:[5]", mountinfo: other},
				{pid: "thread-self", ns: "mnt:[5]", mountinfo: other}},
		},
		{
			name: "SeveralNamespacesSeveralMounts",
			procs: []fakeProc{self,
				{pid: "61", ns: "mnt:[6]", comm: "sleep", mountinfo: other},
				{pid: "60", ns: "mnt:[7]", comm: "sh", mountinfo: other + "201 20 7:3 / /mnt/y rw - ext4 /dev/loop3 rw\n"}},
			want: []nsMount{
				{NS: 7, PID: 60, Comm: "sh", Procs: 1, ID: 200, Point: "/mnt/x"},
				{NS: 7, PID: 60, Comm: "sh", Procs: 1, ID: 201, Point: "/mnt/y"},
				{NS: 6, PID: 61, Comm: "sleep", Procs: 1, ID: 200, Point: "/mnt/x"},
			},
		},
		{
			name: "UnreadableNamespaceLinkFallsBackToMountIDs",
			procs: []fakeProc{self,
				// In this namespace: its mount 100 is ours.
				{pid: "70", ns: "EACCES", comm: "init", mountinfo: ours},
				// Elsewhere, the same mount 200 seen through two processes.
				{pid: "71", ns: "EACCES", comm: "agent", mountinfo: other},
				{pid: "72", ns: "EACCES", comm: "agent", mountinfo: other}},
			want: []nsMount{{NS: 0, PID: 71, Comm: "agent", Procs: 1, ID: 200, Point: "/mnt/x"}},
		},
		{
			name: "UnparsableMountinfoFailsTheScan",
			procs: []fakeProc{self,
				{pid: "90", ns: "mnt:[9]", comm: "x", mountinfo: "garbage\n"}},
			wantErr: true,
		},
		{
			name:    "UnknownNamespaceLinkFailsTheScan",
			procs:   []fakeProc{self, {pid: "91", ns: "net:[9]", comm: "x", mountinfo: other}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			modelPermissionErrors(t)
			got, err := scanMountNamespaces(fakeProcRoot(t, tt.procs), isLoop3)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				t.Logf("error: %v", err)
				return
			}
			if fmt.Sprint(got.Found) != fmt.Sprint(tt.want) {
				t.Errorf("found %+v\nwant  %+v", got.Found, tt.want)
			}
		})
	}
}

func TestDescribeNamespaces_SaysWhereAndHowToUnmount(t *testing.T) {
	got := describeNamespaces([]nsMount{
		{NS: 7, PID: 60, Comm: "sh", Procs: 3, Point: "/mnt/x"},
		{NS: 7, PID: 60, Comm: "sh", Procs: 3, Point: "/mnt/a b"},
		{NS: 0, PID: 71, Comm: "agent", Procs: 1, Point: "/data"},
	})
	want := []string{
		"mount namespace mnt:[7] of pid 60 (sh) and 2 other processes on /mnt/x, /mnt/a b (unmount it there: nsenter -t 60 -m umount /mnt/x; nsenter -t 60 -m umount '/mnt/a b')",
		"mount namespace (unknown: its ns/mnt link is not readable) of pid 71 (agent) on /data (unmount it there: nsenter -t 71 -m umount /data)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// BenchmarkScanMountNamespaces measures the scan Status makes every second
// while a filesystem is not mounted here, on this host's real /proc, and
// (as root) with namespace holders added to show how it grows.
func BenchmarkScanMountNamespaces(b *testing.B) {
	match := func(m mount) bool { return m.Major == 7 && m.Minor == 1<<19 } // no such device
	run := func(b *testing.B) {
		procs, nss := countProcs(b)
		for b.Loop() {
			if _, err := scanMountNamespaces("/proc", match); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(procs), "procs")
		b.ReportMetric(float64(nss), "mntns")
	}
	b.Run("host", run)
	if os.Geteuid() != 0 {
		return
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return
	}
	// 20 more namespaces of 10 processes each, stopped by their pids.
	for i := 0; i < 20; i++ {
		cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
			"for i in 1 2 3 4 5 6 7 8 9; do sleep 600 & echo $!; done; echo ready; exec sleep 600")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var pids []int
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && sc.Text() != "ready" {
			var pid int
			if _, err := fmt.Sscan(sc.Text(), &pid); err == nil {
				pids = append(pids, pid)
			}
		}
		b.Cleanup(func() {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	b.Run("host+20ns×10procs", run)
}

func countProcs(b *testing.B) (procs, namespaces int) {
	b.Helper()
	entries, _ := os.ReadDir("/proc")
	seen := map[string]bool{}
	for _, e := range entries {
		if _, err := fmt.Sscan(e.Name(), new(int)); err != nil {
			continue
		}
		procs++
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "mnt")); err == nil {
			seen[l] = true
		}
	}
	return procs, len(seen)
}
