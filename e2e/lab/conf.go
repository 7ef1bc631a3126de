package lab

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// clusterConf is every node's /etc/vigil/cluster.conf: a network and a disk
// heartbeat, and a STONITH section per node pointing at its BMC (IPMI in
// Go, or fence_ipmilan through the fence agent plugin).
func (l *Lab) clusterConf() string {
	var b strings.Builder
	addrs := make([]string, l.Nodes)
	for k := 1; k <= l.Nodes; k++ {
		addrs[k-1] = NodeName(k) + "=" + l.NodeAddr(k)
	}
	split := ""
	if l.SplitAction != "" {
		split = "split_action = " + l.SplitAction + "\n"
	}
	fmt.Fprintf(&b, `# Written by vigil-lab for lab %[1]s.
[cluster]
name = %[1]s
nodes = %[2]s
secret_file = /etc/vigil/cluster.secret
metrics = 127.0.0.1:9100
%[7]s
[hb#1]
type = net
port = 10000
addrs = %[3]s
interval = %[4]s
timeout = %[5]s

[hb#2]
type = disk
dev = %[6]s
interval = %[4]s
timeout = %[5]s
`, l.Name, strings.Join(l.NodeNames(), " "), strings.Join(addrs, " "), l.HBInterval, l.HBTimeout, l.LoopDev("hb"), split)
	for k := 1; k <= l.Nodes; k++ {
		if l.Stonith == StonithFenceAgent {
			// fence_ipmilan's own option names, given on its stdin; the
			// password stays in the file.
			fmt.Fprintf(&b, `
[stonith#%[1]s]
type = fence_agent
agent = fence_ipmilan
options = ip=%[2]s ipport=623 username=%[3]s lanplus=1 cipher=3
password_file = /etc/vigil/bmc-%[1]s.pass
timeout = 30s
`, NodeName(k), l.BMCAddr(k), bmcUser)
			continue
		}
		fmt.Fprintf(&b, `
[stonith#%[1]s]
type = ipmi
host = %[2]s
port = 623
user = %[3]s
password_file = /etc/vigil/bmc-%[1]s.pass
cipher = 3
`, NodeName(k), l.BMCAddr(k), bmcUser)
	}
	if l.ArbitratorPort != 0 {
		fmt.Fprintf(&b, "\n[arbitrator#1]\nuri = tcp://%s:%d\n", l.ClientAddr(), l.ArbitratorPort)
	}
	return b.String()
}

// hostsFile is bound over every node's /etc/hosts: the seed's services name
// their addresses.
func (l *Lab) hostsFile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for k := 1; k <= l.Nodes; k++ {
		fmt.Fprintf(&b, "%s\t%s\n", l.NodeAddr(k), NodeName(k))
	}
	for k := 1; k <= l.Nodes; k++ {
		fmt.Fprintf(&b, "%s\t%s-bmc\n", l.BMCAddr(k), NodeName(k))
	}
	fmt.Fprintf(&b, "%s\tregistry.opensvc.com\n%s\tbusybox.opensvc.com\n%s\tclient\n",
		l.Addr(hostRegistry), l.Addr(hostBusybox), l.Addr(hostClient))
	return b.String()
}

func (l *Lab) fixtureVars() Vars {
	return Vars{
		Lab:               l.Name,
		Nodes:             strings.Join(l.NodeNames(), " "),
		RegistryAddr:      l.Addr(hostRegistry),
		BusyboxAddr:       l.Addr(hostBusybox),
		RegistryBridge:    serviceBridges[0].name,
		BusyboxBridge:     serviceBridges[1].name,
		RegistryVG:        l.VGName("registry"),
		BusyboxVG:         l.VGName("busybox"),
		CgroupParent:      l.CgroupParent(),
		RegistryRootDev:   l.LoopDev("registry-root"),
		RegistryDockerDev: l.LoopDev("registry-docker"),
		RegistryDataDev:   l.LoopDev("registry-data"),
		BusyboxRootDev:    l.LoopDev("busybox-root"),
		BusyboxDataDev:    l.LoopDev("busybox-data"),
	}
}

// renderServices fills the fixture templates: NAME.env → content.
func renderServices(vars Vars) (map[string][]byte, error) {
	names, err := fs.Glob(Services, "*.env")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, name := range names {
		t, err := template.New(name).Option("missingkey=error").ParseFS(Services, name)
		if err != nil {
			return nil, fmt.Errorf("fixture %s: %w", name, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, vars); err != nil {
			return nil, fmt.Errorf("fixture %s: %w", name, err)
		}
		out[name] = b.Bytes()
	}
	return out, nil
}

// writeNodeFiles lays out every node's etc, lib and run directories: the
// cluster config, secret and BMC passwords, and the services.
func (l *Lab) writeNodeFiles(services bool) error {
	secret := randomHex(32)
	conf := l.clusterConf()
	var svcs map[string][]byte
	if services {
		var err error
		if svcs, err = renderServices(l.fixtureVars()); err != nil {
			return err
		}
	}
	if err := writeFile(l.Path("hosts"), []byte(l.hostsFile()), 0o644); err != nil {
		return err
	}
	for _, node := range l.NodeNames() {
		dir := l.NodeDir(node)
		for _, d := range []string{"etc", "lib", "run"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		etc := filepath.Join(dir, "etc")
		files := map[string][]byte{"cluster.conf": []byte(conf), "cluster.secret": []byte(secret + "\n")}
		for _, peer := range l.NodeNames() {
			pass, err := os.ReadFile(l.bmcPassFile(peer))
			if err != nil {
				return err
			}
			files["bmc-"+peer+".pass"] = pass
		}
		for name, b := range svcs {
			files[name] = b
		}
		for name, b := range files {
			if err := writeFile(filepath.Join(etc, name), b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}
