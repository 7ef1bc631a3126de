package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var seedFiles = []string{"busybox.opensvc.com.env", "registry.opensvc.com.env"}

func TestParse_SeedFilesLoadUnchanged(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "seed")
	dirs := []struct{ name, dir string }{
		{"testdata", "testdata"},
		{"shared", shared},
	}
	for _, d := range dirs {
		for _, name := range seedFiles {
			t.Run(d.name+"/"+name, func(t *testing.T) {
				path := filepath.Join(d.dir, name)
				if _, err := os.Stat(path); d.name == "shared" && errors.Is(err, fs.ErrNotExist) {
					t.Skipf("%s is absent: the repository is not checked out next to shared/", path)
				}
				svc, err := Load(path, testSchema())
				if err != nil {
					t.Fatal(err)
				}
				if want := strings.TrimSuffix(name, ".env"); svc.Name != want {
					t.Errorf("Name = %q, want %q", svc.Name, want)
				}
			})
		}
	}
	t.Run("testdata copies match shared", func(t *testing.T) {
		for _, name := range seedFiles {
			orig, err := os.ReadFile(filepath.Join(shared, name))
			if errors.Is(err, fs.ErrNotExist) {
				t.Skipf("%s is absent: the repository is not checked out next to shared/", shared)
			}
			if err != nil {
				t.Fatal(err)
			}
			cp, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(orig, cp) {
				t.Errorf("testdata/%s differs from %s; copy it again", name, filepath.Join(shared, name))
			}
		}
	})
}

func TestParse_BusyboxResourcesInStartOrder(t *testing.T) {
	svc, err := Load(filepath.Join("testdata", "busybox.opensvc.com.env"), testSchema())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ rid, typ, subset string }{
		{"ip#1", "ip", ""},
		{"vg#1", "disk.vg", ""},
		{"fs#1", "fs", ""},
		{"fs#2", "fs", ""},
		{"container#1", "container.docker", "00database"},
		{"container#2", "container.docker", "01appservers"},
		{"container#3", "container.docker", "01appservers"},
		{"container#4", "container.docker", "01appservers"},
		{"container#5", "container.docker", "01appservers"},
		{"container#6", "container.docker", "02webservers"},
		{"container#7", "container.docker", "02webservers"},
	}
	if len(svc.Resources) != len(want) {
		t.Fatalf("got %d resources, want %d", len(svc.Resources), len(want))
	}
	containers := 0
	for i, w := range want {
		r := svc.Resources[i]
		if r.RID != w.rid || r.Type != w.typ || r.Subset != w.subset {
			t.Errorf("resource %d = %s %s subset %q, want %s %s subset %q", i, r.RID, r.Type, r.Subset, w.rid, w.typ, w.subset)
		}
		if r.Group == "container" {
			containers++
		}
	}
	if containers != 7 {
		t.Errorf("got %d containers, want 7", containers)
	}

	subsets := []struct {
		rid      string
		present  bool
		parallel bool
	}{
		{"container#1", false, false}, // 00database has no section
		{"container#2", true, true},
		{"container#5", true, true},
		{"container#6", true, false},
		{"ip#1", false, false},
	}
	for _, tt := range subsets {
		t.Run("subset of "+tt.rid, func(t *testing.T) {
			ss := svc.SubsetOf(svc.Resource(tt.rid))
			if (ss != nil) != tt.present {
				t.Fatalf("SubsetOf = %+v, want present=%v", ss, tt.present)
			}
			if ss != nil && ss.Parallel != tt.parallel {
				t.Errorf("Parallel = %v, want %v", ss.Parallel, tt.parallel)
			}
		})
	}
	if ss := svc.Subsets["container.docker:01appservers"]; ss == nil || ss.Line != 34 || ss.Name != "01appservers" {
		t.Errorf("Subsets[container.docker:01appservers] = %+v", ss)
	}
	if vg := svc.Resource("vg#1"); vg.Keywords["scsireserv"] != "false" || vg.Keywords["vgname"] != "vgbusybox" {
		t.Errorf("vg#1 keywords = %v", vg.Keywords)
	}
}

