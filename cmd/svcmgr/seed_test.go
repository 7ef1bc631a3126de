package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireRoot skips the test, saying why, unless it runs as root with the
// given tools in PATH.
func requireRoot(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop devices, mounts, addresses, LVM, docker)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s in PATH (run make deps)", tool)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs a setup command and fails the test when it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// loopDevice backs a sparse file with a loop device, detached in cleanup.
func loopDevice(t testing.TB, size string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	run(t, "truncate", "-s", size, img)
	dev := run(t, "losetup", "--find", "--show", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// busyboxRootfs writes a tar of a minimal root holding busybox-static, the
// base of the lab's images: no registry needed.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	must(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	run(t, "cp", "/bin/busybox", filepath.Join(root, "bin", "busybox"))
	for _, app := range []string{"sh", "date", "sleep", "echo", "ls", "cat", "true"} {
		must(t, os.Symlink("busybox", filepath.Join(root, "bin", app)))
	}
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	run(t, "tar", "-C", root, "-cf", tarball, ".")
	return tarball
}

// loadImageIntoDataRoot runs a throwaway dockerd on dataRoot, imports the
// busybox image into it, and stops it: as in the seed, the service's images
// live on its own filesystem and move with it.
func loadImageIntoDataRoot(t testing.TB, dataRoot, bridge, tag string) {
	t.Helper()
	tmp, err := os.MkdirTemp("/run", "vigil-loader-")
	must(t, err)
	defer os.RemoveAll(tmp)
	sock := filepath.Join(tmp, "docker.sock")
	cmd := exec.Command("dockerd", "--data-root", dataRoot, "--exec-root", filepath.Join(tmp, "exec"),
		"--pidfile", filepath.Join(tmp, "docker.pid"), "-H", "unix://"+sock,
		"--bridge="+bridge, "--iptables=false", "--containerd-namespace", "vigil-loader-"+randHex(3))
	logf, _ := os.Create(filepath.Join(t.TempDir(), "dockerd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	must(t, cmd.Start())
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	docker := func(args ...string) *exec.Cmd {
		c := exec.Command("docker", append([]string{"-H", "unix://" + sock}, args...)...)
		c.Env = append(os.Environ(), "DOCKER_API_VERSION=1.41")
		return c
	}
	deadline := time.Now().Add(30 * time.Second)
	for docker("version").Run() != nil {
		if time.Now().After(deadline) {
			t.Fatal("loader dockerd did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	imp := docker("import", "--change", `CMD ["/bin/sh","-c","trap 'exit 0' TERM; while true; do date; sleep 1 & wait $!; done"]`, busyboxRootfs(t), tag)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
}

// TestSeedBusybox_StartStatusStopLeavesNothing runs a service shaped like
// the seed's busybox (7 containers in subsets 00/01/02, 01appservers in
// parallel, a private docker daemon on the service's filesystem, a VG, two
// filesystems, an address on a veth) on one node, through svcmgr and the
// real plugin binaries.
func TestSeedBusybox_StartStatusStopLeavesNothing(t *testing.T) {
	requireRoot(t, "losetup", "mkfs.ext4", "vgcreate", "dockerd", "docker", "ip", "tar")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static; run make deps)")
	}
	id := randHex(3)
	n := newNode(t)
	base := t.TempDir()

	// A VG on a loop device (this kernel cannot create LVs, so the
	// filesystems sit on loop devices of their own).
	vg := "vgbb" + id
	pv := loopDevice(t, "64M")
	run(t, "vgcreate", "-q", vg, pv)
	t.Cleanup(func() { exec.Command("vgremove", "-q", "-f", vg).Run(); exec.Command("pvremove", "-q", pv).Run() })
	rootDev, dataDev := loopDevice(t, "64M"), loopDevice(t, "512M")
	run(t, "mkfs.ext4", "-q", rootDev)
	run(t, "mkfs.ext4", "-q", dataDev)

	// An address on a veth whose peer lives in a namespace of our own.
	ns, veth := "vigilbb"+id, "vbb"+id
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", veth+"p", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
	run(t, "ip", "link", "set", veth, "up")
	run(t, "ip", "-n", ns, "link", "set", veth+"p", "up")
	addr := fmt.Sprintf("10.231.%d.10", int(id[0])%200+10)

	// The private daemon gets a bridge of its own: dockerd 20.10 given
	// --bridge=none deletes docker0, the system daemon's.
	bridge := "bbb" + id
	run(t, "ip", "link", "add", bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	run(t, "ip", "addr", "add", fmt.Sprintf("198.18.%d.1/24", int(id[1])%200+10), "dev", bridge)
	run(t, "ip", "link", "set", bridge, "up")

	mnt := filepath.Join(base, "opt", "busybox")
	appdata := filepath.Join(mnt, "appdata")
	svc := "busybox" + id
	tag := "vigiltest/busybox:date-" + id
	var conf strings.Builder
	fmt.Fprintf(&conf, "[DEFAULT]\norchestrate = start\napp = VIGILTEST\nservice_type = DEV\nnodes = %s\n", hostname(t))
	fmt.Fprintf(&conf, "docker_data_dir = %s\ndocker_daemon_args = --bridge=%s --iptables=false\n\n", appdata, bridge)
	subsets := []string{"00database", "01appservers", "01appservers", "01appservers", "01appservers", "02webservers", "02webservers"}
	for i, s := range subsets {
		fmt.Fprintf(&conf, "[container#%d]\ntype = docker\nrun_image = %s\nsubset = %s\n\n", i+1, tag, s)
	}
	fmt.Fprintf(&conf, "[subset#container.docker:01appservers]\nparallel = true\n\n[subset#container.docker:02webservers]\nparallel = false\n\n")
	fmt.Fprintf(&conf, "[ip#1]\nipdev = %s\nipname = %s\nnetmask = 24\n\n", veth, addr)
	fmt.Fprintf(&conf, "[vg#1]\nvgname = %s\nscsireserv = false\n\n", vg)
	fmt.Fprintf(&conf, "[fs#1]\nmnt_opt = rw\nmnt = %s\ndev = %s\ntype = ext4\n\n", mnt, rootDev)
	fmt.Fprintf(&conf, "[fs#2]\nmnt_opt = rw\nmnt = %s\ndev = %s\ntype = ext4\n", appdata, dataDev)
	n.writeService(svc+".env", conf.String())

	t.Cleanup(func() {
		// Whatever happened, leave nothing behind.
		n.svcmgr("-s", svc, "stop")
		pidfile := filepath.Join(n.runDir, "services", svc, "docker", "docker.pid")
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		syscall.Unmount(appdata, syscall.MNT_DETACH)
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	})

	// Seed the service's data root with its image, as the seed has it.
	n.must("-s", svc, "start", "--rid", "vg#1,fs#1,fs#2")
	loadImageIntoDataRoot(t, appdata, bridge, tag)
	n.must("-s", svc, "stop", "--rid", "vg#1,fs#1,fs#2")

	out := n.must("-s", svc, "start")
	t.Logf("start:\n%s", out)
	// The subsets ran in order: 00 before any 01, every 01 before 06.
	order := stepOrder(out)
	if !(order["container#1"] < order["container#2"] && order["container#5"] < order["container#6"] && order["container#6"] < order["container#7"]) {
		t.Errorf("containers did not start in subset order:\n%s", out)
	}

	st := statusJSON(t, n, svc)
	if st.Overall != "up" || st.Avail != "up" {
		t.Fatalf("after start: overall %s avail %s\n%s", st.Overall, st.Avail, n.must("-s", svc, "print", "status"))
	}
	for _, r := range st.Resources {
		if r.Group != "sync" && r.Status != "up" {
			t.Errorf("%s is %s after start: %v", r.RID, r.Status, r.Log)
		}
	}
	tree := n.must("-s", svc, "print", "status")
	t.Logf("print status:\n%s", tree)
	if !strings.Contains(tree, "@"+tag) {
		t.Errorf("container labels should read <id>@%s:\n%s", tag, tree)
	}
	ps := n.must("-s", svc, "docker", "ps", "--format", "{{.Names}}")
	if got := len(strings.Fields(ps)); got != 7 {
		t.Errorf("svcmgr docker ps shows %d containers, want 7:\n%s", got, ps)
	}

	out = n.must("-s", svc, "stop")
	t.Logf("stop:\n%s", out)
	st = statusJSON(t, n, svc)
	if st.Avail != "down" {
		t.Fatalf("after stop: avail %s", st.Avail)
	}
	for _, r := range st.Resources {
		if r.Group != "sync" && r.Status != "down" {
			t.Errorf("%s is %s after stop", r.RID, r.Status)
		}
		if r.Group == "container" && !contains(r.Log, "docker daemon is not running") {
			t.Errorf("%s: want the reason 'docker daemon is not running', got %v", r.RID, r.Log)
		}
	}
	// Nothing left behind.
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), mnt) {
		t.Errorf("a filesystem is still mounted under %s", mnt)
	}
	if a := run(t, "ip", "-o", "addr", "show", "dev", veth); strings.Contains(a, addr+"/") {
		t.Errorf("address %s still plumbed: %s", addr, a)
	}
	if tags := run(t, "vgs", "--noheadings", "-o", "vg_tags", vg); tags != "" {
		t.Errorf("vg %s still tagged: %q", vg, tags)
	}
	if _, err := os.Stat(filepath.Join(n.runDir, "services", svc, "docker", "docker.sock")); err == nil {
		t.Errorf("the private docker daemon's socket is still there")
	}
	if procs := processesStartedFrom(n.pluginDir); len(procs) > 0 {
		t.Errorf("plugin processes left behind: %v", procs)
	}
	if procs := processesMatching(appdata); len(procs) > 0 {
		t.Errorf("processes still use the service's data root: %v", procs)
	}
}

type svcStatus struct {
	Overall   string `json:"overall"`
	Avail     string `json:"avail"`
	Resources []struct {
		RID    string   `json:"rid"`
		Group  string   `json:"group"`
		Status string   `json:"status"`
		Log    []string `json:"log"`
	} `json:"resources"`
}

func statusJSON(t testing.TB, n *node, svc string) svcStatus {
	t.Helper()
	var st svcStatus
	must(t, json.Unmarshal([]byte(n.must("-s", svc, "print", "status", "--format", "json")), &st))
	return st
}

// stepOrder maps each rid to the line where its start finished.
func stepOrder(out string) map[string]int {
	order := map[string]int{}
	for i, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[1] == "start" && strings.HasSuffix(l, "ms") || strings.Contains(l, "done in") {
			if len(f) >= 3 {
				order[strings.TrimSuffix(f[2], ":")] = i
			}
		}
	}
	return order
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func hostname(t testing.TB) string {
	h, err := os.Hostname()
	must(t, err)
	return h
}

// processesStartedFrom lists the pids started from a path in dir (their
// argv[0]): this node's plugins, not another test's or lab's started from
// the same binaries.
func processesStartedFrom(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if strings.HasPrefix(argv0, dir+"/") {
			out = append(out, strings.Split(p, "/")[2]+" "+argv0)
		}
	}
	return out
}

// processesMatching lists the pids whose command line mentions s.
func processesMatching(s string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, strings.Split(p, "/")[2]+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
