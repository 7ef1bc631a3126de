// Package cluster owns what a node knows of its cluster: the node config
// (cluster.conf), the dataset each node publishes, the signed envelope that
// carries it (authenticated with the cluster secret, replay-protected), and
// the cluster view merged from every heartbeat: a peer is lost only when
// every heartbeat is stale for it.
//
// It starts no process and opens no socket; vigild wires heartbeats in.
package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk/value"

	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Heartbeat defaults: a peer is lost only when every heartbeat is stale, so
// a shorter timeout than a single-ring cluster's is safe.
const (
	DefaultInterval = 500 * time.Millisecond
	DefaultTimeout  = 2 * time.Second
	MinInterval     = 100 * time.Millisecond
	MinTimeout      = 300 * time.Millisecond
)

// NodeConfig is this node's cluster.conf.
type NodeConfig struct {
	Path    string
	Cluster string
	// Local is this node's name (default the hostname).
	Local string
	// Nodes lists every node of the cluster, in config order.
	Nodes  []string
	secret []byte
	// Metrics is the address of the Prometheus endpoint, "" for off.
	Metrics string
	// SyncPort is the TCP port peers fetch service configs from
	// (core/configsync), on every address of the node.
	SyncPort int
	// ReadyPeriod bounds how long a starting daemon stays joining when
	// some peers do not answer.
	ReadyPeriod time.Duration
	Heartbeats  []HeartbeatConfig
	// Stonith maps a node name to how to fence it.
	Stonith map[string]StonithConfig
	// Arbitrators add quorum votes: a partition side counts each one it
	// can reach.
	Arbitrators []string // "host:port"
	// SplitAction is what a side without quorum does with its services:
	// "none" (leave them, orchestrate nothing) or "stop".
	SplitAction string
	// PriorityFenceDelay delays a fence of a node that runs more services
	// than the fencer (fence_priority_delay): in a two-node split, the
	// side running the services fences first and wins.
	PriorityFenceDelay time.Duration
	// FenceLevels lists each node's fencing methods in the order they are
	// tried (fence levels, opsconf.go); Stonith holds the first.
	FenceLevels map[string][]StonithConfig
	// FenceCheckInterval is how often every fencing method's status is
	// asked (fence_check_interval; 0: never).
	FenceCheckInterval time.Duration
	// Alerts are the [alert#n] sections.
	Alerts []AlertConfig
	// Sum is the file's ConfSum, published in the dataset.
	Sum string
}

// HeartbeatConfig is one [hb#n] section.
type HeartbeatConfig struct {
	Name     string // "hb#1"
	Type     string // "hb.net"
	Interval time.Duration
	Timeout  time.Duration
	Keywords map[string]string
}

// StonithConfig is one [stonith#<node>] section.
type StonithConfig struct {
	Node string
	Type string // "stonith.ipmi"
	// Delay is the section's fence_delay: every fence of the node waits
	// this long first (a static tie-breaker, as pcmk_delay_base).
	Delay    time.Duration
	Keywords map[string]string
	// Name is the section's name; Level orders a node's methods (1 first).
	Name  string
	Level int
}

// Key derives a 32-byte key for one use ("hb#1", "envelope") from the
// cluster secret, so no component ever holds the secret itself.
func (c *NodeConfig) Key(use string) []byte { return DeriveKey(c.secret, c.Cluster, use) }

// DeriveKey is the key for one use of a cluster's secret: what NodeConfig.Key
// gives, for a holder of the secret without a cluster.conf (the
// arbitrator).
func DeriveKey(secret []byte, cluster, use string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("vigil/" + cluster + "/" + use))
	return m.Sum(nil)
}

// HasSecret reports whether a secret is configured.
func (c *NodeConfig) HasSecret() bool { return len(c.secret) > 0 }

// String never shows the secret.
func (c *NodeConfig) String() string {
	return fmt.Sprintf("cluster %s node %s nodes %v", c.Cluster, c.Local, c.Nodes)
}

var clusterKeywords = []config.Keyword{
	{Name: "name", Required: true, Help: "the cluster's name"},
	{Name: "nodes", Type: config.List, Required: true, Help: "every node of the cluster, in placement order"},
	{Name: "node", Help: "this node's name (default: the hostname)"},
	{Name: "secret", Help: "the cluster secret, hex (prefer secret_file)"},
	{Name: "secret_file", Help: "a file holding the cluster secret"},
	{Name: "metrics", Help: "address of the Prometheus /metrics endpoint, e.g. 127.0.0.1:9100 (off when unset)"},
	{Name: "sync_port", Type: config.Int, Default: "10001", Help: "TCP port peers fetch service configs from (authenticated and encrypted with the cluster secret)"},
	{Name: "ready_period", Type: config.Duration, Default: "5s", Help: "longest a starting daemon waits for silent peers"},
	{Name: "split_action", Default: "none", Candidates: []string{"none", "stop"}, Help: "what a partition side without quorum does with its services"},
	{Name: "fence_priority_delay", Type: config.Duration, Default: "5s", Help: "how long a fence of a node running more services than the fencer waits, so that in a split the side running the services wins (a node its BMC reports off is confirmed at once)"},
	fenceCheckKeyword,
}

