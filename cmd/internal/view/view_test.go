package view

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/core/status"
)

const daemonDown = "docker daemon is not running"

// syncRes is the sync resource every seed service shows, up on both nodes.
var syncRes = status.Resource{RID: "sync#i0", Group: "sync", Type: "sync.rsync", Status: status.Up, Label: "rsync svc config to drpnodes, nodes"}

// registry returns the seed's registry.opensvc.com resources in config file
// order, as a node would report them.
func registry(up bool) []status.Resource {
	st, label, log := status.Down, "de9a91835513", []string{daemonDown}
	if up {
		st, label, log = status.Up, "e9828ec4620a@registry:latest", nil
	}
	return []status.Resource{
		{RID: "container#1", Group: "container", Type: "container.docker", Status: st, Label: label, Log: log},
		{RID: "ip#1", Group: "ip", Type: "ip", Status: st, Label: "registry.opensvc.com@eth0"},
		{RID: "vg#1", Group: "disk", Type: "disk.vg", Status: st, Label: "vgregistry"},
		{RID: "fs#1", Group: "fs", Type: "fs", Status: st, Label: "/dev/mapper/vgregistry-lvregistryroot@/opt/registry.opensvc.com"},
		{RID: "fs#2", Group: "fs", Type: "fs", Status: st, Label: "/dev/mapper/vgregistry-lvdockerdata@/opt/registry.opensvc.com/dockerdata"},
		{RID: "fs#3", Group: "fs", Type: "fs", Status: st, Label: "/dev/mapper/vgregistry-lvregistrydata@/opt/registry.opensvc.com/registrydata"},
		syncRes,
	}
}

// busybox returns the seed's busybox.opensvc.com resources in config file
// order, as a node would report them.
func busybox(up bool) []status.Resource {
	ids := []string{"c37b83887947", "a189884f060a", "fb2513423499", "3a7e545bced2", "1b6a3d00661e", "173a812f4ed5", "59fca3cd2745"}
	st := status.Down
	if up {
		st = status.Up
	}
	var rs []status.Resource
	for i, id := range ids {
		r := status.Resource{RID: fmt.Sprintf("container#%d", i+1), Group: "container", Type: "container.docker", Status: st}
		if up {
			r.Label = id + "@opensvc/busybox:date"
		} else {
			r.Label, r.Log = "b073e328878e", []string{daemonDown}
		}
		rs = append(rs, r)
	}
	return append(rs,
		status.Resource{RID: "ip#1", Group: "ip", Type: "ip", Status: st, Label: "busybox.opensvc.com@eth0"},
		status.Resource{RID: "vg#1", Group: "disk", Type: "disk.vg", Status: st, Label: "vgbusybox"},
		status.Resource{RID: "fs#1", Group: "fs", Type: "fs", Status: st, Label: "/dev/mapper/vgbusybox-lvbusyboxroot@/opt/busybox.opensvc.com"},
		status.Resource{RID: "fs#2", Group: "fs", Type: "fs", Status: st, Label: "/dev/mapper/vgbusybox-lvbusyboxdata@/opt/busybox.opensvc.com/appdata"},
		syncRes,
	)
}

func TestWriteTree_ReproducesSeedPrintStatus(t *testing.T) {
	tests := []struct {
		golden string
		svc    status.Service
	}{
		{"registry-deb1.txt", status.Summarize("registry.opensvc.com", registry(true))},
		{"registry-deb2.txt", status.Summarize("registry.opensvc.com", registry(false))},
		{"busybox-deb1.txt", status.Summarize("busybox.opensvc.com", busybox(true))},
		{"busybox-deb2.txt", status.Summarize("busybox.opensvc.com", busybox(false))},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", tt.golden))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := WriteTree(&b, tt.svc); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestWriteTree_Branches(t *testing.T) {
	tests := []struct {
		name string
		svc  status.Service
		want string
	}{
		{
			name: "flags, reason under the last child, numeric rid order, hb rows",
			svc: status.Service{
				Name: "svc", Overall: status.Warn, Avail: status.Warn,
				Groups: map[string]status.Status{"sync": status.NA, "hb": status.Up},
				Resources: []status.Resource{
					{RID: "ip#1", Group: "ip", Status: status.Down, Label: "svc@eth0", Monitor: true, Optional: true, Log: []string{"address in use"}},
					{RID: "app#10", Group: "app", Status: status.Up, Disable: true},
					{RID: "app#2", Group: "app", Status: status.StdbyUp, Standby: true},
					{RID: "hb#2", Group: "hb", Status: status.Up, Label: "net"},
					{RID: "hb#1", Group: "hb", Status: status.Up, Label: "disk", Log: []string{"slow"}},
				},
			},
			want: `svc
overall                   warn
|- avail                  warn
|  |- app#2          ...S stdby up
|  |- app#10         .D.. up
|  '- ip#1           M.O. down     svc@eth0
|     |                            # address in use
|- sync                   n/a
'- hb                     up
   |- hb#1           .... up       disk
   |  |                            # slow
   '- hb#2           .... up       net
`,
		},
		{
			name: "no resources, missing groups read n/a",
			svc:  status.Service{Name: "empty", Overall: status.NA, Avail: status.NA},
			want: `empty
overall                   n/a
|- avail                  n/a
|- sync                   n/a
'- hb                     n/a
`,
		},
		{
			name: "long reason wraps at the label column",
			svc: status.Service{
				Name: "svc", Overall: status.Undef, Avail: status.Undef,
				Resources: []status.Resource{{RID: "fs#1", Group: "fs", Status: status.Undef,
					Log: []string{"plugin vigil-plugin-fs exited during the call: signal: killed\nrestarting"}}},
			},
			want: `svc
overall                   undef
|- avail                  undef
|  '- fs#1           .... undef
|     |                            # plugin vigil-plugin-fs exited during the
|     |                            # call: signal: killed
|     |                            # restarting
|- sync                   n/a
'- hb                     n/a
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteTree(&b, tt.svc); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			for i, line := range strings.Split(b.String(), "\n") {
				if len(line) > lineWidth && strings.Contains(line, "# ") {
					t.Errorf("reason line %d longer than %d: %q", i, lineWidth, line)
				}
			}
		})
	}
}

type failWriter struct{}

var errWrite = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteTree_ReturnsWriteError(t *testing.T) {
	if err := WriteTree(failWriter{}, status.Service{Name: "x"}); !errors.Is(err, errWrite) {
		t.Fatalf("err = %v", err)
	}
}

func TestWriteJSON_IndentsAndUsesStatusNames(t *testing.T) {
	var b bytes.Buffer
	svc := status.Summarize("registry.opensvc.com", registry(false)[:1])
	if err := WriteJSON(&b, svc); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"{\n  \"name\": \"registry.opensvc.com\",\n",
		`"overall": "down"`,
		`"hb": "n/a"`,
		`"rid": "container#1"`,
		`"log": [`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	var back status.Service
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Overall != status.Down || back.Resources[0].Log[0] != daemonDown {
		t.Fatalf("round trip = %+v", back)
	}
}
