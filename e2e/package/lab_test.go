package pkgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/e2e/lab"
)

// Generous bounds: a wait that ends early is a pass, never a figure.
const (
	startTimeout    = 180 * time.Second
	failoverTimeout = 120 * time.Second
)

// pkgLab is a lab whose nodes run the vigil package.
type pkgLab struct {
	t *testing.T
	l *lab.Lab
}

// newPkgLab brings up a two-node lab from the vigil .deb, torn down in
// the test's cleanup. seed: with the seed's services and images.
func newPkgLab(t *testing.T, seed bool) *pkgLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a lab needs root (namespaces, loop devices, mounts)")
	}
	need(t, "ip", "nsenter", "losetup", "mkfs.ext4", "vgcreate", "ipmi_sim", "ipmitool", "dockerd", "docker", "dpkg-deb")
	if _, err := exec.Command("docker", "info").Output(); err != nil {
		t.Skip("no docker daemon answers (make deps starts one)")
	}
	deb, _ := debs(t)
	tool := filepath.Join(binDir(t), "vigil-lab")
	b := make([]byte, 3)
	rand.Read(b)
	name := "pk" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []string{"n1", "n2"} {
				if log, err := os.ReadFile(filepath.Join(lab.BaseDir, name, "nodes", n, "vigild.log")); err == nil {
					if len(log) > 4000 {
						log = log[len(log)-4000:]
					}
					t.Logf("%s's vigild.log, its end:\n%s", n, log)
				}
			}
		}
		var out bytes.Buffer
		if err := lab.Down(context.Background(), name, &out); err != nil {
			t.Logf("lab down: %v\n%s", err, out.String())
		}
	})
	var out bytes.Buffer
	l, err := lab.Up(context.Background(), lab.Config{
		Name: name, Nodes: 2, HBInterval: 200 * time.Millisecond, HBTimeout: time.Second,
		Images: seed, Services: seed, Tool: tool, FromPackage: deb,
	}, &out)
	if err != nil {
		t.Fatalf("lab up --from-package %s: %v\n%s", deb, err, out.String())
	}
	return &pkgLab{t: t, l: l}
}

// view is node's cluster status, nil when its vigild does not answer.
func (p *pkgLab) view(node string) *api.ClusterStatus {
	c, err := api.Dial(filepath.Join(p.l.NodeDir(node), "run", api.SocketName))
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return nil
	}
	return st
}

func (p *pkgLab) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	p.t.Helper()
	begin := time.Now()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Since(begin) > timeout {
			p.t.Fatalf("timed out after %s waiting for %s (last seen: %s)", timeout, what, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// avail is svc's avail on node as observer sees it.
func (p *pkgLab) avail(observer, node, svc string) string {
	st := p.view(observer)
	if st == nil || st.Node[node] == nil || st.Node[node].Services[svc] == nil {
		return "?"
	}
	return st.Node[node].Services[svc].Status.Avail.String()
}

func (p *pkgLab) waitAvail(observer, node, svc, want string, timeout time.Duration) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%s %s on %s (as %s sees it)", svc, want, node, observer), timeout, func() (bool, string) {
		got := p.avail(observer, node, svc)
		return got == want, "avail " + got
	})
}

// exec runs args in node, with stdin; it returns the output and the error.
func (p *pkgLab) exec(node, stdin string, args ...string) (string, error) {
	p.t.Helper()
	cmd, err := p.l.Command(context.Background(), node, args...)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *pkgLab) mustExec(node, stdin string, args ...string) string {
	p.t.Helper()
	out, err := p.exec(node, stdin, args...)
	if err != nil {
		p.t.Fatalf("%s: %s: %v\n%s", node, strings.Join(args, " "), err, out)
	}
	return out
}

// restartVigild stops node's vigild; the node's init starts it again
// 100 ms later, as systemd's Restart= would, reading the config anew.
func (p *pkgLab) restartVigild(node string) {
	p.t.Helper()
	pid := p.l.VigildPid(node)
	if pid == 0 {
		p.t.Fatalf("%s runs no vigild", node)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		p.t.Fatalf("%s: stop vigild %d: %v", node, pid, err)
	}
	p.waitFor(node+"'s vigild restarted", 30*time.Second, func() (bool, string) {
		now := p.l.VigildPid(node)
		return now != 0 && now != pid, "pid " + strconv.Itoa(now)
	})
}