func TestParse_RegistryKeywordsAndDefaults(t *testing.T) {
	svc, err := Load(filepath.Join("testdata", "registry.opensvc.com.env"), testSchema())
	if err != nil {
		t.Fatal(err)
	}
	wantSvc := map[string]string{
		"orchestrate":        "start",
		"app":                "OSVCLAB",
		"service_type":       "DEV",
		"nodes":              "deb1.opensvc.com deb2.opensvc.com",
		"docker_data_dir":    "/opt/registry.opensvc.com/dockerdata",
		"docker_daemon_args": "--ip 37.59.71.25",
		"monitor_action":     "failover",
		"status_schedule":    "10s",
		"monitor_schedule":   "1s",
		"stonith":            "true",
		"placement":          "nodes order",
	}
	for k, v := range wantSvc {
		if got := svc.Keywords[k]; got != v {
			t.Errorf("service %s = %q, want %q", k, got, v)
		}
	}
	c := svc.Resource("container#1")
	if got, want := c.Keywords["run_args"], "-v /opt/registry.opensvc.com/registrydata:/registrydata -e STORAGE_PATH=/registrydata -p 5000:5000"; got != want {
		t.Errorf("run_args = %q, want %q", got, want)
	}
	if _, ok := c.Keywords["type"]; ok {
		t.Error("the type selector was passed on as a keyword")
	}
	for _, k := range []string{"monitor", "restart", "restart_delay", "optional", "disable", "standby", "subset", "tags"} {
		if _, ok := c.Keywords[k]; !ok {
			t.Errorf("common keyword %s missing from Keywords", k)
		}
	}
	if c.Monitor || c.Optional || c.Disable || c.Standby || c.Restart != 3 || c.RestartDelay != 2*time.Second || len(c.Tags) != 0 {
		t.Errorf("common fields not at their defaults: %+v", c)
	}
	if fs1 := svc.Resource("fs#1"); fs1.Keywords["type"] != "ext4" || fs1.Type != "fs" {
		t.Errorf("fs#1: type %s keywords %v; want type fs with keyword type=ext4", fs1.Type, fs1.Keywords)
	}
	if vg := svc.Resource("vg#1"); vg.Keywords["scsireserv"] != "false" {
		t.Errorf("vg#1 scsireserv default = %q, want false", vg.Keywords["scsireserv"])
	}
}

func TestParse_AcceptsAliasesAndTypeSelectors(t *testing.T) {
	data := `[DEFAULT]
env = PRD
orchestrate = ha

[container#1]
type = docker
image = busybox
monitor = yes
restart = 2
restart_delay = 500ms
tags = a  b
subset = web

[subset#container:web]
parallel = on

[ip#1]
name = svc.example.com
dev = eth0

[vg#1]
name = vg0
scsi_reserve = true

[disk#2]
type = vg
vgname = vg1

[vg#3]
type = disk.vg
vgname = vg2

[fs#1]
dev = /dev/vg0/lv
mnt = /srv
type = xfs
`
	svc, err := Parse("svc.conf", []byte(data), testSchema())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rid, typ, key, want string
	}{
		{"container#1", "container.docker", "run_image", "busybox"},
		{"ip#1", "ip", "ipname", "svc.example.com"},
		{"ip#1", "ip", "ipdev", "eth0"},
		{"vg#1", "disk.vg", "vgname", "vg0"},
		{"vg#1", "disk.vg", "scsireserv", "true"},
		{"disk#2", "disk.vg", "vgname", "vg1"},
		{"vg#3", "disk.vg", "vgname", "vg2"},
		{"fs#1", "fs", "dev", "/dev/vg0/lv"},
		{"fs#1", "fs", "type", "xfs"},
	}
	for _, tt := range tests {
		t.Run(tt.rid+"/"+tt.key, func(t *testing.T) {
			r := svc.Resource(tt.rid)
			if r == nil {
				t.Fatalf("no resource %s", tt.rid)
			}
			if r.Type != tt.typ {
				t.Errorf("Type = %q, want %q", r.Type, tt.typ)
			}
			if got := r.Keywords[tt.key]; got != tt.want {
				t.Errorf("%s = %q, want %q (keywords %v)", tt.key, got, tt.want, r.Keywords)
			}
		})
	}
	if svc.Name != "svc" || svc.Keywords["service_type"] != "PRD" {
		t.Errorf("name %q, service_type %q", svc.Name, svc.Keywords["service_type"])
	}
	c := svc.Resource("container#1")
	if !c.Monitor || c.Restart != 2 || c.RestartDelay != 500*time.Millisecond || strings.Join(c.Tags, ",") != "a,b" {
		t.Errorf("common fields = %+v", c)
	}
	if ss := svc.SubsetOf(c); ss == nil || !ss.Parallel || ss.Type != "container" {
		t.Errorf("a subset written with a bare group did not match: %+v", ss)
	}
	var rids []string
	for _, r := range svc.Resources {
		rids = append(rids, r.RID)
	}
	if got, want := strings.Join(rids, " "), "ip#1 vg#1 disk#2 vg#3 fs#1 container#1"; got != want {
		t.Errorf("order = %s, want %s", got, want)
	}
}

