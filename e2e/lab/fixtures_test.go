package lab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/core/config"
)

// fixtureLab is a lab as `up` leaves it, without building anything.
func fixtureLab() *Lab {
	l := newLab("fx", 2)
	for i, d := range disks {
		l.Loops = append(l.Loops, Loop{Role: d.role, Dev: "/dev/loop" + itoa(40+i)})
	}
	l.HBInterval, l.HBTimeout = "0.5s", "2s"
	return l
}

func TestFixtures_RenderEverySeedSection(t *testing.T) {
	svcs, err := renderServices(fixtureLab().fixtureVars())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"registry.opensvc.com.env", "busybox.opensvc.com.env"} {
		t.Run(name, func(t *testing.T) {
			got, ok := svcs[name]
			if !ok {
				t.Fatalf("no fixture %s", name)
			}
			if bytes.Contains(got, []byte("{{")) || bytes.Contains(got, []byte("<no value>")) {
				t.Fatalf("unfilled placeholder:\n%s", got)
			}
			seed, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "seed", name))
			if err != nil {
				t.Skipf("no seed file to compare with: %v", err)
			}
			// Every section and keyword of the seed is there, in the same
			// order: the lab changes values, never the shape.
			if a, b := shape(t, seed), shape(t, got); a != b {
				t.Errorf("shape differs from the seed's:\nseed: %s\nlab:  %s", a, b)
			}
		})
	}
}

// shape lists a file's sections and keywords.
func shape(t *testing.T, b []byte) string {
	t.Helper()
	var s []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			s = append(s, line)
		default:
			k, _, _ := strings.Cut(line, "=")
			s = append(s, strings.TrimSpace(k))
		}
	}
	return strings.Join(s, " ")
}

func TestFixtures_ValidateWithSvcmgr(t *testing.T) {
	bin := os.Getenv("VIGIL_BIN_DIR")
	if bin == "" {
		t.Skip("VIGIL_BIN_DIR unset: svcmgr and the plugins are not built (make test sets it)")
	}
	svcs, err := renderServices(fixtureLab().fixtureVars())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range svcs {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(bin, "svcmgr"), "validate", path)
		cmd.Env = append(os.Environ(), "VIGIL_PLUGIN_DIR="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("svcmgr validate %s: %v\n%s", name, err, out)
		}
	}
}

func TestClusterConf_ParsesAndNamesEveryNode(t *testing.T) {
	l := fixtureLab()
	f, err := config.ParseINI("cluster.conf", []byte(l.clusterConf()))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cluster", "hb#1", "hb#2", "stonith#n1", "stonith#n2"}
	var got []string
	for _, s := range f.Sections {
		got = append(got, s.Name)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("sections %v, want %v", got, want)
	}
	conf := l.clusterConf()
	for _, s := range []string{"addrs = n1=" + l.NodeAddr(1) + " n2=" + l.NodeAddr(2), "dev = /dev/loop40", "host = " + l.BMCAddr(2), "cipher = 3", "password_file = /etc/vigil/bmc-n1.pass"} {
		if !strings.Contains(conf, s) {
			t.Errorf("cluster.conf lacks %q:\n%s", s, conf)
		}
	}
}

func TestClusterConf_StonithMethodAndSplitAction(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stonith     string
		splitAction string
		want        []string
		wantNot     []string
	}{
		{
			name: "ipmi by default", stonith: "",
			want:    []string{"type = ipmi", "host = " + fixtureLab().BMCAddr(1)},
			wantNot: []string{"fence_agent", "split_action"},
		},
		{
			name: "fence_ipmilan through the fence agent plugin", stonith: StonithFenceAgent,
			want: []string{
				"type = fence_agent", "agent = fence_ipmilan",
				"options = ip=" + fixtureLab().BMCAddr(2) + " ipport=623 username=admin lanplus=1 cipher=3",
				"password_file = /etc/vigil/bmc-n2.pass", "timeout = 30s",
			},
			wantNot: []string{"type = ipmi"},
		},
		{
			name: "split_action in [cluster]", stonith: StonithIPMI, splitAction: "stop",
			want: []string{"split_action = stop"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := fixtureLab()
			l.Stonith, l.SplitAction = tc.stonith, tc.splitAction
			conf := l.clusterConf()
			f, err := config.ParseINI("cluster.conf", []byte(conf))
			if err != nil {
				t.Fatal(err)
			}
			if tc.splitAction != "" {
				found := false
				for _, e := range f.Sections[0].Entries {
					found = found || (f.Sections[0].Name == "cluster" && e.Key == "split_action" && e.Value == tc.splitAction)
				}
				if !found {
					t.Errorf("[cluster] has no split_action = %s:\n%s", tc.splitAction, conf)
				}
			}
			for _, s := range tc.want {
				if !strings.Contains(conf, s) {
					t.Errorf("cluster.conf lacks %q:\n%s", s, conf)
				}
			}
			for _, s := range tc.wantNot {
				if strings.Contains(conf, s) {
					t.Errorf("cluster.conf has %q:\n%s", s, conf)
				}
			}
		})
	}
}

func TestClusterConf_ArbitratorInTheClientNamespace(t *testing.T) {
	l := fixtureLab()
	if conf := l.clusterConf(); strings.Contains(conf, "arbitrator") {
		t.Fatalf("an arbitrator listed without ArbitratorPort:\n%s", conf)
	}
	l.ArbitratorPort = 7400
	conf := l.clusterConf()
	if !strings.Contains(conf, "[arbitrator#1]\nuri = tcp://"+l.ClientAddr()+":7400\n") {
		t.Fatalf("cluster.conf lists no arbitrator at the client's address:\n%s", conf)
	}
}
