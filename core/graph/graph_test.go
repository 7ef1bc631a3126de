package graph

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// busybox is the seed's busybox.opensvc.com, in config file order.
func busybox() []Item {
	return []Item{
		{RID: "container#1", Group: "container", Subset: "00database"},
		{RID: "container#2", Group: "container", Subset: "01appservers", Parallel: true},
		{RID: "container#3", Group: "container", Subset: "01appservers", Parallel: true},
		{RID: "container#4", Group: "container", Subset: "01appservers", Parallel: true},
		{RID: "container#5", Group: "container", Subset: "01appservers", Parallel: true},
		{RID: "container#6", Group: "container", Subset: "02webservers"},
		{RID: "container#7", Group: "container", Subset: "02webservers"},
		{RID: "ip#1", Group: "ip"},
		{RID: "vg#1", Group: "disk"},
		{RID: "fs#1", Group: "fs"},
		{RID: "fs#2", Group: "fs"},
	}
}

// render writes waves as "a | b c | d": waves separated by " | ", the items
// of a wave by a space.
func render(waves []Wave) string {
	var parts []string
	for _, w := range waves {
		var ids []string
		for _, it := range w {
			ids = append(ids, it.RID)
		}
		parts = append(parts, strings.Join(ids, " "))
	}
	return strings.Join(parts, " | ")
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name  string
		items []Item
		start string
		stop  string
	}{
		{
			name:  "seed busybox",
			items: busybox(),
			start: "ip#1 | vg#1 | fs#1 | fs#2 | container#1 | container#2 container#3 container#4 container#5 | container#6 | container#7",
			stop:  "container#7 | container#6 | container#5 container#4 container#3 container#2 | container#1 | fs#2 | fs#1 | vg#1 | ip#1",
		},
		{
			name: "seed registry",
			items: []Item{
				{RID: "container#1", Group: "container"},
				{RID: "ip#1", Group: "ip"},
				{RID: "vg#1", Group: "disk"},
				{RID: "fs#1", Group: "fs"},
				{RID: "fs#2", Group: "fs"},
				{RID: "fs#3", Group: "fs"},
			},
			start: "ip#1 | vg#1 | fs#1 | fs#2 | fs#3 | container#1",
			stop:  "container#1 | fs#3 | fs#2 | fs#1 | vg#1 | ip#1",
		},
		{
			name: "every group in order",
			items: []Item{
				{RID: "sync#1", Group: "sync"}, {RID: "app#1", Group: "app"},
				{RID: "container#1", Group: "container"}, {RID: "share#1", Group: "share"},
				{RID: "fs#1", Group: "fs"}, {RID: "disk#1", Group: "disk"}, {RID: "ip#1", Group: "ip"},
			},
			start: "ip#1 | disk#1 | fs#1 | share#1 | container#1 | app#1 | sync#1",
			stop:  "sync#1 | app#1 | container#1 | share#1 | fs#1 | disk#1 | ip#1",
		},
		{
			name: "rid index is numeric",
			items: []Item{
				{RID: "container#10", Group: "container"}, {RID: "container#2", Group: "container"},
				{RID: "container#1", Group: "container"},
			},
			start: "container#1 | container#2 | container#10",
			stop:  "container#10 | container#2 | container#1",
		},
		{
			name: "ids without a number after numbered ones",
			items: []Item{
				{RID: "sync#i0", Group: "sync"}, {RID: "sync#1", Group: "sync"},
			},
			start: "sync#1 | sync#i0",
			stop:  "sync#i0 | sync#1",
		},
		{
			name: "no subset before subsets",
			items: []Item{
				{RID: "app#1", Group: "app", Subset: "a"},
				{RID: "app#2", Group: "app"},
				{RID: "app#3", Group: "app", Subset: "b"},
			},
			start: "app#2 | app#1 | app#3",
			stop:  "app#3 | app#1 | app#2",
		},
		{
			name: "parallel subsets are separate waves",
			items: []Item{
				{RID: "app#1", Group: "app", Subset: "a", Parallel: true},
				{RID: "app#2", Group: "app", Subset: "b", Parallel: true},
				{RID: "app#3", Group: "app", Subset: "a", Parallel: true},
				{RID: "app#4", Group: "app", Subset: "b", Parallel: true},
			},
			start: "app#1 app#3 | app#2 app#4",
			stop:  "app#4 app#2 | app#3 app#1",
		},
		{
			name: "same subset name in two groups does not merge",
			items: []Item{
				{RID: "fs#1", Group: "fs", Subset: "x", Parallel: true},
				{RID: "container#1", Group: "container", Subset: "x", Parallel: true},
			},
			start: "fs#1 | container#1",
			stop:  "container#1 | fs#1",
		},
		{
			name: "parallel ignored without subset",
			items: []Item{
				{RID: "app#1", Group: "app", Parallel: true},
				{RID: "app#2", Group: "app", Parallel: true},
			},
			start: "app#1 | app#2",
			stop:  "app#2 | app#1",
		},
		{name: "empty", items: nil, start: "", stop: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, err := Plan(tt.items, Start)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(start); got != tt.start {
				t.Errorf("start:\n got  %s\n want %s", got, tt.start)
			}
			stop, err := Plan(tt.items, Stop)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(stop); got != tt.stop {
				t.Errorf("stop:\n got  %s\n want %s", got, tt.stop)
			}
		})
	}
}

