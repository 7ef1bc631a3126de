package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The seed's services, as the lab installs them.
const (
	Registry = "registry.opensvc.com"
	Busybox  = "busybox.opensvc.com"
)

// NodeStatus is one node in `vigil-lab status`.
type NodeStatus struct {
	Name  string `json:"name"`
	Power string `json:"power"` // what its BMC says: on, off, unknown
	// PowerError says why Power is unknown.
	PowerError string `json:"power_error,omitempty"`
	Address    string `json:"address"`
	MAC        string `json:"mac"`
	BMC        string `json:"bmc"`
	InitPid    int    `json:"init_pid,omitempty"`
	VigildPid  int    `json:"vigild_pid,omitempty"`
	CutNet     bool   `json:"cut_net,omitempty"`
	CutDisk    bool   `json:"cut_disk,omitempty"`
	// BMCFail: its BMC ignores power changes (`vigil-lab bmc NODE --fail on`).
	BMCFail bool `json:"bmc_fail,omitempty"`
}

// Status is `vigil-lab status --format json`.
type Status struct {
	Name     string            `json:"name"`
	Subnet   string            `json:"subnet"`
	Switch   string            `json:"switch_netns"`
	Client   string            `json:"client"`
	ClientNS string            `json:"client_netns"`
	Services map[string]string `json:"services"` // service → floating address
	Nodes    []NodeStatus      `json:"nodes"`
	Disks    []Loop            `json:"disks"`
	VGs      []string          `json:"vgs"`
	HBDev    string            `json:"hb_dev"`
	Dir      string            `json:"dir"`
}

// Status reads the lab: each node's power as its BMC says (ipmitool, so
// it takes a moment per node), its processes, its cut links.
func (l *Lab) Status(ctx context.Context) Status {
	st := Status{
		Name: l.Name, Subnet: l.Subnet, Switch: l.SwitchNS(), Client: l.ClientAddr(), ClientNS: l.ClientNS(),
		Services: map[string]string{Registry: l.RegistryAddr(), Busybox: l.BusyboxAddr()},
		Disks:    l.Loops, VGs: l.VGs, HBDev: l.LoopDev("hb"), Dir: l.Dir(),
	}
	for k := 1; k <= l.Nodes; k++ {
		node := NodeName(k)
		power, perr := l.PowerState(ctx, k)
		n := NodeStatus{
			Name: node, Power: power, PowerError: perr, Address: l.NodeAddr(k), MAC: l.NodeMAC(k),
			BMC: l.BMCAddr(k), CutNet: l.Cut[node].Net, CutDisk: l.Cut[node].Disk,
			BMCFail: fileExists(l.BMCFailFile(node)),
		}
		if p := l.NodeInit(node); p != nil {
			n.InitPid = p.Pid
			n.VigildPid = l.VigildPid(node)
		}
		st.Nodes = append(st.Nodes, n)
	}
	return st
}

// VigildPid is the host pid of node's vigild, 0 when it runs none (the
// node is off, or its vigild is between a death and its restart).
func (l *Lab) VigildPid(node string) int {
	p := l.NodeInit(node)
	if p == nil {
		return 0
	}
	return childNamed(p.Pid, "vigild")
}

// childNamed is the host pid of pid's child whose command is comm.
func childNamed(pid int, comm string) int {
	for _, c := range Children(pid) {
		if name, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); err == nil && strings.TrimSpace(string(name)) == comm {
			return c
		}
	}
	return 0
}

// Children are the host pids of pid's children.
func Children(pid int) []int {
	// Each thread has its own list: a Go parent forks from any of them.
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			var p int
			if _, err := fmt.Sscan(s, &p); err == nil {
				kids = append(kids, p)
			}
		}
	}
	return kids
}

// ErrPoweredOff is returned for a command meant for a node that is off.
var ErrPoweredOff = errors.New("powered off")

// ExecArgv is how to run a command in a node's namespaces (network,
// mount, uts, pid), as `vigil-lab exec` does: the nsenter binary, its
// argv and the environment. The environment's PATH begins with the lab's
// bin directory, so that the node's own programs (svcmgr, svcmon, …) are
// the ones found, then the caller's PATH.
func (l *Lab) ExecArgv(node string, args []string) (path string, argv, env []string, err error) {
	if _, err := l.NodeIndex(node); err != nil {
		return "", nil, nil, err
	}
	if len(args) == 0 {
		return "", nil, nil, errors.New("no command to run")
	}
	init := l.NodeInit(node)
	if init == nil {
		return "", nil, nil, fmt.Errorf("%s is %w: `vigil-lab --name %s poweron %s`", node, ErrPoweredOff, l.Name, node)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return "", nil, nil, fmt.Errorf("nsenter not found (util-linux; run make deps): %w", err)
	}
	argv = []string{"nsenter", "--target", fmt.Sprint(init.Pid), "--net", "--mount", "--uts", "--pid"}
	if wd, err := os.Getwd(); err == nil {
		argv = append(argv, "--wd="+wd)
	}
	argv = append(argv, "--")
	argv = append(argv, args...)
	return nsenter, argv, withPath(os.Environ(), l.nodeBinPath()), nil
}

// withPath is env with one PATH: dir, then env's own PATH (or the
// usual directories when env has none). An environment with two PATH
// entries leaves the choice to each program's getenv, which takes the
// first: the caller's.
func withPath(env []string, dir string) []string {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
			continue
		}
		out = append(out, e)
	}
	return append(out, "PATH="+dir+":"+path)
}

// Command is an exec.Cmd that runs args in node (see ExecArgv).
func (l *Lab) Command(ctx context.Context, node string, args ...string) (*exec.Cmd, error) {
	path, argv, env, err := l.ExecArgv(node, args)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Env = env
	return cmd, nil
}