var arbitratorKeywords = []config.Keyword{
	{Name: "uri", Required: true, Help: "tcp://host:port of a vigil-arbitrator: its vote, leased to one side of a split at a time, counts for quorum"},
}

var hbKeywords = []config.Keyword{
	{Name: "type", Required: true, Help: "the heartbeat type: net, disk, ..."},
	{Name: "interval", Type: config.Duration, Default: "0.5s", Help: "how often a beat is sent"},
	{Name: "timeout", Type: config.Duration, Default: "2s", Help: "a peer is stale on this heartbeat after this long unheard"},
}

var stonithKeywords = []config.Keyword{
	{Name: "type", Required: true, Help: "the fencing type: ipmi, fence_agent, ..."},
	{Name: "fence_delay", Type: config.Duration, Default: "0s", Help: "every fence of this node waits this long first: a static tie-breaker between the two sides of a split"},
	stonithNodeKeyword, stonithLevelKeyword,
}

// PluginKeywords gives the keywords a plugin declares for a type
// ("hb.net"); nil when no plugin serves it.
type PluginKeywords func(typ string) ([]config.Keyword, bool)

// LoadNodeConfig reads and validates cluster.conf. Every problem comes back
// at once as config.Errors. kw supplies the keywords the heartbeat and
// stonith plugins declare.
func LoadNodeConfig(path string, kw PluginKeywords) (*NodeConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read node config: %w", err)
	}
	f, err := config.ParseINI(path, data)
	if err != nil {
		return nil, err
	}
	c := &NodeConfig{Path: path, Stonith: map[string]StonithConfig{}, Sum: ConfSum(f)}
	var errs config.Errors
	fail := func(line int, sec, key, format string, args ...any) {
		if s := f.Section(sec); s != nil {
			line = keyLine(s, key) // the keyword's own line, not its section's
		}
		errs = append(errs, &config.Error{File: path, Line: line, Section: sec, Keyword: key, Msg: fmt.Sprintf(format, args...), Err: config.ErrInvalidValue})
	}
	var clusterSec *config.Section
	for _, sec := range f.Sections {
		prefix, suffix, _ := strings.Cut(sec.Name, "#")
		switch {
		case sec.Name == "cluster":
			clusterSec = sec
			vals, e := config.CheckSection(path, sec, clusterKeywords)
			errs = append(errs, e...)
			c.Cluster, c.Metrics = vals["name"], vals["metrics"]
			c.SyncPort, _ = strconv.Atoi(vals["sync_port"])
			if c.SyncPort < 1 || c.SyncPort > 65535 {
				fail(sec.Line, sec.Name, "sync_port", "%q: give a TCP port, 1 to 65535", vals["sync_port"])
			}
			c.Nodes = strings.Fields(vals["nodes"])
			c.Local = vals["node"]
			c.ReadyPeriod, _ = value.ParseDuration(vals["ready_period"])
			c.SplitAction = vals["split_action"]
			c.PriorityFenceDelay, _ = value.ParseDuration(vals["fence_priority_delay"])
			c.FenceCheckInterval, _ = value.ParseDuration(vals["fence_check_interval"])
			if s := vals["secret"]; s != "" {
				if c.secret, err = hex.DecodeString(s); err != nil || len(c.secret) < 16 {
					fail(sec.Line, sec.Name, "secret", "give at least 16 bytes as hex (e.g. openssl rand -hex 32)")
				}
			}
			if p := vals["secret_file"]; p != "" {
				if !filepath.IsAbs(p) {
					p = filepath.Join(filepath.Dir(path), p)
				}
				b, err := sdk.ReadSecretFile(p) // root's and private, or refused
				if err != nil {
					fail(sec.Line, sec.Name, "secret_file", "%v", err)
				} else if c.secret, err = hex.DecodeString(strings.TrimSpace(string(b))); err != nil || len(c.secret) < 16 {
					fail(sec.Line, sec.Name, "secret_file", "%s must hold at least 16 bytes as hex (e.g. openssl rand -hex 32 > %s)", p, p)
				}
			}
		case prefix == "hb" && suffix != "":
			c.heartbeat(path, sec, kw, &errs)
		case prefix == "stonith" && suffix != "":
			c.stonith(path, sec, suffix, kw, &errs)
		case prefix == "alert" && suffix != "":
			c.alert(path, sec, &errs)
		case prefix == "arbitrator" && suffix != "":
			vals, e := config.CheckSection(path, sec, arbitratorKeywords)
			errs = append(errs, e...)
			if uri := vals["uri"]; uri != "" {
				hostport, ok := strings.CutPrefix(uri, "tcp://")
				if _, _, err := net.SplitHostPort(hostport); !ok || err != nil {
					fail(sec.Line, sec.Name, "uri", "%q: write tcp://host:port", uri)
				} else {
					c.Arbitrators = append(c.Arbitrators, hostport)
				}
			}
		default:
			errs = append(errs, &config.Error{File: path, Line: sec.Line, Section: sec.Name, Err: config.ErrUnknownSection,
				Msg: "expected [cluster], [hb#<n>], [stonith#<node>], [alert#<n>] or [arbitrator#<n>]"})
		}
	}
	if clusterSec == nil {
		errs = append(errs, &config.Error{File: path, Section: "cluster", Err: config.ErrMissingKeyword, Msg: "no [cluster] section (name, nodes, secret_file)"})
		return nil, errs
	}
	if c.Local == "" {
		c.Local, _ = os.Hostname()
	}
	if len(c.Nodes) > 0 && !slices.Contains(c.Nodes, c.Local) {
		fail(clusterSec.Line, "cluster", "nodes", "this node (%s) is not in the node list %v; set node = or fix nodes", c.Local, c.Nodes)
	}
	if len(c.Nodes) > 1 && len(c.secret) == 0 {
		fail(clusterSec.Line, "cluster", "secret_file", "a cluster of several nodes needs a secret (secret_file = /etc/vigil/cluster.secret)")
	}
	for node := range c.FenceLevels {
		if !slices.Contains(c.Nodes, node) {
			fail(0, "stonith#"+node, "", "%s is not in the node list %v", node, c.Nodes)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

func (c *NodeConfig) heartbeat(path string, sec *config.Section, kw PluginKeywords, errs *config.Errors) {
	hb := HeartbeatConfig{Name: sec.Name}
	typ := ""
	if e := sec.Entry("type"); e != nil {
		typ = "hb." + e.Value
	}
	kws := slices.Clone(hbKeywords)
	if typ != "" {
		extra, ok := kw(typ)
		if !ok {
			*errs = append(*errs, &config.Error{File: path, Line: sec.Entry("type").Line, Section: sec.Name, Keyword: "type",
				Err: config.ErrUnknownType, Msg: fmt.Sprintf("no plugin serves heartbeat type %s (is vigil-plugin-hb-%s in the plugin directory?)", typ, strings.TrimPrefix(typ, "hb."))})
			return
		}
		kws = append(kws, extra...)
	}
	vals, e := config.CheckSection(path, sec, kws)
	*errs = append(*errs, e...)
	hb.Type = typ
	hb.Interval, _ = value.ParseDuration(vals["interval"])
	hb.Timeout, _ = value.ParseDuration(vals["timeout"])
	if hb.Interval < MinInterval {
		*errs = append(*errs, &config.Error{File: path, Line: keyLine(sec, "interval"), Section: sec.Name, Keyword: "interval", Err: config.ErrInvalidValue,
			Msg: fmt.Sprintf("%s is below the %s minimum", hb.Interval, MinInterval)})
	}
	if hb.Timeout < MinTimeout || hb.Timeout < 2*hb.Interval {
		*errs = append(*errs, &config.Error{File: path, Line: keyLine(sec, "timeout"), Section: sec.Name, Keyword: "timeout", Err: config.ErrInvalidValue,
			Msg: fmt.Sprintf("%s: use at least %s and twice the interval", hb.Timeout, MinTimeout)})
	}
	for _, k := range hbKeywords {
		delete(vals, k.Name)
	}
	hb.Keywords = vals
	c.Heartbeats = append(c.Heartbeats, hb)
}

func (c *NodeConfig) stonith(path string, sec *config.Section, node string, kw PluginKeywords, errs *config.Errors) {
	st := StonithConfig{Node: node}
	kws := slices.Clone(stonithKeywords)
	if e := sec.Entry("type"); e != nil {
		st.Type = "stonith." + e.Value
		if extra, ok := kw(st.Type); ok {
			kws = append(kws, extra...)
		} else {
			// The fencing plugins arrive with the HA work; until then
			// the section is kept as written.
			for _, en := range sec.Entries {
				if en.Key != "type" {
					kws = append(kws, config.Keyword{Name: en.Key})
				}
			}
		}
	}
	vals, e := config.CheckSection(path, sec, kws)
	*errs = append(*errs, e...)
	st.Delay, _ = value.ParseDuration(vals["fence_delay"])
	delete(vals, "type")
	delete(vals, "fence_delay")
	st.Keywords = vals
	c.addStonith(path, sec, st, errs)
}

// ErrNoNodeConfig: there is no cluster.conf; the daemon runs alone.
var ErrNoNodeConfig = errors.New("no cluster.conf")

// keyLine is the line of key in sec, or the section's header line when it
// is not set there (a default, or a missing keyword).
func keyLine(sec *config.Section, key string) int {
	if e := sec.Entry(key); e != nil && key != "" {
		return e.Line
	}
	return sec.Line
}
