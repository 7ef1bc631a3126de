package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	hbdisk "github.com/vigil-ha/vigil/plugins/hb-disk"
)

// Config is what `vigil-lab up` takes.
type Config struct {
	Name       string
	Nodes      int
	HBInterval time.Duration
	HBTimeout  time.Duration
	Images     bool // build and load the lab images into the services' data roots
	Services   bool // install the seed's services in every node's /etc/vigil
	// Stonith is the fencing method written in cluster.conf: "ipmi"
	// (default) or "fence_agent".
	Stonith string
	// SplitAction is cluster.conf's split_action: "" (the daemon's
	// default), "none" or "stop".
	SplitAction string
	// ArbitratorPort, when set, lists an arbitrator in cluster.conf:
	// [arbitrator#1] at the client namespace's address on this port
	// (reachable from every node, and left up by a node's net cut only
	// when the cut is a route, not the switch port). The lab does not run
	// it: a test starts vigil-arbitrator in ClientNS.
	ArbitratorPort int
	// Tool is the vigil-lab binary whose hidden commands run the lab's
	// own processes (node inits, the BMCs' supervisor and power
	// control); its directory is the lab's bin directory, where the
	// nodes find vigild and the plugins. Empty: the running executable,
	// which must then be vigil-lab.
	Tool string
	// FromPackage is a vigil .deb (make package) whose binaries, plugin
	// directory and unit command line the nodes run instead of the bin
	// directory's.
	FromPackage string
}

// Fencing methods `up --stonith` takes.
const (
	StonithIPMI       = "ipmi"
	StonithFenceAgent = "fence_agent"
)

// disks are the lab's shared loop devices: a heartbeat disk and, per seed
// service, a small PV for its volume group and one disk per filesystem.
var disks = []struct {
	role string
	size int64 // MiB
	ext4 bool
}{
	{"hb", 8, false},
	{"registry-pv", 8, false},
	{"registry-root", 32, true},
	{"registry-docker", 256, true},
	{"registry-data", 128, true},
	{"busybox-pv", 8, false},
	{"busybox-root", 32, true},
	{"busybox-data", 192, true},
}

// Up builds a lab, writing its progress to w. On failure it leaves what it made recorded in the
// state, for `down`.
func Up(ctx context.Context, cfg Config, w io.Writer) (*Lab, error) {
	if err := CheckName(cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("%d nodes: use 1 to %d", cfg.Nodes, MaxNodes)
	}
	if cfg.Stonith == "" {
		cfg.Stonith = StonithIPMI
	}
	if cfg.Stonith != StonithIPMI && cfg.Stonith != StonithFenceAgent {
		return nil, fmt.Errorf("stonith %q: use %s or %s", cfg.Stonith, StonithIPMI, StonithFenceAgent)
	}
	switch cfg.SplitAction {
	case "", "none", "stop":
	default:
		return nil, fmt.Errorf("split action %q: use none or stop", cfg.SplitAction)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("vigil-lab needs root (namespaces, loop devices, mounts)")
	}
	for _, tool := range []string{"ip", "nsenter", "losetup", "mkfs.ext4", "vgcreate", "ipmi_sim", "ipmitool", "dockerd", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: run `make deps`", tool)
		}
	}
	if cfg.Stonith == StonithFenceAgent && !fileExists("/usr/sbin/fence_ipmilan") {
		if _, err := exec.LookPath("fence_ipmilan"); err != nil {
			return nil, errors.New("stonith fence_agent: fence_ipmilan not found (Debian: apt-get install fence-agents)")
		}
	}
	if fileExists(filepath.Join(BaseDir, cfg.Name, "state.json")) {
		return nil, fmt.Errorf("lab %s exists: `vigil-lab down --name %s` first", cfg.Name, cfg.Name)
	}
	self := cfg.Tool
	if self == "" {
		var err error
		if self, err = selfPath(); err != nil {
			return nil, err
		}
	}
	if !fileExists(self) {
		return nil, fmt.Errorf("no vigil-lab binary at %s (run make build)", self)
	}
	l := newLab(cfg.Name, cfg.Nodes)
	l.BinDir, l.Tool = filepath.Dir(self), self
	l.HBInterval, l.HBTimeout = fmtDuration(cfg.HBInterval), fmtDuration(cfg.HBTimeout)
	l.Stonith, l.SplitAction = cfg.Stonith, cfg.SplitAction
	l.ArbitratorPort = cfg.ArbitratorPort
	if cfg.FromPackage != "" {
		l.Package = l.Path("package")
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	step := func(format string, a ...any) {
		fmt.Fprintf(w, "[%6.2fs] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, a...))
	}

	if cfg.FromPackage != "" {
		step("package %s unpacked in %s", cfg.FromPackage, l.Package)
		if err := l.unpackPackage(ctx, cfg.FromPackage); err != nil {
			return l, err
		}
	}
	step("network %s.0/24 in namespace %s", l.Subnet, l.SwitchNS())
	if err := l.buildSwitch(ctx); err != nil {
		return l, err
	}
	step("shared disks")
	if err := l.buildDisks(ctx); err != nil {
		return l, err
	}
	if cfg.Images {
		for _, s := range []struct{ svc, disk string }{{"registry", "registry-docker"}, {"busybox", "busybox-data"}} {
			step("image of %s loaded into its data root on %s", s.svc, l.LoopDev(s.disk))
			if err := l.loadImage(ctx, s.svc, s.disk); err != nil {
				return l, err
			}
		}
	}
	step("BMCs")
	for k := 1; k <= l.Nodes; k++ {
		if err := l.writeBMC(k, self); err != nil {
			return l, err
		}
	}
	if err := l.writeNodeFiles(cfg.Services); err != nil {
		return l, err
	}
	if err := l.startSupervisor(ctx, self); err != nil {
		return l, err
	}
	if l.Package == "" && !fileExists(filepath.Join(l.BinDir, "vigild")) {
		fmt.Fprintf(w, "warning: no %s: the nodes run without vigild (build it, then power the nodes off and on)\n", filepath.Join(l.BinDir, "vigild"))
	}
	for k := 1; k <= l.Nodes; k++ {
		d, err := l.Power(ctx, k, true)
		if err != nil {
			return l, err
		}
		step("%s powered on through its BMC %s (%s)", NodeName(k), l.BMCAddr(k), d.Round(time.Millisecond))
	}
	step("lab %s up: `vigil-lab status --name %s`", l.Name, l.Name)
	return l, nil
}

func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

// buildSwitch makes the switch namespace with its bridge, the BMC
// addresses on it and the client namespace. The bridge lives in a
// namespace of its own so that the host's iptables (FORWARD DROP once
// dockerd has run, with bridge-nf-call-iptables on) never see lab traffic.
func (l *Lab) buildSwitch(ctx context.Context) error {
	sw, cl := l.SwitchNS(), l.ClientNS()
	// A fixed address for the bridge: the client's and nodes' ARP
	// entries for the BMCs (which live on br0) must not point nowhere
	// for seconds as nodes power off and on (ipmitool hung or failed).
	if err := AddSwitch(ctx, sw, l.switchMAC()); err != nil {
		return err
	}
	if err := Plug(ctx, Port{Switch: sw, Name: "client", NS: cl, Addr: l.ClientAddr() + "/24"}); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", sw, "addr", "add", l.Addr(hostSwitch) + "/24", "dev", "br0"},
		// The image loader's dockerd bridge (never --bridge=none).
		{"-n", sw, "link", "add", "ld0", "type", "bridge"},
		{"-n", sw, "addr", "add", "172.30.9.1/24", "dev", "ld0"},
		{"-n", sw, "link", "set", "ld0", "up"},
	}
	for k := 1; k <= l.Nodes; k++ {
		steps = append(steps, []string{"-n", sw, "addr", "add", l.BMCAddr(k) + "/24", "dev", "br0"})
	}
	for _, s := range steps {
		if err := run(ctx, "ip", s...); err != nil {
			return err
		}
	}
	return nil
}

