package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/e2e/lab"
)

// randomSuffix is n random bytes in hex: a lab name of the test's own.
func randomSuffix(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// labTool builds vigil-lab alone into a temporary directory: with no
// vigild beside it the nodes run none, so the test sees the lab itself.
func labTool(t *testing.T) string {
	t.Helper()
	requireLabHost(t)
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build vigil-lab: %v\n%s", err, out)
	}
	return filepath.Join(dir, "vigil-lab")
}

// requireLabHost skips unless this host can run a lab: root and the
// lab's tools.
func requireLabHost(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, loop devices, mounts, LVM)")
	}
	for _, tool := range []string{"ipmi_sim", "ipmitool", "dockerd", "docker", "nsenter", "vgcreate", "mkfs.ext4", "docker-registry", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s in PATH (run make deps)", tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static; run make deps)")
	}
}

type labRunner struct {
	t    *testing.T
	tool string
	name string
}

// run runs vigil-lab and returns its output and exit code.
func (r labRunner) run(args ...string) (string, int) {
	r.t.Helper()
	cmd := exec.Command(r.tool, append([]string{"--name", r.name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), exit.ExitCode()
	}
	if err != nil {
		r.t.Fatalf("vigil-lab %v: %v", args, err)
	}
	return out.String(), 0
}

func (r labRunner) must(args ...string) string {
	r.t.Helper()
	out, code := r.run(args...)
	if code != 0 {
		r.t.Fatalf("vigil-lab %v: exit %d\n%s", args, code, out)
	}
	return out
}

func (r labRunner) status() lab.Status {
	r.t.Helper()
	var st lab.Status
	if err := json.Unmarshal([]byte(r.must("status", "--format", "json")), &st); err != nil {
		r.t.Fatal(err)
	}
	return st
}

// pidsInNamespace lists the host's processes in the pid namespace of pid.
func pidsInNamespace(pid int) []string {
	ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		return nil
	}
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if l, err := os.Readlink(d + "/ns/pid"); err == nil && l == ns {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

func TestLab_UpPowerCycleDown(t *testing.T) {
	r := labRunner{t: t, tool: labTool(t), name: "vt" + randomSuffix(t, 3)}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(lab.BaseDir, r.name)); err == nil {
			if out, code := r.run("down"); code != 0 {
				t.Errorf("cleanup: down: exit %d\n%s", code, out)
			}
		}
	})
	t0 := time.Now()
	t.Log(r.must("up", "--nodes", "2"))
	t.Logf("up in %s", time.Since(t0).Round(time.Millisecond))

	st := r.status()
	if len(st.Nodes) != 2 || st.Nodes[0].Power != "on" || st.Nodes[1].Power != "on" {
		t.Fatalf("after up: %+v", st.Nodes)
	}
	for _, n := range st.Nodes {
		if got := strings.TrimSpace(r.must("exec", n.Name, "--", "hostname")); got != n.Name {
			t.Errorf("hostname in %s: %q", n.Name, got)
		}
		if out := r.must("exec", n.Name, "--", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, n.Address+"/24") {
			t.Errorf("%s's eth0 lacks %s: %s", n.Name, n.Address, out)
		}
		if out := r.must("exec", n.Name, "--", "cat", "/etc/vigil/cluster.conf"); !strings.Contains(out, "[stonith#n2]") {
			t.Errorf("%s's /etc/vigil/cluster.conf: %s", n.Name, out)
		}
	}
	// The node's programs are the lab's, whatever the caller's PATH
	// holds: a vigil-lab earlier in it must not be the one found.
	decoy := t.TempDir()
	if err := os.WriteFile(filepath.Join(decoy, "vigil-lab"), []byte("#!/bin/sh\necho decoy\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(r.tool, "--name", r.name, "exec", "n1", "--", "vigil-lab", "--help")
	cmd.Env = append(os.Environ(), "PATH="+decoy+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "decoy") {
		t.Errorf("exec n1 -- vigil-lab ran the caller's, not the lab's (%v):\n%s", err, out)
	}
	n2 := st.Nodes[1]
	r.must("exec", "n1", "--", "busybox", "ping", "-c1", "-W2", n2.Address)
	if _, code := r.run("exec", "n2", "--", "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("exec exit code: %d, want 3", code)
	}

	// Cut: n2 loses the network and sees an empty heartbeat disk; heal
	// gives both back.
	hb := st.HBDev
	r.must("cut", "n2", "--link", "all")
	if _, code := r.run("exec", "n1", "--", "busybox", "ping", "-c1", "-W1", n2.Address); code == 0 {
		t.Error("n2 answers with its links cut")
	}
	if got := strings.TrimSpace(r.must("exec", "n2", "--", "blockdev", "--getsize64", hb)); got != "0" {
		t.Errorf("n2 sees %s bytes of the cut heartbeat disk", got)
	}
	if got := strings.TrimSpace(r.must("exec", "n1", "--", "blockdev", "--getsize64", hb)); got == "0" {
		t.Error("n1 lost the heartbeat disk when n2's was cut")
	}
	r.must("heal", "n2")
	r.must("exec", "n1", "--", "busybox", "ping", "-c1", "-W2", n2.Address)
	if got := strings.TrimSpace(r.must("exec", "n2", "--", "blockdev", "--getsize64", hb)); got == "0" {
		t.Error("n2 still sees an empty heartbeat disk after heal")
	}

	// Something long-lived on n2, as a daemon would be.
	r.must("exec", "n2", "--", "sh", "-c", "setsid busybox sleep 600 </dev/null >/dev/null 2>&1 &")
	before := pidsInNamespace(n2.InitPid)
	if len(before) < 2 {
		t.Fatalf("n2 runs %v, want its init and a sleep", before)
	}

	out := r.must("poweroff", "n2")
	t.Log(strings.TrimSpace(out))
	for _, pid := range before {
		if _, err := os.Stat("/proc/" + pid + "/ns"); err == nil {
			if start, zombie, err := lab.ProcStart(atoi(pid)); err == nil && !zombie && start > 0 {
				t.Errorf("process %s of n2 survives the power-off", pid)
			}
		}
	}
	if p := r.status().Nodes[1]; p.Power != "off" || p.InitPid != 0 {
		t.Errorf("after poweroff: %+v", p)
	}
	if _, code := r.run("exec", "n1", "--", "busybox", "ping", "-c1", "-W1", n2.Address); code == 0 {
		t.Errorf("%s still answers after n2's power-off", n2.Address)
	}
	if _, code := r.run("exec", "n2", "--", "true"); code == 0 {
		t.Error("exec in a powered-off node succeeds")
	}

	t.Log(strings.TrimSpace(r.must("poweron", "n2")))
	if p := r.status().Nodes[1]; p.Power != "on" || p.InitPid == 0 || p.InitPid == n2.InitPid {
		t.Errorf("after poweron: %+v", p)
	}
	r.must("exec", "n1", "--", "busybox", "ping", "-c1", "-W2", n2.Address)
	if got := strings.TrimSpace(r.must("exec", "n2", "--", "hostname")); got != "n2" {
		t.Errorf("hostname after power-on: %q", got)
	}

	// What down must remove, read before it runs.
	l, err := lab.Load(r.name)
	if err != nil {
		t.Fatal(err)
	}
	procs := []*lab.Proc{l.Supervisor, lab.ReadProc(l.InitPidFile("n1")), lab.ReadProc(l.InitPidFile("n2")),
		lab.ReadProc(l.BMCPidFile("n1")), lab.ReadProc(l.BMCPidFile("n2"))}
	// What a powered-off node's docker daemon leaves on the host: its
	// containers' cgroups under the lab's parent, in every hierarchy.
	cgroups := lab.CgroupDirs(l.CgroupParent())
	if len(cgroups) == 0 {
		t.Fatal("no cgroup hierarchy mounted")
	}
	for _, d := range cgroups {
		if err := os.MkdirAll(filepath.Join(d, "0123abcd", "child"), 0o755); err != nil {
			t.Fatalf("make a container's cgroup: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, d := range cgroups {
			_ = lab.RemoveCgroupTree(d, time.Second)
		}
	})
	t.Log(r.must("down"))
	for _, d := range cgroups {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left", d)
		}
	}
	for _, p := range procs {
		if p.Alive() {
			t.Errorf("process %d survives down", p.Pid)
		}
	}
	if nss, _ := filepath.Glob("/run/netns/" + r.name + "-*"); len(nss) > 0 {
		t.Errorf("network namespaces left: %v", nss)
	}
	for _, lp := range l.Loops {
		// A loop device still held by a dying mount namespace is
		// detached lazily: give it a moment.
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, _ := exec.Command("losetup", "--noheadings", "--output", "BACK-FILE", lp.Dev).Output()
			if !strings.Contains(string(out), lp.File) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("loop device %s (%s) left", lp.Dev, lp.File)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, vg := range l.VGs {
		if exec.Command("vgs", vg).Run() == nil {
			t.Errorf("volume group %s left", vg)
		}
	}
	if _, err := os.Stat(l.Dir()); err == nil {
		t.Errorf("%s left", l.Dir())
	}
	if out, code := r.run("down"); code != 0 {
		t.Errorf("second down: exit %d\n%s", code, out)
	}
}

func atoi(s string) int {
	var i int
	for _, c := range s {
		i = i*10 + int(c-'0')
	}
	return i
}
