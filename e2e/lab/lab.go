// Package lab owns the vigil-lab lab: N cluster nodes on this host, each
// a set of namespaces with its own hostname, address, /etc/vigil and
// vigild, shared loop-device disks, and a simulated BMC (ipmi_sim) that
// powers its node off by killing the node's pid namespace. It builds (Up)
// and removes (Down) a lab, lays out its names and addresses, powers nodes
// through their BMCs, cuts and heals their links, fails BMCs, runs
// commands in nodes and reports the lab's status; Chaos runs randomized
// faults against a lab and checks that the services stay safe. The
// vigil-lab command is flags and output over it; the end-to-end harnesses
// (e2e/labtest) read and drive labs through it. The processes a lab runs
// for itself (node inits, the BMC supervisor and its power control) are
// hidden commands of the vigil-lab binary, Lab.Tool.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// BaseDir holds one directory per lab: its state, disks, node directories
// and BMC files. It is on the host's filesystem so that `down` finds
// everything after a crash of the tool.
const BaseDir = "/run/vigil-lab"

// ErrNoLab is returned when a command names a lab that was never built.
var ErrNoLab = errors.New("no such lab")

var labNameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// CheckName keeps lab names short: every host-global name (network
// namespaces, volume groups, containerd namespaces) is derived from it.
func CheckName(name string) error {
	if !labNameRE.MatchString(name) {
		return fmt.Errorf("lab name %q: use 1 to 8 lower-case letters or digits, starting with a letter", name)
	}
	return nil
}

// Addresses within the lab's /24. The whole network lives in namespaces
// (the bridge is in the lab's switch namespace), so no two labs, nor the
// host, can clash even when two lab names hash to the same subnet.
const (
	hostRegistry = 50  // registry.opensvc.com
	hostBusybox  = 51  // busybox.opensvc.com
	hostBMCBase  = 100 // nK's BMC is .100+K
	hostClient   = 200
	hostSwitch   = 254 // the bridge's own address in the switch namespace
	MaxNodes     = 9
)

// Lab is the persistent description of one lab, saved as state.json in
// its directory. Every resource the lab makes is recorded here before it is
// made, so that `down` can remove it whatever happened in between.
type Lab struct {
	Name   string `json:"name"`
	Nodes  int    `json:"nodes"`
	Subnet string `json:"subnet"` // first three octets, e.g. "10.217.34"
	BinDir string `json:"bin_dir"`
	// Tool is the vigil-lab binary that runs the lab's own processes
	// (see Config.Tool); empty in labs built before it was recorded.
	Tool string `json:"tool,omitempty"`
	// Package is the unpacked vigil .deb the nodes run (see package.go);
	// empty when they run BinDir's binaries.
	Package string `json:"package,omitempty"`

	HBInterval string `json:"hb_interval"`
	HBTimeout  string `json:"hb_timeout"`
	// Stonith is how the nodes fence each other: "ipmi" (the stonith-ipmi
	// plugin, the default) or "fence_agent" (fence_ipmilan through the
	// stonith-fence-agent plugin), against the same BMCs.
	Stonith string `json:"stonith,omitempty"`
	// SplitAction is cluster.conf's split_action ("" leaves the default).
	SplitAction string `json:"split_action,omitempty"`
	// ArbitratorPort, when set, is the port of an arbitrator in the
	// client namespace that cluster.conf lists (see Config).
	ArbitratorPort int `json:"arbitrator_port,omitempty"`

	Loops      []Loop   `json:"loops,omitempty"`
	VGs        []string `json:"vgs,omitempty"`
	Supervisor *Proc    `json:"supervisor,omitempty"`
	Loader     *Proc    `json:"loader,omitempty"`

	Cut map[string]Cut `json:"cut,omitempty"`
}

// Loop is a loop device over a file in the lab's disks directory.
type Loop struct {
	Role string `json:"role"` // hb, registry-root, busybox-pv, …
	File string `json:"file"`
	Dev  string `json:"dev,omitempty"`
}

// Cut says which links of a node are cut.
type Cut struct {
	Net  bool `json:"net,omitempty"`
	Disk bool `json:"disk,omitempty"`
}

// Proc identifies a process the lab started: the start time guards
// against killing an unrelated process that reused the pid.
type Proc struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

func newLab(name string, nodes int) *Lab {
	h := fnv.New32a()
	h.Write([]byte(name))
	sum := h.Sum32()
	return &Lab{
		Name:   name,
		Nodes:  nodes,
		Subnet: fmt.Sprintf("10.%d.%d", 200+sum%50, (sum>>8)%256),
		Cut:    map[string]Cut{},
	}
}

// The lab's layout: its directory on the host, its addresses (a /24 of
// its own) and its namespaces' names, all derived from the lab's name.

// Dir is the lab's directory (state, disks, node directories, BMC files).
func (l *Lab) Dir() string { return filepath.Join(BaseDir, l.Name) }

// Path is a file in the lab's directory.
func (l *Lab) Path(elem ...string) string {
	return filepath.Join(append([]string{l.Dir()}, elem...)...)
}