// buildDisks makes the loop devices, their filesystems and the services'
// volume groups.
func (l *Lab) buildDisks(ctx context.Context) error {
	dir := l.Path("disks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range disks {
		file := filepath.Join(dir, d.role+".img")
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		err = f.Truncate(d.size << 20)
		f.Close()
		if err != nil {
			return err
		}
		l.Loops = append(l.Loops, Loop{Role: d.role, File: file})
		if err := l.save(); err != nil {
			return err
		}
		// Direct I/O: no page cache of the loop's own between the nodes
		// and the shared backing file.
		dev, err := output(ctx, "losetup", "--find", "--show", "--direct-io=on", file)
		if err != nil {
			return err
		}
		l.loop(d.role).Dev = strings.TrimSpace(dev)
		if err := l.save(); err != nil {
			return err
		}
		if d.ext4 {
			if err := run(ctx, "mkfs.ext4", "-q", l.loop(d.role).Dev); err != nil {
				return err
			}
		}
	}
	// Each node reaches the heartbeat disk through a loop device of its
	// own over the same file (direct I/O keeps them coherent), bound over
	// the shared device's path in the node: `cut --link disk` can then
	// shrink one node's view to nothing, open descriptors included.
	hb := l.loop("hb").File
	// Labelled once for this cluster, as an operator does with
	// `nodemgr hb-disk init`: the plugin refuses an unlabelled device.
	if _, err := hbdisk.InitDevice(hbdisk.InitOptions{Dev: hb, Cluster: l.Name}); err != nil {
		return fmt.Errorf("label the heartbeat disk: %w", err)
	}
	for _, node := range l.NodeNames() {
		l.Loops = append(l.Loops, Loop{Role: "hb-" + node, File: hb})
		dev, err := output(ctx, "losetup", "--find", "--show", "--direct-io=on", hb)
		if err != nil {
			return err
		}
		l.loop("hb-" + node).Dev = strings.TrimSpace(dev)
		if err := l.save(); err != nil {
			return err
		}
	}
	for _, svc := range []string{"registry", "busybox"} {
		vg := l.VGName(svc)
		l.VGs = append(l.VGs, vg)
		if err := l.save(); err != nil {
			return err
		}
		if err := run(ctx, "vgcreate", "-q", vg, l.LoopDev(svc+"-pv")); err != nil {
			return err
		}
	}
	return nil
}
