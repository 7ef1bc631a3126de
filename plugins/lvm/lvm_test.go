package lvm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

func TestAssess(t *testing.T) {
	const me = "node1"
	lv := func(name string, active bool) lvState { return lvState{name: name, active: active} }
	tests := []struct {
		name    string
		info    vgState
		lvs     []lvState
		want    sdk.Status
		wantLog string
	}{
		{name: "untagged, no lv", want: sdk.StatusDown},
		{name: "mine, no lv", info: vgState{tags: []string{me}}, want: sdk.StatusUp},
		{name: "mine, lvs active", info: vgState{tags: []string{me}, lvCount: 2}, lvs: []lvState{lv("a", true), lv("b", true)}, want: sdk.StatusUp},
		{name: "mine, lvs inactive", info: vgState{tags: []string{me}, lvCount: 1}, lvs: []lvState{lv("a", false)}, want: sdk.StatusDown, wantLog: "not active: a"},
		{name: "mine, some inactive", info: vgState{tags: []string{me}, lvCount: 2}, lvs: []lvState{lv("a", true), lv("b", false)}, want: sdk.StatusWarn, wantLog: "not active: b"},
		{name: "peer's", info: vgState{tags: []string{"node2"}}, want: sdk.StatusDown, wantLog: "vg is tagged by host node2"},
		{name: "peer's, active here", info: vgState{tags: []string{"node2"}, lvCount: 1}, lvs: []lvState{lv("a", true)}, want: sdk.StatusWarn, wantLog: "not tagged with this host"},
		{name: "both", info: vgState{tags: []string{me, "node2"}}, want: sdk.StatusWarn, wantLog: "vg is tagged by host node2 too"},
		{name: "mine, partial", info: vgState{tags: []string{me}, partial: true}, want: sdk.StatusWarn, wantLog: "partial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := assess(me, tt.info, tt.lvs)
			if st.Status != tt.want {
				t.Errorf("status %v, want %v (log %q)", st.Status, tt.want, st.Log)
			}
			if tt.wantLog != "" && !strings.Contains(strings.Join(st.Log, "\n"), tt.wantLog) {
				t.Errorf("log %q does not say %q", st.Log, tt.wantLog)
			}
		})
	}
}

func TestParseReport(t *testing.T) {
	out := []byte(`  {
      "report": [
          {
              "vg": [
                  {"vg_name":"vgx", "vg_attr":"wz--n-", "vg_tags":"a,b", "lv_count":"0"}
              ]
          }
      ]
  }`)
	rows, err := parseReport(out, "vg")
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{{"vg_name": "vgx", "vg_attr": "wz--n-", "vg_tags": "a,b", "lv_count": "0"}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got %v, want %v", rows, want)
	}
}

func TestValidate(t *testing.T) {
	d := New(Config{Hostname: "h", Logger: hclog.NewNullLogger()})
	tests := []struct {
		kw   map[string]string
		errs int
	}{
		{map[string]string{KwVGName: "vgregistry"}, 0},
		{map[string]string{KwVGName: "vgbusybox", KwSCSIReserv: "false"}, 0},
		{map[string]string{}, 1},
		{map[string]string{KwVGName: "-bad"}, 1},
		{map[string]string{KwVGName: "a/b"}, 1},
		{map[string]string{KwVGName: "vg", KwSCSIReserv: "maybe"}, 1},
	}
	for _, tt := range tests {
		if errs := d.Validate(context.Background(), sdk.Resource{Keywords: tt.kw}); len(errs) != tt.errs {
			t.Errorf("%v: %d errors (%+v), want %d", tt.kw, len(errs), errs, tt.errs)
		}
	}
}

func TestNew_RejectsHostNameThatIsNotATag(t *testing.T) {
	d := New(Config{Hostname: "bad host", Logger: hclog.NewNullLogger()})
	_, err := d.Start(context.Background(), sdk.Resource{Keywords: map[string]string{KwVGName: "vg"}})
	if err == nil || !strings.Contains(err.Error(), "not a valid LVM tag") {
		t.Errorf("err = %v, want a tag error", err)
	}
}