func TestParse_OrdersByGroupSubsetThenNumber(t *testing.T) {
	data := "[fs#10]\ndev=a\nmnt=b\ntype=c\n[fs#2]\ndev=a\nmnt=b\ntype=c\n" +
		"[fs#1]\ndev=a\nmnt=b\ntype=c\nsubset=z\n[fs#x]\ndev=a\nmnt=b\ntype=c\n[ip#3]\nipname=a\nipdev=b\n"
	svc, err := Parse("s.env", []byte(data), testSchema())
	if err != nil {
		t.Fatal(err)
	}
	var rids []string
	for _, r := range svc.Resources {
		rids = append(rids, r.RID)
	}
	if got, want := strings.Join(rids, " "), "ip#3 fs#2 fs#10 fs#x fs#1"; got != want {
		t.Errorf("order = %s, want %s", got, want)
	}
}

func TestParse_ReportsProblemsWithLineAndSection(t *testing.T) {
	const valid = "[DEFAULT]\nnodes = n1\n\n[fs#1]\ndev = /dev/sda1\nmnt = /srv\ntype = ext4\n"
	tests := []struct {
		name string
		data string
		want []string // every error, in line order
		kind error
	}{
		{"mistyped keyword suggests the nearest",
			valid + "mnt_opts = rw\n",
			[]string{`registry.env:8: [fs#1] mnt_opts: unknown keyword; did you mean "mnt_opt"?`},
			ErrUnknownKeyword},
		{"unknown keyword far from any",
			valid + "zzzzzzzz = 1\n",
			[]string{`registry.env:8: [fs#1] zzzzzzzz: unknown keyword for fs (plugin "fs")`},
			ErrUnknownKeyword},
		{"service keyword in a resource",
			valid + "orchestrate = ha\n",
			[]string{`registry.env:8: [fs#1] orchestrate: unknown keyword; it is a service keyword and belongs in [DEFAULT]`},
			ErrUnknownKeyword},
		{"resource keyword in DEFAULT",
			"[DEFAULT]\nrun_image = x\n",
			[]string{`registry.env:2: [DEFAULT] run_image: unknown keyword; it is a container.docker keyword`},
			ErrUnknownKeyword},
		{"alias and canonical both set",
			"[vg#1]\nvgname = a\nscsireserv = true\nscsi_reserve = false\n",
			[]string{`registry.env:4: [vg#1] scsi_reserve: also set as "scsireserv" on line 3 ("scsi_reserve" is an alias of "scsireserv"); keep one`},
			ErrAliasConflict},
		{"bad bool",
			"[vg#1]\nvgname = a\nscsireserv = maybe\n",
			[]string{`registry.env:3: [vg#1] scsireserv: "maybe" is not a boolean (use true or false)`},
			ErrInvalidValue},
		{"bad int, duration and candidate",
			"[DEFAULT]\norchestrate = hq\nstatus_schedule = soon\n[fs#1]\ndev=a\nmnt=b\ntype=c\nrestart = two\n",
			[]string{
				`registry.env:2: [DEFAULT] orchestrate: "hq" is not one of no, start, ha; did you mean "ha"?`,
				`registry.env:3: [DEFAULT] status_schedule: "soon" is not a duration`,
				`registry.env:8: [fs#1] restart: "two" is not an integer`,
			},
			ErrInvalidValue},
		{"negative restart",
			"[fs#1]\ndev=a\nmnt=b\ntype=c\nrestart = -1\n",
			[]string{`registry.env:5: [fs#1] restart: -1: cannot be negative`},
			ErrInvalidValue},
		{"missing required",
			"[container#1]\ntype = docker\nrun_args = -p 80:80\n",
			[]string{`registry.env:1: [container#1] run_image: required keyword is missing (Image to run)`},
			ErrMissingKeyword},
		{"empty required",
			"[ip#1]\nipname =\nipdev = eth0\n",
			[]string{`registry.env:2: [ip#1] ipname: required keyword is empty`},
			ErrMissingKeyword},
		{"unknown type lists the group's types",
			"[container#1]\ntype = dockr\nrun_image = x\n",
			[]string{`registry.env:2: [container#1] type: unknown type "dockr"; known container types: docker; did you mean "docker"?`},
			ErrUnknownType},
		{"group section without type",
			"[container#1]\nrun_image = x\n",
			[]string{`registry.env:1: [container#1] type: required to select the container driver; known container types: docker`},
			ErrMissingKeyword},
		{"type on a plain type that takes none",
			"[ip#1]\ntype = cni\nipname = a\nipdev = eth0\n",
			[]string{`registry.env:2: [ip#1] type: unknown type "cni"; only the plain ip type is served: remove type`},
			ErrUnknownType},
		{"group nobody serves",
			"[app#1]\ntype = simple\n",
			[]string{`registry.env:2: [app#1] type: unknown type "simple"; known app types: none; no plugin serves this group`},
			ErrUnknownType},
		{"unknown section prefix",
			"[contaner#1]\ntype = docker\n",
			[]string{`registry.env:1: [contaner#1] unknown section prefix "contaner"; did you mean [container#...]?`},
			ErrUnknownSection},
		{"driver used as section prefix",
			"[docker#1]\nrun_image = x\n",
			[]string{`registry.env:1: [docker#1] unknown section prefix "docker"; write [container#<n>] with type = docker`},
			ErrUnknownSection},
		{"section without id",
			"[fs]\ndev = a\n",
			[]string{`registry.env:1: [fs] expected [DEFAULT], [<driver>#<n>] or [subset#<type>:<name>]`},
			ErrUnknownSection},
		{"lowercase default",
			"[default]\nnodes = a\n",
			[]string{`registry.env:1: [default] write [DEFAULT] in capitals`},
			ErrUnknownSection},
		{"alias section contradicted by type",
			"[vg#1]\ntype = zfs\nvgname = a\n",
			[]string{`registry.env:2: [vg#1] type: "zfs" contradicts the section prefix "vg", which selects disk.vg; remove type`},
			ErrInvalidValue},
		{"duplicate section",
			valid + "\n[fs#1]\ndev = b\n",
			[]string{`registry.env:9: [fs#1] duplicate section, first defined on line 4; merge the two`},
			ErrDuplicate},
		{"subset of an unknown type",
			"[subset#container.dokcer:web]\nparallel = true\n",
			[]string{`registry.env:1: [subset#container.dokcer:web] unknown type "container.dokcer"; a subset names a type (container.docker) or a group (ip, disk, fs, share, container, app, sync); did you mean "container.docker"?`},
			ErrUnknownType},
		{"subset declared twice through an alias",
			"[subset#vg:a]\n[subset#disk.vg:a]\n",
			[]string{`registry.env:2: [subset#disk.vg:a] subset disk.vg:a is already defined on line 1; merge the two`},
			ErrDuplicate},
		{"subset keyword typo",
			"[subset#container:web]\nparalel = true\n",
			[]string{`registry.env:2: [subset#container:web] paralel: unknown keyword; did you mean "parallel"?`},
			ErrUnknownKeyword},
		{"several problems at once",
			"[DEFAULT]\nnodes = n1\nmonitor_action = reboot\n\n" +
				"[container#1]\ntype = docker\nimage = x\nrun_image = y\n\n" +
				"[fs#1]\ndev = /dev/sda1\nmnt_opts = rw\n\n" +
				"[ip#1]\nipname = a\nipdev = eth0\nipdev = eth1\n",
			[]string{
				`registry.env:3: [DEFAULT] monitor_action: "reboot" is not one of failover, freeze_stop, none`,
				`registry.env:8: [container#1] run_image: also set as "image" on line 7`,
				`registry.env:10: [fs#1] mnt: required keyword is missing`,
				`registry.env:10: [fs#1] type: required keyword is missing`,
				`registry.env:12: [fs#1] mnt_opts: unknown keyword; did you mean "mnt_opt"?`,
				`registry.env:17: [ip#1] ipdev: duplicate keyword, first set on line 16`,
			},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := Parse("registry.env", []byte(tt.data), testSchema())
			if svc != nil {
				t.Error("got a service along with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v is not config.Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			lines := strings.Split(err.Error(), "\n")
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, lines[i], w)
				}
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(err, %v) = false", tt.kind)
			}
		})
	}
}