func TestPlan_DoesNotModifyInput(t *testing.T) {
	items := busybox()
	orig := slices.Clone(items)
	if _, err := Plan(items, Stop); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(items, orig, func(a, b Item) bool { return a.RID == b.RID }) {
		t.Fatal("Plan reordered its input")
	}
}

func TestPlan_Errors(t *testing.T) {
	tests := []struct {
		name   string
		items  []Item
		action Action
		want   error
	}{
		{"unknown group", []Item{{RID: "hb#1", Group: "hb"}}, Start, ErrUnknownGroup},
		{"duplicate rid", []Item{{RID: "fs#1", Group: "fs"}, {RID: "fs#1", Group: "fs"}}, Start, ErrDuplicateRID},
		{"zero action", []Item{{RID: "fs#1", Group: "fs"}}, Action(0), ErrUnknownAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waves, err := Plan(tt.items, tt.action)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if waves != nil {
				t.Fatalf("waves = %v, want none", waves)
			}
		})
	}
}

func TestPlan_UnknownGroupErrorNamesTheResource(t *testing.T) {
	_, err := Plan([]Item{{RID: "foo#1", Group: "foo"}}, Start)
	if err == nil || !strings.Contains(err.Error(), "foo#1") || !strings.Contains(err.Error(), "ip, disk") {
		t.Fatalf("err = %v", err)
	}
}

func TestRollback(t *testing.T) {
	tests := []struct {
		name    string
		started []Item
		want    string
	}{
		{
			name: "failed in the parallel subset",
			// container#3 failed; its wave peers and everything before were started.
			started: []Item{
				{RID: "ip#1", Group: "ip"}, {RID: "vg#1", Group: "disk"},
				{RID: "fs#1", Group: "fs"}, {RID: "fs#2", Group: "fs"},
				{RID: "container#1", Group: "container", Subset: "00database"},
				{RID: "container#2", Group: "container", Subset: "01appservers", Parallel: true},
				{RID: "container#4", Group: "container", Subset: "01appservers", Parallel: true},
				{RID: "container#5", Group: "container", Subset: "01appservers", Parallel: true},
			},
			want: "container#5 container#4 container#2 | container#1 | fs#2 | fs#1 | vg#1 | ip#1",
		},
		{
			name:    "order of the input does not matter",
			started: []Item{{RID: "fs#1", Group: "fs"}, {RID: "ip#1", Group: "ip"}},
			want:    "fs#1 | ip#1",
		},
		{name: "nothing started", started: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render(Rollback(tt.started)); got != tt.want {
				t.Errorf("\n got  %s\n want %s", got, tt.want)
			}
		})
	}
}

func TestRollback_AllStartedIsStopPlan(t *testing.T) {
	stop, err := Plan(busybox(), Stop)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := render(Rollback(busybox())), render(stop); got != want {
		t.Fatalf("rollback %s\nstop     %s", got, want)
	}
}

func TestAction_String(t *testing.T) {
	if Start.String() != "start" || Stop.String() != "stop" || Action(0).String() != "Action(0)" {
		t.Fatal(Start, Stop, Action(0))
	}
}

// renderSchedule writes a schedule as "a<-[] b<-[a] ...": each step with
// the ids of the steps it waits for.
func renderSchedule(steps []Step) string {
	var parts []string
	for _, s := range steps {
		var after []string
		for _, j := range s.After {
			after = append(after, steps[j].Item.RID)
		}
		parts = append(parts, s.Item.RID+"<-["+strings.Join(after, " ")+"]")
	}
	return strings.Join(parts, " ")
}

// registry is the seed's registry.opensvc.com: fs#2 and fs#3 mount on
// fs#1.
func registry() []Item {
	return []Item{
		{RID: "container#1", Group: "container"},
		{RID: "ip#1", Group: "ip"},
		{RID: "vg#1", Group: "disk"},
		{RID: "fs#1", Group: "fs", Mount: "/opt/registry", Paths: []string{"/dev/mapper/vgregistry-lvregistryroot"}},
		{RID: "fs#2", Group: "fs", Mount: "/opt/registry/dockerdata", Paths: []string{"/dev/mapper/vgregistry-lvdockerdata"}},
		{RID: "fs#3", Group: "fs", Mount: "/opt/registry/registrydata/", Paths: []string{"/dev/mapper/vgregistry-lvregistrydata"}},
	}
}