// NodeDir is a node's directory: its etc, lib and run (bound on
// /etc/vigil, /var/lib/vigil, /run/vigil in the node) and its logs.
func (l *Lab) NodeDir(node string) string { return l.Path("nodes", node) }

// LogPath is a node's vigild log (it outlives the node's power-off).
func (l *Lab) LogPath(node string) string { return filepath.Join(l.NodeDir(node), "vigild.log") }

// Addr is host number host of the lab's /24.
func (l *Lab) Addr(host int) string { return l.Subnet + "." + strconv.Itoa(host) }

// NodeAddr is node k's address; BMCAddr its BMC's.
func (l *Lab) NodeAddr(k int) string { return l.Addr(k) }
func (l *Lab) BMCAddr(k int) string  { return l.Addr(hostBMCBase + k) }

// RegistryAddr, BusyboxAddr and ClientAddr are the seed services'
// floating addresses and the client namespace's address.
func (l *Lab) RegistryAddr() string { return l.Addr(hostRegistry) }
func (l *Lab) BusyboxAddr() string  { return l.Addr(hostBusybox) }
func (l *Lab) ClientAddr() string   { return l.Addr(hostClient) }

// SwitchNS, ClientNS and NodeNS name the lab's network namespaces: the
// switch (its bridge and the BMCs), the client, and a node's.
func (l *Lab) SwitchNS() string          { return l.Name + "-sw" }
func (l *Lab) ClientNS() string          { return l.Name + "-client" }
func (l *Lab) NodeNS(node string) string { return l.Name + "-" + node }

// NSPath is where a named network namespace is pinned.
func (l *Lab) NSPath(ns string) string { return filepath.Join("/run/netns", ns) }

func (l *Lab) bmcPassFile(node string) string {
	return l.Path("bmc", node+".pass")
}

// VGName is a service's volume group: VG names are global on the host,
// so each lab has its own.
func (l *Lab) VGName(svc string) string { return "vg" + svc + "-" + l.Name }

// CgroupParent is the cgroup, in every hierarchy, that the lab's
// containers go under (docker's --cgroup-parent): the host's, since nodes
// share its cgroup namespace.
func (l *Lab) CgroupParent() string { return "/vigil-lab-" + l.Name }

// NodeName is node k's name: n1, n2, …
func NodeName(k int) string { return "n" + strconv.Itoa(k) }

// NodeNames are the lab's nodes: n1 … nN.
func (l *Lab) NodeNames() []string {
	names := make([]string, l.Nodes)
	for k := 1; k <= l.Nodes; k++ {
		names[k-1] = NodeName(k)
	}
	return names
}

// NodeIndex turns "n2" into 2, checking the node exists.
func (l *Lab) NodeIndex(node string) (int, error) {
	k, err := strconv.Atoi(strings.TrimPrefix(node, "n"))
	if err != nil || !strings.HasPrefix(node, "n") || k < 1 || k > l.Nodes {
		return 0, fmt.Errorf("no node %q in lab %s: nodes are %s", node, l.Name, strings.Join(l.NodeNames(), " "))
	}
	return k, nil
}

// NodeMAC is fixed per node, as a real NIC's: after a power cycle the
// peers' ARP caches are still right.
func (l *Lab) NodeMAC(k int) string { return l.mac(0, byte(k)) }

// switchMAC is br0's address, beside the nodes' (02:…:00:K).
func (l *Lab) switchMAC() string { return l.mac(0xfe, 0) }

// mac is a locally administered address of the lab's: 02, three bytes
// of the lab name's hash, then a and b.
func (l *Lab) mac(a, b byte) string {
	h := fnv.New32a()
	h.Write([]byte(l.Name))
	s := h.Sum32()
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", byte(s>>16), byte(s>>8), byte(s), a, b)
}

func (l *Lab) loop(role string) *Loop {
	for i := range l.Loops {
		if l.Loops[i].Role == role {
			return &l.Loops[i]
		}
	}
	return nil
}

// LoopDev is the loop device of a disk role (hb, registry-root, …).
func (l *Lab) LoopDev(role string) string {
	if lp := l.loop(role); lp != nil {
		return lp.Dev
	}
	return ""
}

// save writes state.json atomically.
func (l *Lab) save() error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.Dir(), 0o700); err != nil {
		return fmt.Errorf("create the lab directory: %w", err)
	}
	tmp := l.Path("state.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write the lab state: %w", err)
	}
	return os.Rename(tmp, l.Path("state.json"))
}

// Load reads a lab's state.json.
func Load(name string) (*Lab, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(BaseDir, name, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (no %s; build it with `vigil-lab up --name %s`)", ErrNoLab, name, filepath.Join(BaseDir, name, "state.json"), name)
	}
	if err != nil {
		return nil, fmt.Errorf("read the lab state: %w", err)
	}
	l := &Lab{}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(BaseDir, name, "state.json"), err)
	}
	if l.Cut == nil {
		l.Cut = map[string]Cut{}
	}
	return l, nil
}

// writeFile writes a small file, creating its directory.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, mode)
}