// sharedVG creates a volume group on a fresh loop device and returns the
// --config string that confines LVM to that device. Everything is removed
// at cleanup.
func sharedVG(t *testing.T) (vg, lvmConfig string) {
	t.Helper()
	vg, lvmConfig, _ = sharedVGOn(t, 1)
	return vg, lvmConfig
}

// sharedVGOn is sharedVG on n loop devices, which it returns too.
func sharedVGOn(t testing.TB, n int) (vg, lvmConfig string, devs []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and LVM")
	}
	for _, tool := range []string{"losetup", "lvm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	var accept []string
	for i := range n {
		img := filepath.Join(t.TempDir(), fmt.Sprintf("pv%d.img", i))
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 16<<20); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
		if err != nil {
			t.Skipf("losetup: %v: %s", err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() {
			if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v: %s", dev, err, out)
			}
		})
		devs = append(devs, dev)
		accept = append(accept, fmt.Sprintf(`"a|^%s$|"`, dev))
	}
	// Only these loop devices, no devices file, no metadata backups in /etc.
	filter := fmt.Sprintf(`[%s,"r|.*|"]`, strings.Join(accept, ","))
	lvmConfig = fmt.Sprintf(`devices { filter=%s global_filter=%s use_devicesfile=0 } backup { backup=0 archive=0 }`, filter, filter)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	vg = "vgvigiltest" + hex.EncodeToString(b)
	lvmRun(t, lvmConfig, "pvcreate", append([]string{"-q"}, devs...)...)
	t.Cleanup(func() { lvmRun(t, lvmConfig, "pvremove", append([]string{"-q", "-y"}, devs...)...) })
	lvmRun(t, lvmConfig, "vgcreate", append([]string{"-q", vg}, devs...)...)
	t.Cleanup(func() { lvmRun(t, lvmConfig, "vgremove", "-q", "-f", vg) })
	return vg, lvmConfig, devs
}