func TestSchedule(t *testing.T) {
	tests := []struct {
		name  string
		items []Item
		start string
		stop  string
	}{
		{
			name:  "seed registry: ip beside vg, fs#2 and fs#3 together on fs#1",
			items: registry(),
			start: "ip#1<-[] vg#1<-[] fs#1<-[ip#1 vg#1] fs#2<-[ip#1 vg#1 fs#1] fs#3<-[ip#1 vg#1 fs#1] container#1<-[ip#1 vg#1 fs#1 fs#2 fs#3]",
			stop:  "container#1<-[] fs#3<-[container#1] fs#2<-[container#1] fs#1<-[container#1 fs#3 fs#2] vg#1<-[container#1 fs#3 fs#2 fs#1] ip#1<-[container#1 fs#3 fs#2 fs#1]",
		},
		{
			name: "a filesystem on a device file of another waits for it",
			items: []Item{
				{RID: "fs#1", Group: "fs", Mount: "/srv/images"},
				{RID: "fs#2", Group: "fs", Mount: "/mnt/loop", Paths: []string{"/srv/images/disk.img"}},
				{RID: "fs#3", Group: "fs", Mount: "/mnt/other"},
			},
			start: "fs#1<-[] fs#2<-[fs#1] fs#3<-[]",
			stop:  "fs#3<-[] fs#2<-[] fs#1<-[fs#2]",
		},
		{
			name: "a mount point above an earlier one keeps the file's order",
			items: []Item{
				{RID: "fs#1", Group: "fs", Mount: "/srv/a/b"},
				{RID: "fs#2", Group: "fs", Mount: "/srv/a"},
			},
			start: "fs#1<-[] fs#2<-[fs#1]",
			stop:  "fs#2<-[] fs#1<-[fs#2]",
		},
		{
			name: "filesystems of a subset keep their order, after the plain ones",
			items: []Item{
				{RID: "fs#1", Group: "fs", Mount: "/a"},
				{RID: "fs#2", Group: "fs", Mount: "/b", Subset: "s"},
				{RID: "fs#3", Group: "fs", Mount: "/c", Subset: "s"},
				{RID: "fs#4", Group: "fs", Mount: "/d"},
			},
			start: "fs#1<-[] fs#4<-[] fs#2<-[fs#1 fs#4] fs#3<-[fs#1 fs#4 fs#2]",
			stop:  "fs#3<-[] fs#2<-[fs#3] fs#4<-[fs#3 fs#2] fs#1<-[fs#3 fs#2]",
		},
		{
			name: "containers keep Plan's order and wait for every earlier group",
			items: []Item{
				{RID: "container#2", Group: "container"},
				{RID: "container#1", Group: "container"},
				{RID: "ip#1", Group: "ip"},
				{RID: "app#1", Group: "app"},
			},
			start: "ip#1<-[] container#1<-[ip#1] container#2<-[ip#1 container#1] app#1<-[ip#1 container#1 container#2]",
			stop:  "app#1<-[] container#2<-[app#1] container#1<-[app#1 container#2] ip#1<-[app#1 container#2 container#1]",
		},
		{
			name:  "nothing",
			items: nil,
			start: "",
			stop:  "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				a    Action
				want string
			}{{Start, tc.start}, {Stop, tc.stop}} {
				steps, err := Schedule(tc.items, c.a)
				if err != nil {
					t.Fatal(err)
				}
				if got := renderSchedule(steps); got != c.want {
					t.Errorf("%s:\n got %s\nwant %s", c.a, got, c.want)
				}
			}
		})
	}
}

// Schedule keeps Plan's errors, and a rollback of everything started is
// the stop schedule.
func TestSchedule_ErrorsAndRollback(t *testing.T) {
	if _, err := Schedule([]Item{{RID: "x#1", Group: "nope"}}, Start); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("unknown group: %v", err)
	}
	if _, err := Schedule([]Item{{RID: "ip#1", Group: "ip"}, {RID: "ip#1", Group: "ip"}}, Stop); !errors.Is(err, ErrDuplicateRID) {
		t.Errorf("duplicate rid: %v", err)
	}
	stop, err := Schedule(registry(), Stop)
	if err != nil {
		t.Fatal(err)
	}
	items := registry()
	slices.Reverse(items)
	if got, want := renderSchedule(RollbackSchedule(items)), renderSchedule(stop); got != want {
		t.Errorf("rollback of all:\n got %s\nwant %s", got, want)
	}
}
