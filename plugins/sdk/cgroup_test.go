package sdk

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPlaceCommand_HandMadeCgroupHoldsTheProcessAndItsChildren: without
// systemd, a service's process starts in vigil-services/<service>, and so
// does what it forks, outside the plugin's cgroup.
func TestPlaceCommand_HandMadeCgroupHoldsTheProcessAndItsChildren(t *testing.T) {
	switch {
	case os.Geteuid() != 0:
		t.Skip("needs root to make a cgroup")
	case systemdRuns():
		t.Skip("systemd runs this host: PlaceCommand makes a scope (systemd-run), not a cgroup by hand")
	}
	root, err := cgroup2Root()
	if err != nil {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	svc := fmt.Sprintf("sdktest%d", time.Now().UnixNano())
	dir := filepath.Join(root, HandMadeCgroup, svc)

	cmd := exec.Command("sh", "-c", "sleep 60 & echo $! ; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := PlaceCommand(cmd, svc, "app#1")
	if !strings.HasPrefix(p.Where, "cgroup ") {
		t.Fatalf("placement %q, want a cgroup made by hand", p.Where)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.Started()
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	child := strings.TrimSpace(string(buf[:n]))
	t.Cleanup(func() {
		exec.Command("kill", child).Run()
		cmd.Process.Kill()
		cmd.Wait()
		// The cgroup goes once the last process in it is reaped.
		for deadline := time.Now().Add(10 * time.Second); os.Remove(dir) != nil && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
	})
	want := "0::/" + HandMadeCgroup + "/" + svc
	for _, pid := range []string{fmt.Sprint(cmd.Process.Pid), child} {
		b, err := os.ReadFile("/proc/" + pid + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("process %s is in\n%s\nwant %s", pid, b, want)
		}
	}
}

func TestUnitWord_KeepsWhatUnitNamesTake(t *testing.T) {
	if got := unitWord("registry.opensvc.com/x y"); got != "registry.opensvc.com_x_y" {
		t.Errorf("unitWord = %q", got)
	}
}

// TestPlaceCommand_ServiceGetsAnOrdinaryOOMScore: under vigild's
// OOMScoreAdjust, a service's process runs at 0.
func TestPlaceCommand_ServiceGetsAnOrdinaryOOMScore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to lower an OOM score adjustment")
	}
	if _, err := exec.LookPath("choom"); err != nil {
		t.Skip("choom (util-linux) not installed")
	}
	if out, err := exec.Command("sh", "-c", "echo -900 > /proc/self/oom_score_adj").CombinedOutput(); err != nil {
		t.Skipf("this kernel refuses to set oom_score_adj: %v: %s", err, out)
	}
	// A child at -900, as vigild's unit runs it, places a command.
	cmd := exec.Command("sh", "-c", "echo -900 > /proc/self/oom_score_adj && exec \"$0\" -test.run=TestHelperPlace", os.Args[0])
	cmd.Env = append(os.Environ(), "VIGIL_SDK_HELPER=oom")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "oom_score_adj=0") {
		t.Fatalf("the placed command reads %q, want oom_score_adj=0", out)
	}
}

func TestHelperPlace(t *testing.T) {
	if os.Getenv("VIGIL_SDK_HELPER") != "oom" {
		t.Skip("helper of TestPlaceCommand_ServiceGetsAnOrdinaryOOMScore")
	}
	cmd := exec.Command("cat", "/proc/self/oom_score_adj")
	normalOOMScore(cmd)
	b, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("oom_score_adj=%s\n", strings.TrimSpace(string(b)))
}
