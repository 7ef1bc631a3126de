package lab

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestChaosSummary_LastLineHasEveryCount(t *testing.T) {
	for _, tc := range []struct {
		name string
		sum  ChaosSummary
		want string
	}{
		{
			name: "no fault",
			sum:  ChaosSummary{Seed: 7},
			want: "chaos: faults=0 seed=7 violations=0 double_mounts=0 dual_ip=0 data_lost=0 not_recovered=0 max_unavailable=0.00s median_unavailable=0.00s",
		},
		{
			name: "median of an odd count, max",
			sum: ChaosSummary{Faults: 3, Seed: 1, Violations: 4, DoubleMounts: 1, DualIP: 1, DataLost: 1, NotRecovered: 1,
				Unavailable: []time.Duration{5 * time.Second, 1 * time.Second, 3 * time.Second}},
			want: "chaos: faults=3 seed=1 violations=4 double_mounts=1 dual_ip=1 data_lost=1 not_recovered=1 max_unavailable=5.00s median_unavailable=3.00s",
		},
		{
			name: "median of an even count is the lower middle",
			sum:  ChaosSummary{Faults: 2, Seed: 2, Unavailable: []time.Duration{4 * time.Second, 2 * time.Second}},
			want: "chaos: faults=2 seed=2 violations=0 double_mounts=0 dual_ip=0 data_lost=0 not_recovered=0 max_unavailable=4.00s median_unavailable=2.00s",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sum.String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestWitness_OneEpisodePerStretchOfViolation(t *testing.T) {
	w := newWitness()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	seen := map[string]string{"7:3": "registry-root on n1 and n2"}
	w.observe(at(0), "double_mount", nil)
	w.observe(at(50), "double_mount", seen)
	w.observe(at(100), "double_mount", seen)
	w.observe(at(150), "double_mount", nil)
	w.observe(at(200), "double_mount", seen)
	eps := w.since(t0)
	if len(eps) != 2 {
		t.Fatalf("%d episodes, want 2: %v", len(eps), eps)
	}
	if d := eps[0].end.Sub(eps[0].begin); d != 100*time.Millisecond {
		t.Errorf("first episode lasted %s, want 100ms", d)
	}
	if !eps[1].end.IsZero() {
		t.Errorf("the second episode ended: %v", eps[1])
	}
	if got := w.since(at(60)); len(got) != 1 {
		t.Errorf("since the first episode's start: %d episodes, want 1", len(got))
	}
}

func TestChaos_UnknownFaultIsRefusedWithTheCatalogue(t *testing.T) {
	_, err := Chaos(context.Background(), ChaosConfig{Faults: 1, Only: []string{"meteor"}}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "poweroff-active") {
		t.Fatalf("err = %v, want the catalogue named", err)
	}
}

// testLab builds a lab with vigil-lab built alone (no vigild beside it:
// the nodes run nothing), removed in the test's cleanup.
func testLab(t *testing.T) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, loop devices, mounts, LVM)")
	}
	for _, tool := range []string{"ipmi_sim", "ipmitool", "nsenter", "vgcreate", "mkfs.ext4", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s in PATH (run make deps)", tool)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/vigil-lab")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build vigil-lab: %v\n%s", err, out)
	}
	name := "wt" + randomHex(3)
	t.Cleanup(func() {
		var out bytes.Buffer
		if err := Down(context.Background(), name, &out); err != nil {
			t.Errorf("down: %v\n%s", err, out.String())
		}
	})
	var out bytes.Buffer
	l, err := Up(context.Background(), Config{Name: name, Nodes: 2, HBInterval: time.Second, HBTimeout: 3 * time.Second,
		Tool: filepath.Join(dir, "vigil-lab")}, &out)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	return l
}

func (l *Lab) mustRun(t *testing.T, node string, args ...string) {
	t.Helper()
	cmd, err := l.Command(context.Background(), node, args...)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %s: %v\n%s", node, strings.Join(args, " "), err, out)
	}
}

// waitEpisodes waits a little for w to have seen n episodes since t0.
func waitEpisodes(w *witness, t0 time.Time, n int) []episode {
	deadline := time.Now().Add(3 * time.Second)
	for {
		eps := w.since(t0)
		if len(eps) >= n || time.Now().After(deadline) {
			return eps
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The witnesses are what a chaos run's "0 violations" rests on: each must
// see the split brain it is there for, made by hand, and nothing when a
// device or an address is on one node only.
func TestWitnesses_SeeADeviceMountedAndAnAddressHeldOnTwoNodes(t *testing.T) {
	l := testLab(t)
	mounts, err := l.watchMounts(20 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer mounts.Stop()
	addrs := l.watchAddrs(20*time.Millisecond, map[string]string{l.RegistryAddr(): Registry})
	defer addrs.Stop()

	mnt := t.TempDir()
	dev := l.LoopDev("registry-data")
	t0 := time.Now()
	l.mustRun(t, "n1", "mount", "-o", "ro", dev, mnt)
	l.mustRun(t, "n1", "ip", "addr", "add", l.RegistryAddr()+"/24", "dev", "eth0")
	time.Sleep(300 * time.Millisecond)
	if eps := append(mounts.since(t0), addrs.since(t0)...); len(eps) > 0 {
		t.Fatalf("one node holds the device and the address, yet: %v", eps)
	}

	l.mustRun(t, "n2", "mount", "-o", "ro", dev, mnt)
	eps := waitEpisodes(mounts, t0, 1)
	if len(eps) != 1 || !regexp.MustCompile(`registry-data .* mounted on n1 and n2`).MatchString(eps[0].what) {
		t.Errorf("double mount episodes: %v", eps)
	}
	l.mustRun(t, "n2", "ip", "addr", "add", l.RegistryAddr()+"/24", "dev", "eth0")
	eps = waitEpisodes(addrs, t0, 1)
	if len(eps) != 1 || !strings.Contains(eps[0].what, "held by n1 and n2") {
		t.Errorf("dual address episodes: %v", eps)
	}

	// A mount in a namespace of its own below a node's (as a
	// container's) is its node's: n2's mount gone, one made there.
	l.mustRun(t, "n2", "umount", mnt)
	t1 := time.Now()
	time.Sleep(200 * time.Millisecond)
	l.mustRun(t, "n2", "unshare", "--mount", "--pid", "--fork", "sh", "-c", "mount -o ro "+dev+" "+mnt+" && sleep 1")
	if eps := waitEpisodes(mounts, t1, 1); len(eps) != 1 {
		t.Errorf("a mount in a namespace below n2's: episodes %v", eps)
	}
}

func TestAnswered_TellsALostImageFromAnAbsentRegistry(t *testing.T) {
	for _, tc := range []struct {
		err  string
		want bool
	}{
		{"regclient: get manifest: 404 Not Found", true},
		{"regclient: manifest digest sha256:aa, pushed sha256:bb", true},
		{"regclient: blob sha256:aa: 404 Not Found, digest sha256:e3", true},
		{"regclient: blob sha256:aa: 200 OK, digest sha256:cc", true},
		{"regclient: get manifest: 503 Service Unavailable", false},
		{"regclient: blob sha256:aa: 500 Internal Server Error, digest sha256:e3", false},
		{`regclient: Get "http://10.0.0.50:5000/v2/x/manifests/v1": dial tcp 10.0.0.50:5000: connect: connection refused`, false},
	} {
		t.Run(tc.err, func(t *testing.T) {
			if got := answered(errors.New(tc.err)); got != tc.want {
				t.Errorf("answered = %v, want %v", got, tc.want)
			}
		})
	}
}
