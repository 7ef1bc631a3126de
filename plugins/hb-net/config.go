package hbnet

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Keyword names of an hb.net section.
const (
	KwPort  = "port"
	KwAddrs = "addrs"
	KwBind  = "bind"
)

// DefaultPort is the UDP and TCP port of an hb.net heartbeat.
const DefaultPort = 10000

// ErrConfig marks a heartbeat section Run cannot use; the message says
// which keyword to fix.
var ErrConfig = errors.New("invalid hb.net heartbeat")

// settings is a heartbeat section, checked and resolved.
type settings struct {
	local    string
	nodes    map[string]bool
	nodeList string // for messages
	peers    []string
	bindIP   string
	bindPort int
	// advertiseIP is the local node's listed address, told to peers when
	// it differs from the bind address (bind 0.0.0.0, say). Empty lets
	// memberlist pick one.
	advertiseIP string
	// joinAddrs maps each peer to the host:port it is joined at.
	joinAddrs map[string]string
	key       []byte
	interval  time.Duration
	timeout   time.Duration
}

// addr is one node=ip[:port] word of addrs.
type addr struct {
	ip   string
	port int // 0: the section's port
}

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// parseSettings checks a section. Errors name the keyword and say what a
// good value looks like, since they reach the operator unchanged.
func parseSettings(cfg sdk.HeartbeatConfig) (settings, error) {
	s := settings{
		local:     cfg.LocalNode,
		nodes:     make(map[string]bool, len(cfg.Nodes)),
		peers:     cfg.Peers(),
		joinAddrs: make(map[string]string),
		interval:  cfg.Interval,
		timeout:   cfg.Timeout,
	}
	for _, n := range cfg.Nodes {
		s.nodes[n] = true
	}
	s.nodeList = nodeList(s.nodes)
	if s.local == "" {
		return s, configErr("the local node name is empty")
	}
	if !s.nodes[s.local] {
		return s, configErr("the local node %q is not in the cluster nodes (%s): add it to nodes in cluster.conf", s.local, strings.Join(cfg.Nodes, " "))
	}
	// The frame header stores the sender name in one length byte.
	for n := range s.nodes {
		if len(n) > maxNameLen {
			return s, configErr("node name %.20q... is longer than %d bytes", n, maxNameLen)
		}
	}
	if s.interval <= 0 {
		return s, configErr("interval must be positive, e.g. 1s")
	}
	if s.timeout <= 0 {
		return s, configErr("timeout must be positive, e.g. 3s")
	}
	switch len(cfg.Key) {
	case 16, 24, 32:
		s.key = cfg.Key
	default:
		return s, configErr("the heartbeat key is %d bytes; it must be 16, 24 or 32 (core derives it from the cluster secret: is the secret set?)", len(cfg.Key))
	}

	port := DefaultPort
	if v := strings.TrimSpace(cfg.Keywords[KwPort]); v != "" {
		p, err := parsePort(v)
		if err != nil {
			return s, configErr("%s: %v", KwPort, err)
		}
		port = p
	}
	addrs, err := parseAddrs(cfg.Keywords[KwAddrs], s.nodes)
	if err != nil {
		return s, configErr("%s: %v", KwAddrs, err)
	}
	for _, p := range s.peers {
		a, ok := addrs[p]
		switch {
		case !ok:
			// Resolved by memberlist at each join, so a DNS change is
			// picked up without a restart.
			s.joinAddrs[p] = net.JoinHostPort(p, strconv.Itoa(port))
		case a.port != 0:
			s.joinAddrs[p] = net.JoinHostPort(a.ip, strconv.Itoa(a.port))
		default:
			s.joinAddrs[p] = net.JoinHostPort(a.ip, strconv.Itoa(port))
		}
	}

	s.bindPort = port
	mine, listed := addrs[s.local]
	if listed && mine.port != 0 {
		s.bindPort = mine.port
	}
	switch b := strings.TrimSpace(cfg.Keywords[KwBind]); {
	case b != "":
		if net.ParseIP(b) == nil {
			return s, configErr("%s: %q is not an IP address (e.g. 10.0.0.1, or 0.0.0.0 for every address)", KwBind, b)
		}
		s.bindIP = b
		if listed && mine.ip != b {
			s.advertiseIP = mine.ip
		}
	case listed:
		s.bindIP = mine.ip
	default:
		// memberlist then advertises the host's first private address.
		s.bindIP = "0.0.0.0"
	}
	return s, nil
}

func parsePort(v string) (int, error) {
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", v)
	}
	return p, nil
}

