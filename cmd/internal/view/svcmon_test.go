package view

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
)

const (
	deb1 = "deb1.opensvc.com"
	deb2 = "deb2.opensvc.com"
)

// seedServices are the seed's two services as one node runs them.
func seedServices(up bool) map[string]*cluster.ServiceInstance {
	return map[string]*cluster.ServiceInstance{
		"registry.opensvc.com": {Status: status.Summarize("registry.opensvc.com", registry(up)), Nodes: []string{deb1, deb2}},
		"busybox.opensvc.com":  {Status: status.Summarize("busybox.opensvc.com", busybox(up)), Nodes: []string{deb1, deb2}},
	}
}

// seedCluster is the seed's cluster seen from local: the services up on
// deb1, down on deb2.
func seedCluster(local string) *api.ClusterStatus {
	peer := deb2
	if local == deb2 {
		peer = deb1
	}
	cs := &api.ClusterStatus{
		Cluster: "demo", Local: local, Nodes: []string{deb1, deb2},
		Node: map[string]*api.NodeStatus{
			deb1: {State: cluster.Ready, Services: seedServices(true)},
			deb2: {State: cluster.Ready, Services: seedServices(false)},
		},
	}
	cs.Node[peer].HB = map[string]*cluster.HBSeen{
		"hb#1": {LastBeat: time.Unix(1700000000, 0)},
		"hb#2": {LastBeat: time.Unix(1700000000, 0)},
	}
	return cs
}

// dev stands for the service_type keyword, which the seed's services set
// to DEV.
func dev(*cluster.ServiceInstance) string { return "DEV" }

