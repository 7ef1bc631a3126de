package status

import "testing"

// registry returns the seed's registry.opensvc.com resources, all at st,
// with its sync resource up.
func registry(st Status) []Resource {
	return []Resource{
		{RID: "container#1", Group: GroupContainer, Type: "container.docker", Status: st},
		{RID: "ip#1", Group: GroupIP, Type: "ip", Status: st},
		{RID: "vg#1", Group: GroupDisk, Type: "disk.vg", Status: st},
		{RID: "fs#1", Group: GroupFS, Type: "fs", Status: st},
		{RID: "fs#2", Group: GroupFS, Type: "fs", Status: st},
		{RID: "fs#3", Group: GroupFS, Type: "fs", Status: st},
		{RID: "sync#i0", Group: GroupSync, Type: "sync.rsync", Status: Up},
	}
}

func TestSummarize_SeedActiveAndPassiveNodes(t *testing.T) {
	tests := []struct {
		name string
		st   Status
	}{
		{"deb1 up", Up},
		{"deb2 down", Down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize("registry.opensvc.com", registry(tt.st))
			if s.Avail != tt.st || s.Overall != tt.st {
				t.Errorf("avail %s overall %s, want %s", s.Avail, s.Overall, tt.st)
			}
			// The svcmon columns of the seed.
			want := map[string]Status{
				"container": tt.st, "ip": tt.st, "disk": tt.st, "fs": tt.st,
				"share": NA, "app": NA, "hb": NA, "sync": Up,
			}
			for g, w := range want {
				if got := s.Groups[g]; got != w {
					t.Errorf("group %s = %s, want %s", g, got, w)
				}
			}
		})
	}
}

func TestAvail_IgnoresOptionalDisabledAndAccessories(t *testing.T) {
	rs := []Resource{
		{RID: "ip#1", Group: GroupIP, Status: Up},
		{RID: "fs#1", Group: GroupFS, Status: Down, Optional: true},
		{RID: "fs#2", Group: GroupFS, Status: Down, Disable: true},
		{RID: "sync#1", Group: GroupSync, Status: Down},
		{RID: "hb#1", Group: GroupHB, Status: Down},
	}
	if got := Avail(rs); got != Up {
		t.Fatalf("Avail = %s, want up", got)
	}
	if got := Avail(nil); got != NA {
		t.Fatalf("Avail(nil) = %s, want n/a", got)
	}
}

func TestOverall(t *testing.T) {
	tests := []struct {
		name string
		rs   []Resource
		want Status
	}{
		{"optional down while up warns", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Up},
			{RID: "fs#1", Group: GroupFS, Status: Down, Optional: true},
		}, Warn},
		{"optional down while down stays down", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Down},
			{RID: "fs#1", Group: GroupFS, Status: Down, Optional: true},
		}, Down},
		{"disabled resource is ignored", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Up},
			{RID: "fs#1", Group: GroupFS, Status: Warn, Disable: true},
		}, Up},
		{"sync up on a passive node is neutral", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Down},
			{RID: "sync#i0", Group: GroupSync, Status: Up},
		}, Down},
		{"sync down warns", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Up},
			{RID: "sync#i0", Group: GroupSync, Status: Down},
		}, Warn},
		{"sync n/a is neutral", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Up},
			{RID: "sync#i0", Group: GroupSync, Status: NA},
		}, Up},
		{"hb down next to up warns", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Up},
			{RID: "hb#1", Group: GroupHB, Status: Down},
		}, Warn},
		{"warn anywhere warns", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Down},
			{RID: "app#1", Group: GroupApp, Status: Warn, Optional: true},
		}, Warn},
		{"standby up on passive node", []Resource{
			{RID: "ip#1", Group: GroupIP, Status: Down},
			{RID: "fs#1", Group: GroupFS, Status: StdbyUp, Standby: true},
		}, StdbyUp},
		{"no resource", nil, NA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Overall(Avail(tt.rs), tt.rs); got != tt.want {
				t.Errorf("Overall = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestGroupStatus_IncludesOptionalSkipsDisabled(t *testing.T) {
	rs := []Resource{
		{RID: "fs#1", Group: GroupFS, Status: Up},
		{RID: "fs#2", Group: GroupFS, Status: Down, Optional: true},
		{RID: "fs#3", Group: GroupFS, Status: Warn, Disable: true},
	}
	if got := GroupStatus(rs, GroupFS); got != Warn {
		t.Errorf("fs = %s, want warn (up + optional down)", got)
	}
	if got := GroupStatus(rs[:1], GroupFS); got != Up {
		t.Errorf("fs = %s, want up", got)
	}
	if got := GroupStatus(rs, GroupShare); got != NA {
		t.Errorf("share = %s, want n/a", got)
	}
}

func TestService_GroupMissingReadsNA(t *testing.T) {
	if got := (Service{}).Group(GroupHB); got != NA {
		t.Fatalf("Group(hb) = %s, want n/a", got)
	}
}

func TestSummarize_KeepsUnknownGroups(t *testing.T) {
	s := Summarize("x", []Resource{{RID: "task#1", Group: "task", Status: Up}})
	if got := s.Groups["task"]; got != Up {
		t.Fatalf("task = %s, want up", got)
	}
	if s.Overall != Up || s.Avail != NA {
		t.Fatalf("avail %s overall %s, want n/a up", s.Avail, s.Overall)
	}
}

func TestClusterAvail(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]Status
		want Status
	}{
		{"up on one node", map[string]Status{"deb1": Up, "deb2": Down}, Up},
		{"up on two nodes", map[string]Status{"deb1": Up, "deb2": Up}, Warn},
		{"warn on one node", map[string]Status{"deb1": Down, "deb2": Warn}, Warn},
		{"down everywhere", map[string]Status{"deb1": Down, "deb2": Down}, Down},
		{"standby only", map[string]Status{"deb1": StdbyUp, "deb2": StdbyUp}, Down},
		{"up with standby peer", map[string]Status{"deb1": Up, "deb2": StdbyUp}, Up},
		{"unknown peer", map[string]Status{"deb1": Undef, "deb2": NA}, Undef},
		{"no instance", nil, NA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClusterAvail(tt.in); got != tt.want {
				t.Errorf("ClusterAvail(%v) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