// parseAddrs reads the node=ip words of addrs. A word may carry a port
// (node=ip:port, node=[v6]:port) for the rare node that listens elsewhere.
func parseAddrs(v string, nodes map[string]bool) (map[string]addr, error) {
	out := make(map[string]addr)
	for _, w := range strings.Fields(v) {
		node, a, ok := strings.Cut(w, "=")
		if !ok || node == "" || a == "" {
			return nil, fmt.Errorf("%q: write node=ip (a node not listed is resolved by its name)", w)
		}
		if !nodes[node] {
			return nil, fmt.Errorf("%q: %q is not a cluster node (nodes: %s)", w, node, nodeList(nodes))
		}
		if _, dup := out[node]; dup {
			return nil, fmt.Errorf("%q: node %q is listed twice", w, node)
		}
		if ip := net.ParseIP(a); ip != nil {
			out[node] = addr{ip: a}
			continue
		}
		host, ps, err := net.SplitHostPort(a)
		if err != nil || net.ParseIP(host) == nil {
			return nil, fmt.Errorf("%q: %q is not an IP address (write node=ip or node=ip:port)", w, a)
		}
		p, err := parsePort(ps)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", w, err)
		}
		out[node] = addr{ip: host, port: p}
	}
	return out, nil
}

func nodeList(nodes map[string]bool) string {
	l := make([]string, 0, len(nodes))
	for n := range nodes {
		l = append(l, n)
	}
	sort.Strings(l)
	return strings.Join(l, " ")
}

// tune sets memberlist's timers from the heartbeat's interval I and
// timeout T. Memberlist's LAN defaults detect a failure in ~5 s; a
// heartbeat must be able to declare a peer stale after T = 1 s, and
// the tests go down to I = 100 ms, T = 300 ms.
//
// Our own timer (no dataset for T) is the only thing that reports a
// silent peer; memberlist gives the membership the datasets are sent
// to. So memberlist must be about as fast as T, to find a restarted
// peer again promptly, but never faster by false alarm: a node it
// wrongly declares dead is not sent datasets until joinLoop joins it
// again, and goes stale at its peers although it lives.
//
//   - ProbeInterval = I: one probe per interval, the rate of the
//     heartbeat itself.
//   - ProbeTimeout = I/2: a LAN round trip is well under a millisecond;
//     half an interval absorbs a busy host and leaves room in the probe
//     period for the indirect and TCP fallback probes.
//   - SuspicionMult = T/I - 1, kept in [2, 6]: with few nodes
//     memberlist expects no confirmations and declares a suspect dead
//     after SuspicionMult*I, so probe + suspicion ≈ T (T = 3I gives 2).
//     A suspect that is alive refutes within a gossip interval.
//   - SuspicionMaxTimeoutMult = 2: the bound only applies to clusters
//     large enough to wait for confirmations; keep it near T.
//   - GossipInterval = min(I/2, 200ms): refutations and leave notices
//     must spread well within a suspicion period.
//   - PushPullInterval = 10*I in [2s, 30s]: full state syncs heal
//     partitions; "a few seconds" costs little with a handful of nodes.
//   - GossipToTheDeadTime = PushPullInterval: a node declared dead still
//     hears gossip long enough to refute.
//   - TCPTimeout = T: a push/pull or a reliable dataset that takes
//     longer than T is late anyway (the peer is stale by then), and a
//     dial to a dead host must not hold a join round much longer.
//   - DeadNodeReclaimTime = T: a node restarted at another address
//     (DHCP, a moved VM) gets its name back.
//   - Compression off: the UDP-or-TCP decision needs the exact size of
//     what goes on the wire, and datasets are signed, not bulky.
func tune(c *memberlist.Config, interval, timeout time.Duration) {
	c.ProbeInterval = interval
	c.ProbeTimeout = interval / 2
	mult := int(timeout/interval) - 1
	c.SuspicionMult = min(max(mult, 2), 6)
	c.SuspicionMaxTimeoutMult = 2
	c.GossipInterval = min(interval/2, 200*time.Millisecond)
	c.PushPullInterval = min(max(10*interval, 2*time.Second), 30*time.Second)
	c.GossipToTheDeadTime = c.PushPullInterval
	c.TCPTimeout = timeout
	c.DeadNodeReclaimTime = timeout
	c.EnableCompression = false
}

// Packet and stream limits. memberlist sends a user message in one UDP
// packet of at most UDPBufferSize bytes (1400: no IP fragmentation on an
// Ethernet MTU), after adding a message-type byte, a CRC header (5) and
// the AES-GCM envelope (version, nonce, tag and, for protocol 1, up to
// 16 bytes of padding: 45). Streams carry at most 20 MiB.
const (
	udpOverhead = 1 + 5 + 45 + 13 // the last 13: margin for a future label
	// maxStreamFrame stays under memberlist's 20 MiB limit on a user
	// message and on an encrypted stream, envelope included.
	maxStreamFrame = 20*1024*1024 - 4096
)

// maxPacketFrame is the largest frame sent as a best-effort packet.
func maxPacketFrame(c *memberlist.Config) int {
	return c.UDPBufferSize - udpOverhead
}
