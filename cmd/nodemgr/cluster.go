package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newClusterCmd) }

// File names in the config directory.
const (
	clusterConfName = "cluster.conf"
	secretName      = "cluster.secret"
)

func newClusterCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Create cluster.conf and the secret, bring a node in, check that every node agrees",
	}
	c.AddCommand(newClusterInitCmd(), newClusterExportCmd(), newClusterJoinCmd(), newClusterCheckCmd())
	return c
}

type initOptions struct {
	name, nodes     string
	hbNet           string
	hbPort          int
	hbDisk          string
	ipmi, ipmiUser  string
	fenceDelayFirst string
	force           bool
}

func newClusterInitCmd() *cobra.Command {
	o := &initOptions{}
	c := &cobra.Command{
		Use:   "init --name NAME --nodes \"N1 N2\"",
		Short: "Write cluster.conf and a new cluster secret (root, 0400) on the first node, then validate them",
		Long: `Write CONFIG_DIR/cluster.conf and a new random cluster secret, then validate
them with the plugins' keywords. The heartbeat and stonith sections come from
--hb-net, --hb-disk and --ipmi, or are written as commented stubs to fill in.
Bring the other nodes in with
  nodemgr cluster export | ssh N2 nodemgr cluster join
and check with nodemgr cluster check once vigild runs on every node.`,
		Example: `  nodemgr cluster init --name prod --nodes "n1 n2" \
    --hb-net "n1=10.0.0.1 n2=10.0.0.2" --hb-disk /dev/disk/by-id/wwn-0x600a0b80001 \
    --ipmi "n1=n1-bmc n2=n2-bmc" --ipmi-user vigil`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := c.Flags()
	f.StringVar(&o.name, "name", "", "the cluster's name")
	f.StringVar(&o.nodes, "nodes", "", "every node's name (its hostname), space separated, in placement order")
	f.StringVar(&o.hbNet, "hb-net", "", "a network heartbeat: every node's address, \"N1=ADDR N2=ADDR\"")
	f.IntVar(&o.hbPort, "hb-port", 10000, "the network heartbeat's UDP port")
	f.StringVar(&o.hbDisk, "hb-disk", "", "a disk heartbeat on this shared device (the same path on every node: use /dev/disk/by-id/...)")
	f.StringVar(&o.ipmi, "ipmi", "", "IPMI fencing: every node's BMC address, \"N1=BMC N2=BMC\" (password in CONFIG_DIR/bmc-NODE.pass)")
	f.StringVar(&o.ipmiUser, "ipmi-user", "vigil", "the BMC user of --ipmi (operator privilege is enough to power off)")
	f.StringVar(&o.fenceDelayFirst, "fence-delay-first", "", "fence_delay of the first node's [stonith#] section (e.g. 5s): the first node wins a split where both sides run services")
	f.BoolVar(&o.force, "force", false, "replace an existing cluster.conf and secret (a new secret: every node needs the new files)")
	_ = c.MarkFlagRequired("name")
	_ = c.MarkFlagRequired("nodes")
	return c
}

// pairs parses "n1=a n2=b" and checks every key is a node.
func pairs(flag, s string, nodes []string) (map[string]string, error) {
	out := map[string]string{}
	for _, w := range strings.Fields(s) {
		k, v, ok := strings.Cut(w, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("--%s %q: write NODE=VALUE pairs, e.g. %q", flag, w, nodes[0]+"=...")
		}
		if !slices.Contains(nodes, k) {
			return nil, fmt.Errorf("--%s: %s is not in --nodes %v", flag, k, nodes)
		}
		out[k] = v
	}
	for _, n := range nodes {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("--%s gives nothing for node %s: give one value per node", flag, n)
		}
	}
	return out, nil
}