func TestParse_ServiceNameFromFileName(t *testing.T) {
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"/etc/vigil/busybox.opensvc.com.env", "busybox.opensvc.com", true},
		{"svc.conf", "svc", true},
		{"busybox.opensvc.com", "", false},
		{".env", "", false},
		{"a b.env", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			svc, err := Parse(tt.path, []byte("[DEFAULT]\n"), testSchema())
			if !tt.ok {
				if !errors.Is(err, ErrBadServiceName) {
					t.Fatalf("err = %v, want ErrBadServiceName", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if svc.Name != tt.want {
				t.Errorf("Name = %q, want %q", svc.Name, tt.want)
			}
		})
	}
}

func TestLoad_WrapsReadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.env"), testSchema())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	var errs Errors
	if errors.As(err, &errs) {
		t.Error("a read error came back as config Errors")
	}
}

func TestErrors_SortedOnePerLine(t *testing.T) {
	errs := Errors{
		{File: "a.env", Line: 9, Section: "fs#1", Keyword: "dev", Msg: "late", Err: ErrInvalidValue},
		{File: "a.env", Line: 2, Msg: "early", Err: ErrSyntax},
		{File: "a.env", Msg: "whole file", Err: ErrBadServiceName},
	}
	want := "a.env: whole file\na.env:2: early\na.env:9: [fs#1] dev: late"
	if got := errs.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	var err error = errs
	if !errors.As(err, &Errors{}) {
		t.Error("errors.As(err, &Errors{}) = false")
	}
	var one *Error
	if !errors.As(err, &one) || one.Msg != "late" {
		t.Errorf("errors.As(err, *Error) = %v", one)
	}
	if !errors.Is(err, ErrSyntax) || errors.Is(err, ErrDuplicate) {
		t.Error("errors.Is does not see the kinds of the individual errors")
	}
}