func TestWriteMonitor_ReproducesSeedSvcmon(t *testing.T) {
	seedOrder := []string{"registry.opensvc.com", "busybox.opensvc.com"}
	for _, node := range []string{deb1, deb2} {
		t.Run(node, func(t *testing.T) {
			golden := "svcmon-" + strings.Split(node, ".")[0] + ".txt"
			want, err := os.ReadFile(filepath.Join("testdata", golden))
			if err != nil {
				t.Fatal(err)
			}
			rows := MonitorRows(seedCluster(node), node, MonitorOptions{Services: seedOrder, ServiceType: dev})
			var b strings.Builder
			if err := WriteMonitor(&b, rows); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestWriteMonitor_SortsWidensAndDefaults(t *testing.T) {
	cs := seedCluster(deb1)
	long := "a-service-name-longer-than-twenty.example.com"
	st := status.Summarize(long, []status.Resource{{RID: "ip#1", Group: "ip", Status: status.StdbyDown}})
	cs.Node[deb1].Services[long] = &cluster.ServiceInstance{Status: st, Frozen: true}

	var b strings.Builder
	if err := WriteMonitor(&b, MonitorRows(cs, deb1, MonitorOptions{})); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("want 3 header lines and 3 rows, got:\n%s", b.String())
	}
	for i, prefix := range []string{long, "busybox.opensvc.com ", "registry.opensvc.com "} {
		if !strings.HasPrefix(lines[3+i], prefix) {
			t.Errorf("row %d = %q, want it to start with %q (rows sorted by name)", i, lines[3+i], prefix)
		}
	}
	// Every value starts in its column, as placed by the second header line,
	// however wide the values.
	var starts []int
	for i := range lines[1] {
		if lines[1][i] != ' ' && (i == 0 || lines[1][i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	if len(starts) != 14 || starts[1] != len(long)+1 {
		t.Fatalf("header not widened to the long name: %q", lines[1])
	}
	for _, l := range lines[3:] {
		for _, at := range starts[1:] {
			if at >= len(l) || l[at] == ' ' || l[at-1] != ' ' {
				t.Errorf("no value starts at column %d of %q", at, l)
			}
		}
	}
	if got := lines[3][starts[1]:starts[2]]; got != "-       " {
		t.Errorf("unknown service type = %q, want -", got)
	}
	if !strings.Contains(lines[3], "stdby down") || !strings.HasSuffix(lines[3], "True") {
		t.Errorf("frozen long row = %q", lines[3])
	}
}

func TestMonitorRows_SkipsServicesTheNodeDoesNotRun(t *testing.T) {
	cs := seedCluster(deb1)
	rows := MonitorRows(cs, deb1, MonitorOptions{Services: []string{"nope", "busybox.opensvc.com"}})
	if len(rows) != 1 || rows[0].Service != "busybox.opensvc.com" || rows[0].ServiceType != "-" || rows[0].ContainerType != "hosted" {
		t.Fatalf("rows = %+v", rows)
	}
	if rows := MonitorRows(cs, "deb9", MonitorOptions{}); rows != nil {
		t.Fatalf("unknown node: rows = %+v", rows)
	}
}

func TestWriteClusterMonitor(t *testing.T) {
	upOnBoth := func() *api.ClusterStatus {
		cs := seedCluster(deb1)
		cs.Node[deb2].Services["busybox.opensvc.com"] = seedServices(true)["busybox.opensvc.com"]
		return cs
	}
	tests := []struct {
		name string
		cs   func() *api.ClusterStatus
		o    MonitorOptions
		want string
	}{
		{
			name: "seed: up on deb1, down on deb2",
			cs:   func() *api.ClusterStatus { return seedCluster(deb1) },
			o:    MonitorOptions{ServiceType: dev},
			want: `cluster demo, seen from deb1.opensvc.com
  deb1.opensvc.com  ready  local
  deb2.opensvc.com  ready  hb#1 ok, hb#2 ok

service              service cluster  deb1.opensvc.com (ready)  deb2.opensvc.com (ready)
name                 type    avail    avail overall frozen      avail overall frozen
-------              ------- -------  ----- ------- ------      ----- ------- ------
busybox.opensvc.com  DEV     up       up    up      False       down  down    False
registry.opensvc.com DEV     up       up    up      False       down  down    False
`,
		},
		{
			name: "up on two nodes warns",
			cs:   upOnBoth,
			o:    MonitorOptions{Services: []string{"busybox.opensvc.com"}},
			want: `cluster demo, seen from deb1.opensvc.com
  deb1.opensvc.com  ready  local
  deb2.opensvc.com  ready  hb#1 ok, hb#2 ok

service              service cluster  deb1.opensvc.com (ready)  deb2.opensvc.com (ready)
name                 type    avail    avail overall frozen      avail overall frozen
-------              ------- -------  ----- ------- ------      ----- ------- ------
busybox.opensvc.com  -       warn     up    up      False       up    up      False

!! busybox.opensvc.com is up on 2 nodes (deb1.opensvc.com, deb2.opensvc.com): it must run on one only; stop it on the others
`,
		},
		{
			name: "a lost node's old statuses do not count, stale heartbeats and rejects show",
			cs: func() *api.ClusterStatus {
				cs := upOnBoth()
				cs.Node[deb2].State = cluster.Lost
				cs.Node[deb2].HB["hb#1"].Stale, cs.Node[deb2].HB["hb#1"].Reason = true, "no heartbeat for 10s"
				cs.Node[deb2].HB["hb#2"].Stale = true
				cs.Nodes = append(cs.Nodes, "deb3")
				cs.Rejects = map[string]int{"hb#1/bad_tag": 3}
				return cs
			},
			o: MonitorOptions{Services: []string{"busybox.opensvc.com"}},
			want: `cluster demo, seen from deb1.opensvc.com
  deb1.opensvc.com  ready    local
  deb2.opensvc.com  lost     hb#1 stale (no heartbeat for 10s), hb#2 stale
  deb3              unknown  no heartbeat
  rejected messages: hb#1/bad_tag 3

service              service cluster  deb1.opensvc.com (ready)  deb2.opensvc.com (lost)  deb3 (unknown)
name                 type    avail    avail overall frozen      avail overall frozen     avail overall frozen
-------              ------- -------  ----- ------- ------      ----- ------- ------     ----- ------- ------
busybox.opensvc.com  -       up       up    up      False       up    up      False      -     -       -

deb2.opensvc.com is lost: its columns show the last statuses it sent.
deb3 has not been heard since vigild started.
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteClusterMonitor(&b, tt.cs(), tt.o); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