// clusterConf renders cluster.conf. Every keyword sits on a line of its
// own, comments on lines of their own: the file is for operators to read
// and edit, and loads the same with or without inline comment support.
func (o *initOptions) clusterConf(dir string) (string, error) {
	nodes := strings.Fields(o.nodes)
	if len(nodes) == 0 {
		return "", errors.New("--nodes: give every node's name")
	}
	if !validName(o.name) {
		return "", fmt.Errorf("--name %q: use letters, digits, '.', '_' and '-'", o.name)
	}
	for _, n := range nodes {
		if !validName(n) {
			return "", fmt.Errorf("--nodes: %q: use letters, digits, '.', '_' and '-' (a node's name is its hostname)", n)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by nodemgr cluster init. The same file on every node:
# nodemgr cluster check compares them.
[cluster]
name = %s
nodes = %s
secret_file = %s
`, o.name, strings.Join(nodes, " "), filepath.Join(dir, secretName))
	hb := 0
	if o.hbNet != "" {
		addrs, err := pairs("hb-net", o.hbNet, nodes)
		if err != nil {
			return "", err
		}
		hb++
		var list []string
		for _, n := range nodes {
			list = append(list, n+"="+addrs[n])
		}
		fmt.Fprintf(&b, "\n[hb#%d]\ntype = net\nport = %d\naddrs = %s\n", hb, o.hbPort, strings.Join(list, " "))
	}
	if o.hbDisk != "" {
		hb++
		fmt.Fprintf(&b, "\n[hb#%d]\ntype = disk\ndev = %s\n", hb, o.hbDisk)
	}
	if hb == 0 {
		fmt.Fprintf(&b, `
# No heartbeat yet: a node hears its peers on none. Two of different
# kinds, so that one link down is not a lost node:
# [hb#1]
# type = net
# port = 10000
# addrs = %[1]s=192.0.2.1 %[2]s=192.0.2.2
#
# [hb#2]
# type = disk
# dev = /dev/disk/by-id/wwn-0x...
`, nodes[0], nodes[min(1, len(nodes)-1)])
	}
	var bmcs map[string]string
	if o.ipmi != "" {
		var err error
		if bmcs, err = pairs("ipmi", o.ipmi, nodes); err != nil {
			return "", err
		}
	}
	for i, n := range nodes {
		delay := ""
		if i == 0 && o.fenceDelayFirst != "" {
			delay = "fence_delay = " + o.fenceDelayFirst + "\n"
		}
		if bmcs != nil {
			fmt.Fprintf(&b, "\n[stonith#%s]\ntype = ipmi\nhost = %s\nuser = %s\npassword_file = %s\n%s",
				n, bmcs[n], o.ipmiUser, filepath.Join(dir, "bmc-"+n+".pass"), delay)
			continue
		}
		fmt.Fprintf(&b, `
# How to fence %[1]s (orchestrate = ha needs one per node):
# [stonith#%[1]s]
# type = ipmi
# host = %[1]s-bmc
# user = vigil
# password_file = %[2]s
`, n, filepath.Join(dir, "bmc-"+n+".pass"))
	}
	return b.String(), nil
}

func (o *initOptions) run(cmd *cobra.Command) error {
	dir, err := filepath.Abs(configDir(cmd))
	if err != nil {
		return err
	}
	confPath, secretPath := filepath.Join(dir, clusterConfName), filepath.Join(dir, secretName)
	if !o.force {
		for _, p := range []string{confPath, secretPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s exists: this node is set up already (nodemgr validate checks it); --force writes a new config and secret, which every node then needs", p)
			}
		}
	}
	conf, err := o.clusterConf(dir)
	if err != nil {
		return err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("make the cluster secret: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := writeFileAtomic(secretPath, []byte(hex.EncodeToString(secret)+"\n"), 0o400); err != nil {
		return err
	}
	if err := writeFileAtomic(confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "wrote %s and %s\n", confPath, secretPath)
	host := pluginHost(cmd)
	defer host.Close()
	nc, err := loadClusterConf(cmd, host, confPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: ok (cluster %s, nodes %v, sum %s)\n", confPath, nc.Cluster, nc.Nodes, short(nc.Sum))
	var missing []string
	for _, n := range nc.Nodes {
		if st, ok := nc.Stonith[n]; ok {
			if p := st.Keywords["password_file"]; p != "" {
				if _, err := os.Stat(p); err != nil {
					missing = append(missing, p)
				}
			}
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(out, "next: write each BMC password, one line, root-only (chmod 400): %s\n", strings.Join(missing, " "))
	}
	for _, n := range nc.Nodes {
		if n != nc.Local {
			fmt.Fprintf(out, "next: nodemgr cluster export | ssh %s nodemgr cluster join\n", n)
		}
	}
	return nil
}

// writeFileAtomic writes path through a temporary file and a rename, so
// that a node never reads half a cluster.conf or secret.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// joinBundle is what `cluster export` prints and `cluster join` reads:
// the first node's cluster.conf and secret, with a checksum so that a
// truncated paste is refused rather than half-written. It carries the
// secret: it travels over ssh, never in a command line or a ticket.
type joinBundle struct {
	Conf   []byte `json:"conf"`
	Secret []byte `json:"secret"`
	Sum    string `json:"sum"`
}

const bundlePrefix = "vigil-join:"

func bundleSum(conf, secret []byte) string {
	h := sha256.New()
	h.Write(conf)
	h.Write([]byte{0})
	h.Write(secret)
	return hex.EncodeToString(h.Sum(nil))
}

func newClusterExportCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "export",
		Short:   "Print this node's cluster.conf and secret as one line for `nodemgr cluster join` on another node (it holds the secret: pipe it over ssh)",
		Example: `  nodemgr cluster export | ssh n2 nodemgr cluster join`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host := pluginHost(cmd)
			defer host.Close()
			confPath := filepath.Join(configDir(cmd), clusterConfName)
			if _, err := loadClusterConf(cmd, host, confPath); err != nil {
				return err
			}
			conf, err := os.ReadFile(confPath)
			if err != nil {
				return err
			}
			secret, err := os.ReadFile(secretPathOf(confPath))
			if err != nil {
				return fmt.Errorf("read the secret to export: %w", err)
			}
			b, _ := json.Marshal(joinBundle{Conf: conf, Secret: secret, Sum: bundleSum(conf, secret)})
			_, err = fmt.Fprintln(cmd.OutOrStdout(), bundlePrefix+base64.StdEncoding.EncodeToString(b))
			return err
		},
	}
}

// secretPathOf is where cluster.conf's secret_file points, resolved as
// LoadNodeConfig does (relative to cluster.conf's directory).
func secretPathOf(confPath string) string {
	f, err := os.ReadFile(confPath)
	if err != nil {
		return filepath.Join(filepath.Dir(confPath), secretName)
	}
	return secretFileIn(f, confPath)
}

// secretFileIn finds [cluster] secret_file in a cluster.conf's text.
func secretFileIn(conf []byte, confPath string) string {
	p := ""
	sec := ""
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			sec = line[1 : len(line)-1]
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && sec == "cluster" && strings.TrimSpace(k) == "secret_file" {
			p = strings.TrimSpace(v)
		}
	}
	if p == "" {
		return filepath.Join(filepath.Dir(confPath), secretName)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(confPath), p)
	}
	return p
}

func newClusterJoinCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "join",
		Short: "Write the cluster.conf and secret that `nodemgr cluster export` printed on another node (read from stdin), then validate them here",
		Long: `Read the line nodemgr cluster export printed on a node of the cluster
(from stdin: it holds the secret, which must not appear in a command line),
write cluster.conf and the secret with the same content, and validate them
with this node's plugins: this node must be in the node list. An existing,
different cluster.conf is kept unless --force.`,
		Example: `  nodemgr cluster export | ssh n2 nodemgr cluster join`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			if err != nil {
				return fmt.Errorf("read the join line from stdin: %w", err)
			}
			raw, ok := strings.CutPrefix(strings.TrimSpace(string(line)), bundlePrefix)
			if !ok {
				return errors.New("stdin holds no join line: pipe in what `nodemgr cluster export` prints on a node of the cluster")
			}
			b, err := base64.StdEncoding.DecodeString(raw)
			var jb joinBundle
			if err == nil {
				err = json.Unmarshal(b, &jb)
			}
			if err != nil || jb.Sum != bundleSum(jb.Conf, jb.Secret) {
				return errors.New("the join line is damaged (cut or changed on the way): export it again")
			}
			dir, err := filepath.Abs(configDir(cmd))
			if err != nil {
				return err
			}
			confPath := filepath.Join(dir, clusterConfName)
			secretPath := secretFileIn(jb.Conf, confPath)
			for _, f := range []struct {
				path string
				data []byte
			}{{confPath, jb.Conf}, {secretPath, jb.Secret}} {
				if old, err := os.ReadFile(f.path); err == nil && !bytes.Equal(old, f.data) && !force {
					return fmt.Errorf("%s exists and differs from the one exported: this node belongs to another cluster or an older setup; move it away or use --force", f.path)
				}
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("create %s: %w", dir, err)
			}
			if err := os.MkdirAll(filepath.Dir(secretPath), 0o700); err != nil {
				return fmt.Errorf("create %s: %w", filepath.Dir(secretPath), err)
			}
			if err := writeFileAtomic(secretPath, jb.Secret, 0o400); err != nil {
				return err
			}
			if err := writeFileAtomic(confPath, jb.Conf, 0o600); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s and %s\n", confPath, secretPath)
			host := pluginHost(cmd)
			defer host.Close()
			nc, err := loadClusterConf(cmd, host, confPath)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: ok (cluster %s, this node %s, sum %s)\n", confPath, nc.Cluster, nc.Local, short(nc.Sum))
			fmt.Fprintln(out, "next: systemctl enable --now vigild, then nodemgr cluster check")
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "replace an existing, different cluster.conf and secret")
	return c
}

// validName: a cluster or node name goes into section names and file
// names (bmc-NODE.pass): no spaces, brackets or slashes.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