func TestParse_TypeSelectsADriverBesideThePlainType(t *testing.T) {
	s := testSchema()
	if err := s.AddType(&TypeSchema{Type: "ip.cni", Plugin: "cni", Keywords: []Keyword{{Name: "network", Required: true}}}); err != nil {
		t.Fatal(err)
	}
	svc, err := Parse("s.env", []byte("[ip#1]\nipname = a\nipdev = eth0\n[ip#2]\ntype = cni\nnetwork = n\n"), s)
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Resource("ip#1").Type; got != "ip" {
		t.Errorf("ip#1 type = %s, want ip", got)
	}
	if r := svc.Resource("ip#2"); r.Type != "ip.cni" || r.Group != "ip" || r.Keywords["network"] != "n" {
		t.Errorf("ip#2 = %+v, want an ip.cni resource", r)
	}
}

func TestCheckServiceName_RefusesNamesThatAreNotAFileName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"registry.opensvc.com", true},
		{"a", true},
		{"svc_1-b", true},
		{"", false},
		{"..", false},
		{"../etc/x", false},
		{"a/b", false},
		{".hidden", false},
		{"-flag", false},
		{"a b", false},
		{"a\x00b", false},
		{strings.Repeat("a", 251), false},
	} {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			err := CheckServiceName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckServiceName(%q) = %v, want ok %v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadServiceName) {
				t.Fatalf("error %v is not ErrBadServiceName", err)
			}
		})
	}
}