func lvmRun(t testing.TB, lvmConfig, cmd string, args ...string) string {
	t.Helper()
	argv := append([]string{cmd, "--config", lvmConfig}, args...)
	c := exec.Command("lvm", argv...)
	c.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Errorf("lvm %s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func tags(t *testing.T, lvmConfig, vg string) string {
	t.Helper()
	return strings.TrimSpace(lvmRun(t, lvmConfig, "vgs", "--noheadings", "-o", "vg_tags", vg))
}

func TestDriver_TagActivateStatusRelease(t *testing.T) {
	vg, lvmConfig := sharedVG(t)
	ctx := context.Background()
	me := New(Config{Hostname: "node-a.example", LVMConfig: lvmConfig, Logger: hclog.NewNullLogger()})
	peer := New(Config{Hostname: "otherhost", LVMConfig: lvmConfig, Logger: hclog.NewNullLogger()})
	r := sdk.Resource{RID: "vg#1", Type: "disk.vg", Keywords: map[string]string{KwVGName: vg}}

	if st := me.Status(ctx, r); st.Status != sdk.StatusDown || st.Label != vg {
		t.Fatalf("before start: %v %q %q, want down %q", st.Status, st.Label, st.Log, vg)
	}
	if _, err := me.Start(ctx, r); err != nil {
		t.Fatalf("start: %v", err)
	}
	if got := tags(t, lvmConfig, vg); got != "node-a.example" {
		t.Fatalf("tags after start: %q", got)
	}
	if _, err := me.Start(ctx, r); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if got := tags(t, lvmConfig, vg); got != "node-a.example" {
		t.Fatalf("tags after second start: %q", got)
	}
	if st := me.Status(ctx, r); st.Status != sdk.StatusUp {
		t.Fatalf("status after start: %v %q", st.Status, st.Log)
	}
	if st := peer.Status(ctx, r); st.Status != sdk.StatusDown || !strings.Contains(strings.Join(st.Log, ""), "vg is tagged by host node-a.example") {
		t.Fatalf("peer's status: %v %q, want down naming the owner", st.Status, st.Log)
	}

	// Someone tags it for another host behind our back.
	lvmRun(t, lvmConfig, "vgchange", "--addtag", "otherhost", vg)
	if st := me.Status(ctx, r); st.Status != sdk.StatusWarn || !strings.Contains(strings.Join(st.Log, ""), "vg is tagged by host otherhost") {
		t.Fatalf("status with a second owner: %v %q, want warn", st.Status, st.Log)
	}

	if _, err := me.Stop(ctx, r); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := tags(t, lvmConfig, vg); got != "otherhost" {
		t.Fatalf("tags after stop: %q, want only the other host's", got)
	}
	if st := me.Status(ctx, r); st.Status != sdk.StatusDown || !strings.Contains(strings.Join(st.Log, ""), "vg is tagged by host otherhost") {
		t.Fatalf("status after stop: %v %q", st.Status, st.Log)
	}

	// Taking over removes the other host's tag.
	log, err := me.Start(ctx, r)
	if err != nil {
		t.Fatalf("takeover start: %v", err)
	}
	if got := tags(t, lvmConfig, vg); got != "node-a.example" {
		t.Fatalf("tags after takeover: %q (log %q)", got, log)
	}
	if _, err := me.Stop(ctx, r); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if log, err := me.Stop(ctx, r); err != nil {
		t.Fatalf("second stop: %v %q", err, log)
	}
	if got := tags(t, lvmConfig, vg); got != "" {
		t.Fatalf("tags after stop: %q", got)
	}
	if st := me.Status(ctx, r); st.Status != sdk.StatusDown {
		t.Fatalf("final status: %v %q", st.Status, st.Log)
	}
}

// The real sg_persist against a loop device: the host has no SCSI target,
// but this shows that the real implementation is wired in, that start
// fails before it tags or activates anything, and that the error says why.
func TestDriver_SCSIReserv_RealSgPersistRefusesALoopDevice(t *testing.T) {
	if _, err := exec.LookPath("sg_persist"); err != nil {
		t.Skip("needs sg_persist (sg3-utils)")
	}
	vg, lvmConfig := sharedVG(t)
	ctx := context.Background()
	d := New(Config{Hostname: "node-a", LVMConfig: lvmConfig, Logger: hclog.NewNullLogger()})
	r := sdk.Resource{RID: "vg#1", Type: "disk.vg", Keywords: map[string]string{KwVGName: vg, KwSCSIReserv: "true"}}
	_, err := d.Start(ctx, r)
	if !errors.Is(err, ErrPRNotSupported) || !strings.Contains(err.Error(), "does not take SCSI commands") {
		t.Fatalf("start: %v, want ErrPRNotSupported saying the device takes no SCSI commands", err)
	}
	if got := tags(t, lvmConfig, vg); got != "" {
		t.Errorf("tags after a failed reservation: %q, want none", got)
	}
	if st := d.Status(ctx, r); st.Status != sdk.StatusUndef || !strings.Contains(strings.Join(st.Log, "\n"), "cannot read the reservation") {
		t.Errorf("status: %v %q, want undef naming the reservation", st.Status, st.Log)
	}
	if _, err := d.Stop(ctx, r); !errors.Is(err, ErrPRNotSupported) {
		t.Errorf("stop: %v, want ErrPRNotSupported", err)
	}
}

func TestDriver_MissingVG(t *testing.T) {
	_, lvmConfig := sharedVG(t)
	ctx := context.Background()
	d := New(Config{Hostname: "node-a", LVMConfig: lvmConfig, Logger: hclog.NewNullLogger()})
	r := sdk.Resource{RID: "vg#1", Type: "disk.vg", Keywords: map[string]string{KwVGName: "vgnosuchvigil"}}
	if st := d.Status(ctx, r); st.Status != sdk.StatusDown || len(st.Log) == 0 {
		t.Errorf("status: %v %q, want down with a reason", st.Status, st.Log)
	}
	if _, err := d.Start(ctx, r); !errors.Is(err, ErrVGNotFound) {
		t.Errorf("start: %v, want ErrVGNotFound", err)
	}
	if _, err := d.Stop(ctx, r); err != nil {
		t.Errorf("stop: %v, want a no-op", err)
	}
}