// TestPackagedLab_DemoFailoverRunsOnWhatAnOperatorInstalls runs the
// demo's failover (the registry's node powered off through its BMC, the
// peer fences it and takes the services) on nodes that run the vigil
// package: /usr/sbin/vigild started with the unit's command line, the
// plugins from /usr/lib/vigil/plugins.
func TestPackagedLab_DemoFailoverRunsOnWhatAnOperatorInstalls(t *testing.T) {
	p := newPkgLab(t, true)
	argv, _, err := lab.UnitCommand(filepath.Join(p.l.Package, "usr/lib/systemd/system/vigild.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		p.waitFor(n+" running vigild", startTimeout, func() (bool, string) { return p.l.VigildPid(n) != 0, "no vigild yet" })
		pid := p.l.VigildPid(n)
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if got := strings.Join(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), " "); got != strings.Join(argv, " ") {
			t.Errorf("%s runs vigild as %q, want the unit's ExecStart %q", n, got, strings.Join(argv, " "))
		}
	}
	out := p.mustExec("n1", "", "svcmgr", "plugins")
	if !strings.Contains(out, "/usr/lib/vigil/plugins/vigil-plugin-docker") {
		t.Errorf("n1's svcmgr does not find the packaged plugins:\n%s", out)
	}
	for _, svc := range []string{lab.Registry, lab.Busybox} {
		p.waitAvail("n1", "n1", svc, "up", startTimeout)
	}
	c, err := api.Dial(filepath.Join(p.l.NodeDir("n1"), "run", api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	ha := regexp.MustCompile(`(?m)^orchestrate\s*=\s*ha\s*$`)
	for _, svc := range []string{lab.Registry, lab.Busybox} {
		if err := c.ConfigSet(context.Background(), svc, []string{"orchestrate=ha"}); err != nil {
			t.Fatalf("n1: %s set orchestrate=ha: %v", svc, err)
		}
		p.waitFor("orchestrate = ha in n2's "+svc, 30*time.Second, func() (bool, string) {
			b, _ := os.ReadFile(filepath.Join(p.l.NodeDir("n2"), "etc", svc+".env"))
			return ha.Match(b), "not yet"
		})
	}
	if _, err := p.l.Power(context.Background(), 1, false); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{lab.Registry, lab.Busybox} {
		p.waitAvail("n2", "n2", svc, "up", failoverTimeout)
	}
	log, _ := os.ReadFile(p.l.LogPath("n2"))
	if !regexp.MustCompile(`node fenced: .*target=n1`).Match(log) {
		t.Errorf("n2 took the services without a fence of n1 in its log")
	}
}

// TestPackagedLab_ClusterInitJoinCheck bootstraps a cluster with nodemgr
// on packaged nodes (init on n1, export | join on n2), checks it, then
// shows nodemgr cluster check report a node whose cluster.conf differs
// and a BMC that does not answer, with a non-zero exit.
func TestPackagedLab_ClusterInitJoinCheck(t *testing.T) {
	p := newPkgLab(t, false)
	l := p.l
	// The lab wrote a cluster.conf; nodemgr writes the operator's own,
	// over the lab's network, heartbeat disk and BMCs (their passwords
	// are the lab's bmc-NODE.pass files, where init points).
	labConf, _ := os.ReadFile(filepath.Join(l.NodeDir("n1"), "etc", "cluster.conf"))
	m := regexp.MustCompile(`(?m)^user = (\S+)$`).FindSubmatch(labConf)
	if m == nil {
		t.Fatalf("no BMC user in the lab's cluster.conf:\n%s", labConf)
	}
	p.mustExec("n1", "", "nodemgr", "cluster", "init", "--force", "--name", l.Name, "--nodes", "n1 n2",
		"--hb-net", "n1="+l.NodeAddr(1)+" n2="+l.NodeAddr(2), "--hb-disk", l.LoopDev("hb"),
		"--ipmi", "n1="+l.BMCAddr(1)+" n2="+l.BMCAddr(2), "--ipmi-user", string(m[1]))
	line := p.mustExec("n1", "", "nodemgr", "cluster", "export")
	out := p.mustExec("n2", line, "nodemgr", "cluster", "join", "--force")
	if !strings.Contains(out, "this node n2") {
		t.Errorf("join on n2:\n%s", out)
	}
	a, _ := os.ReadFile(filepath.Join(l.NodeDir("n1"), "etc", "cluster.conf"))
	b, _ := os.ReadFile(filepath.Join(l.NodeDir("n2"), "etc", "cluster.conf"))
	if !bytes.Equal(a, b) || !bytes.Contains(a, []byte("Written by nodemgr cluster init")) {
		t.Fatalf("n2's cluster.conf is not n1's:\n%s\n---\n%s", a, b)
	}
	p.restartVigild("n1")
	p.restartVigild("n2")
	ready := func() (bool, string) {
		st := p.view("n1")
		if st == nil || st.Node["n2"] == nil {
			return false, "n1 does not answer"
		}
		return st.Node["n2"].State == cluster.Ready, "n2 " + string(st.Node["n2"].State)
	}
	p.waitFor("n2 ready as n1 sees it", failoverTimeout, ready)
	var check string
	p.waitFor("nodemgr cluster check passing on n1", 60*time.Second, func() (bool, string) {
		var err error
		check, err = p.exec("n1", "", "nodemgr", "cluster", "check")
		return err == nil, check
	})
	t.Logf("n1: nodemgr cluster check:\n%s", check)

	t.Run("a node with another cluster.conf", func(t *testing.T) {
		p.t = t
		path := filepath.Join(l.NodeDir("n2"), "etc", "cluster.conf")
		orig, _ := os.ReadFile(path)
		changed := strings.Replace(string(orig), "[cluster]\n", "[cluster]\nready_period = 7s\n", 1)
		os.WriteFile(path, []byte(changed), 0o600)
		p.restartVigild("n2")
		p.waitFor("n1 hears n2's new cluster.conf checksum", failoverTimeout, func() (bool, string) {
			st := p.view("n1")
			if st == nil || st.Node["n2"] == nil {
				return false, "n1 does not answer"
			}
			return st.Node["n2"].ClusterConf != "" && st.Node["n2"].ClusterConf != st.Node["n1"].ClusterConf, "n2 publishes " + st.Node["n2"].ClusterConf
		})
		out, err := p.exec("n1", "", "nodemgr", "cluster", "check")
		if err == nil || !regexp.MustCompile(`(?m)^n2\s+cluster\.conf\s+DIFFERS`).MatchString(out) {
			t.Errorf("check with n2's cluster.conf changed: %v\n%s", err, out)
		}
		t.Logf("reported:\n%s", out)
		os.WriteFile(path, orig, 0o600)
		p.restartVigild("n2")
		p.waitFor("n2 ready as n1 sees it", failoverTimeout, ready)
	})

	t.Run("a BMC that does not answer", func(t *testing.T) {
		p.t = t
		b, err := os.ReadFile(l.BMCPidFile("n2"))
		if err != nil {
			t.Fatalf("n2's BMC pid: %v", err)
		}
		// "PID START": the pid, and its start time against pid reuse.
		f := strings.Fields(string(b))
		pid := 0
		if len(f) > 0 {
			pid, _ = strconv.Atoi(f[0])
		}
		if pid <= 0 {
			t.Fatalf("n2's BMC pid file holds %q", b)
		}
		// Stopped, not killed: it neither answers nor is restarted.
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
		out, err := p.exec("n1", "", "nodemgr", "cluster", "check", "--timeout", "10s")
		if err == nil || !regexp.MustCompile(`(?m)^n2\s+stonith\s+FAIL`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^n1\s+stonith\s+ok`).MatchString(out) {
			t.Errorf("check with n2's BMC stopped: %v\n%s", err, out)
		}
		t.Logf("reported:\n%s", out)
	})
}
