package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/plugin"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// plugins returns a directory holding the heartbeat and stonith plugins:
// the one `make test` just built (VIGIL_BIN_DIR), else a fresh build.
func plugins(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VIGIL_BIN_DIR"); d != "" {
		return d
	}
	binOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if binDir, binErr = os.MkdirTemp("", "nodemgr-plugins-"); binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/",
			"./plugins/hb-net/cmd/vigil-plugin-hb-net", "./plugins/hb-disk/cmd/vigil-plugin-hb-disk",
			"./plugins/stonith-ipmi/cmd/vigil-plugin-stonith-ipmi")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = &buildError{err, string(out)}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "build: " + e.err.Error() + "\n" + e.out }

// nodemgr runs the command in-process, as root would on the node.
func nodemgr(t *testing.T, configDir, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCmd()
	var o, e bytes.Buffer
	cmd.SetOut(&o)
	cmd.SetErr(&e)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"--config-dir", configDir, "--plugin-dir", plugins(t), "--run-dir", t.TempDir()}, args...))
	err = cmd.Execute()
	return o.String(), e.String(), err
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestClusterInit_WritesAValidConfAndAPrivateSecret(t *testing.T) {
	me := hostname(t)
	tests := []struct {
		name  string
		flags []string
		want  []string // in cluster.conf
	}{
		{"from flags", []string{"--hb-net", me + "=10.0.0.1 n2=10.0.0.2", "--hb-disk", "/dev/disk/by-id/wwn-0x1", "--ipmi", me + "=b1 n2=b2", "--fence-delay-first", "5s"},
			[]string{"[hb#1]\ntype = net\nport = 10000\naddrs = " + me + "=10.0.0.1 n2=10.0.0.2\n", "[hb#2]\ntype = disk\ndev = /dev/disk/by-id/wwn-0x1\n",
				"[stonith#n2]\ntype = ipmi\nhost = b2\nuser = vigil\n", "fence_delay = 5s\n"}},
		{"commented stubs", nil, []string{"# [hb#1]\n# type = net\n", "# [stonith#n2]\n# type = ipmi\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "etc")
			out, errOut, err := nodemgr(t, dir, "", append([]string{"cluster", "init", "--name", "prod", "--nodes", me + " n2"}, tc.flags...)...)
			if err != nil {
				t.Fatalf("init: %v\n%s%s", err, out, errOut)
			}
			if !strings.Contains(out, ": ok (cluster prod") {
				t.Errorf("init did not validate:\n%s", out)
			}
			conf, _ := os.ReadFile(filepath.Join(dir, "cluster.conf"))
			for _, w := range tc.want {
				if !strings.Contains(string(conf), w) {
					t.Errorf("cluster.conf lacks %q:\n%s", w, conf)
				}
			}
			fi, err := os.Stat(filepath.Join(dir, "cluster.secret"))
			if err != nil || fi.Mode().Perm() != 0o400 {
				t.Errorf("secret: %v, mode %v; want 0400", err, fi.Mode())
			}
			if _, _, err := nodemgr(t, dir, "", "validate"); err != nil {
				t.Errorf("validate after init: %v", err)
			}
		})
	}
}

func TestClusterInit_RefusesToReplaceAnExistingSetup(t *testing.T) {
	dir := t.TempDir()
	args := []string{"cluster", "init", "--name", "prod", "--nodes", hostname(t) + " n2"}
	if _, e, err := nodemgr(t, dir, "", args...); err != nil {
		t.Fatal(err, e)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "cluster.secret"))
	if _, _, err := nodemgr(t, dir, "", args...); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second init: %v, want a refusal", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "cluster.secret"))
	if !bytes.Equal(before, after) {
		t.Error("a refused init changed the secret")
	}
}

func TestClusterJoin_CopiesWhatExportPrintsAndChecksIt(t *testing.T) {
	me := hostname(t)
	first := t.TempDir()
	// This host plays both nodes: it is in the node list, so the files
	// validate on either side.
	if _, e, err := nodemgr(t, first, "", "cluster", "init", "--name", "prod", "--nodes", "n1 "+me, "--hb-net", "n1=10.0.0.1 "+me+"=10.0.0.2"); err != nil {
		t.Fatal(err, e)
	}
	line, _, err := nodemgr(t, first, "", "cluster", "export")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		stdin   string
		prepare func(dir string)
		wantErr string
	}{
		{"the exported line", line, nil, ""},
		{"the same line twice", line, func(dir string) {
			if _, _, err := nodemgr(t, dir, line, "cluster", "join"); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"a line cut on the way", line[:len(line)/2], nil, "damaged"},
		{"no line", "", nil, "no join line"},
		{"another cluster here", line, func(dir string) {
			os.WriteFile(filepath.Join(dir, "cluster.conf"), []byte("[cluster]\nname = other\nnodes = "+me+"\n"), 0o600)
		}, "differs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The secret_file path is the first node's: the join writes
			// it where cluster.conf says, as on a real pair of nodes.
			dir := t.TempDir()
			if tc.prepare != nil {
				tc.prepare(dir)
			}
			_, errOut, err := nodemgr(t, dir, tc.stdin, "cluster", "join")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("join: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("join: %v\n%s", err, errOut)
			}
			a, _ := os.ReadFile(filepath.Join(first, "cluster.conf"))
			b, _ := os.ReadFile(filepath.Join(dir, "cluster.conf"))
			if !bytes.Equal(a, b) {
				t.Error("the joined cluster.conf differs from the first node's")
			}
		})
	}
}

func TestValidate_ReportsEveryErrorWithItsLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.conf")
	os.WriteFile(path, []byte("[cluster]\nname = x\nnodes = "+hostname(t)+"\nbogus = 1\n\n[hb#1]\ntype = net\nport = x\n\n[hb#2]\ntype = nosuch\n"), 0o600)
	_, errOut, err := nodemgr(t, dir, "", "validate")
	if err == nil {
		t.Fatal("validate passed a broken file")
	}
	for _, w := range []string{path + ":4: [cluster] bogus", path + ":8: [hb#1] port", path + ":11: [hb#2] type"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("no %q in:\n%s", w, errOut)
		}
	}
}

func TestCheckConfs_ReportsEachNodesDifference(t *testing.T) {
	nc := &cluster.NodeConfig{Path: "/etc/vigil/cluster.conf", Cluster: "c", Local: "n1", Nodes: []string{"n1", "n2"}, Sum: "aaaa",
		Heartbeats: []cluster.HeartbeatConfig{{Name: "hb#1", Type: "hb.net"}, {Name: "hb#2", Type: "hb.disk", Keywords: map[string]string{"dev": "/dev/sdb"}}}}
	beat := &cluster.HBSeen{LastBeat: time.Now()}
	stale := &cluster.HBSeen{LastBeat: time.Now().Add(-time.Hour), Stale: true}
	tests := []struct {
		name string
		n2   *api.NodeStatus
		bad  []string // checks of n2 that differ
	}{
		{"all the same", &api.NodeStatus{State: cluster.Ready, ClusterConf: "aaaa", HB: map[string]*cluster.HBSeen{"hb#1": beat, "hb#2": beat}}, nil},
		{"another cluster.conf", &api.NodeStatus{State: cluster.Ready, ClusterConf: "bbbb", HB: map[string]*cluster.HBSeen{"hb#1": beat, "hb#2": beat}}, []string{"cluster.conf"}},
		{"another disk", &api.NodeStatus{State: cluster.Ready, ClusterConf: "aaaa", HB: map[string]*cluster.HBSeen{"hb#1": beat, "hb#2": stale}}, []string{"hb#2"}},
		{"never heard", &api.NodeStatus{State: cluster.Unknown, HB: map[string]*cluster.HBSeen{"hb#1": {}, "hb#2": {}}}, []string{"cluster.conf", "hb#1", "hb#2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &api.ClusterStatus{Local: "n1", Nodes: nc.Nodes, Node: map[string]*api.NodeStatus{
				"n1": {State: cluster.Ready, ClusterConf: "aaaa"}, "n2": tc.n2}}
			var bad []string
			for _, f := range checkConfs(nc, st) {
				if !f.OK {
					if f.Node != "n2" {
						t.Errorf("%s %s: %s", f.Node, f.Check, f.Detail)
					}
					bad = append(bad, f.Check)
				}
			}
			if strings.Join(bad, " ") != strings.Join(tc.bad, " ") {
				t.Errorf("differences %v, want %v", bad, tc.bad)
			}
		})
	}
}

func TestCheckFencing_ReportsABMCThatDoesNotAnswer(t *testing.T) {
	// A UDP port nobody reads: the IPMI plugin's status call gets no
	// answer, as from a BMC that is off the network.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	port := pc.LocalAddr().(*net.UDPAddr).Port
	dir := t.TempDir()
	pw := filepath.Join(dir, "bmc.pass")
	os.WriteFile(pw, []byte("secret\n"), 0o400)
	me := hostname(t)
	conf := "[cluster]\nname = c\nnodes = " + me + "\n\n[stonith#" + me + "]\ntype = ipmi\nhost = 127.0.0.1\nport = " +
		strconv.Itoa(port) + "\nuser = vigil\npassword_file = " + pw + "\ntimeout = 2s\n"
	os.WriteFile(filepath.Join(dir, "cluster.conf"), []byte(conf), 0o600)
	host := plugin.New(plugin.Config{Dir: plugins(t), Logger: hclog.NewNullLogger()})
	t.Cleanup(host.Close)
	ctx := t.Context()
	infos, _, err := host.Plugins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := cluster.LoadNodeConfig(filepath.Join(dir, "cluster.conf"), cluster.KeywordsOf(infos))
	if err != nil {
		t.Fatal(err)
	}
	found := checkFencing(ctx, host, nc, 10*time.Second)
	if len(found) != 1 || found[0].OK || !strings.Contains(found[0].Detail, "stonith.ipmi") {
		t.Fatalf("fencing check of a silent BMC: %+v, want one failure naming stonith.ipmi", found)
	}
	t.Logf("reported: %s", found[0].Detail)
}
