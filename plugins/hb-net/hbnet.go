// Package hbnet is the network heartbeat (type "hb.net"): it carries each
// node's dataset to its peers over UDP, or TCP when the dataset does not
// fit a packet, and says when a peer went quiet. Membership, failure
// detection and encryption are hashicorp/memberlist's; this package tunes
// its timers for second-scale timeouts, frames datasets, and turns what
// memberlist only logs (undecryptable traffic) into rejects.
//
// It must not interpret datasets (core signs and merges them) nor decide
// that a peer is lost: it reports beats, staleness and refused traffic,
// and core decides.
package hbnet

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// Type is the heartbeat type served.
const Type = "hb.net"

// Config configures a Driver. The zero value is the production setup.
type Config struct {
	// Logger defaults to sdk.Logger().
	Logger hclog.Logger
	// LeaveTimeout bounds the wait for the leave notice to go out when
	// Run ends. Peers still judge the node by its timeout; the notice
	// spares them probing and suspecting it, and lets a restarted node
	// take its name back at once. Default 1s.
	LeaveTimeout time.Duration
	// RejectEvery is the least time between two rejects of the same
	// kind, so a misconfigured node does not flood core. Default 1s.
	RejectEvery time.Duration
}

// Driver runs network heartbeats. It holds no state between runs; each
// Run is one memberlist member.
type Driver struct {
	cfg Config
	log hclog.Logger
	// skipLeave makes Run end without telling peers, as a crash would:
	// tests use it to check that silence alone makes a peer stale.
	skipLeave bool
}

var _ sdk.HeartbeatDriver = (*Driver)(nil)

// New returns a Driver with cfg's defaults applied.
func New(cfg Config) *Driver {
	if cfg.Logger == nil {
		cfg.Logger = sdk.Logger()
	}
	if cfg.LeaveTimeout <= 0 {
		cfg.LeaveTimeout = time.Second
	}
	if cfg.RejectEvery <= 0 {
		cfg.RejectEvery = time.Second
	}
	return &Driver{cfg: cfg, log: cfg.Logger.Named("hb-net")}
}

// Info declares the hb.net type.
func (d *Driver) Info() sdk.Info {
	return sdk.Info{
		Name:    "hb-net",
		Version: Version,
		Types: []sdk.TypeInfo{{
			Type: Type,
			Help: "A network heartbeat: datasets over UDP (TCP when larger than a packet), encrypted with a key derived from the cluster secret.",
			Keywords: []sdk.Keyword{
				{Name: KwPort, Type: sdk.TypeInt, Default: "10000", Help: "The UDP and TCP port every node listens on."},
				{Name: KwAddrs, Type: sdk.TypeList, Help: "Node addresses as node=ip words, e.g. \"n1=10.0.0.1 n2=10.0.0.2\"; node=ip:port for a node on another port. A node not listed is resolved by its name."},
				{Name: KwBind, Help: "The local address to listen on. Default: the local node's address in addrs, else every address."},
			},
		}},
	}
}

// Run runs one heartbeat until ctx ends, then leaves the cluster.
func (d *Driver) Run(ctx context.Context, cfg sdk.HeartbeatConfig, datasets <-chan []byte, emit func(sdk.HeartbeatEvent)) error {
	st, err := parseSettings(cfg)
	if err != nil {
		return err
	}
	logger := d.log.With("hb", cfg.Name)
	s := &session{
		st:      st,
		log:     logger,
		emitFn:  emit,
		limit:   newLimiter(d.cfg.RejectEvery),
		members: make(map[string]memberlist.Node),
		leaves:  make(chan leave, 4*len(cfg.Nodes)),
		rejects: make(chan sdk.HeartbeatEvent, 64),
		senders: make(map[string]*streamSender),
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = st.local
	mc.BindAddr, mc.BindPort = st.bindIP, st.bindPort
	mc.AdvertiseAddr, mc.AdvertisePort = st.advertiseIP, st.bindPort
	mc.ProtocolVersion = memberlist.ProtocolVersionMax
	mc.SecretKey = st.key
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	tune(mc, st.interval, st.timeout)
	mc.Delegate = s
	mc.Events = s
	mc.Alive = s
	mc.Merge = s
	mc.Conflict = s
	mc.Logger = log.New(&logSink{log: logger.Named("memberlist"), reject: s.reject}, "", 0)
	s.maxPacket = maxPacketFrame(mc)

	// Before Create: a peer may send a dataset as soon as we listen.
	s.live = newLiveness(st.peers, st.timeout, time.Now())
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("hb.net %s: start on %s:%d: %w (is the port in use by another heartbeat? set %s or %s)", cfg.Name, st.bindIP, st.bindPort, err, KwPort, KwBind)
	}
	s.ml = ml
	logger.Debug("started", "bind", fmt.Sprintf("%s:%d", st.bindIP, st.bindPort), "peers", st.joinAddrs,
		"probe_interval", mc.ProbeInterval, "probe_timeout", mc.ProbeTimeout, "suspicion_mult", mc.SuspicionMult,
		"gossip_interval", mc.GossipInterval, "push_pull_interval", mc.PushPullInterval, "tcp_timeout", mc.TCPTimeout)

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	s.wg = &wg
	wg.Add(2)
	go func() { defer wg.Done(); s.joinLoop(runCtx) }()
	go func() { defer wg.Done(); s.monitor(runCtx) }()
	s.publishLoop(runCtx, datasets)

	stop()
	wg.Wait()
	if !d.skipLeave {
		if err := ml.Leave(d.cfg.LeaveTimeout); err != nil {
			logger.Debug("leave", "error", err)
		}
	}
	if err := ml.Shutdown(); err != nil {
		logger.Debug("shutdown", "error", err)
	}
	s.close()
	return nil
}

// session is one Run: a memberlist member and what it knows of peers. It
// is memberlist's delegate for messages, events, and admission.
type session struct {
	st        settings
	log       hclog.Logger
	ml        *memberlist.Memberlist
	limit     *limiter
	maxPacket int
	wg        *sync.WaitGroup

	// emitMu lets close wait for an emit in flight: memberlist may still
	// deliver a message while it shuts down, after which emit must not
	// be called.
	emitMu sync.RWMutex
	closed bool
	emitFn func(sdk.HeartbeatEvent)

	// mu guards live and is held while a Beat or Stale is emitted, so
	// core sees them in the order they were decided.
	mu   sync.Mutex
	live *liveness

	// memMu guards members, our copy of memberlist's live nodes. The
	// copy is taken in memberlist's event callbacks, under its node
	// lock: the *Node values Members() returns are updated in place
	// later, so reading them outside that lock would race.
	memMu   sync.Mutex
	members map[string]memberlist.Node

	// leaves and rejects come from callbacks that run under memberlist's
	// node lock, which must not wait on core: they are queued and
	// emitted by monitor.
	leaves  chan leave
	rejects chan sdk.HeartbeatEvent

	senders map[string]*streamSender // publishLoop's own
}

func (s *session) emit(e sdk.HeartbeatEvent) {
	s.emitMu.RLock()
	defer s.emitMu.RUnlock()
	if !s.closed {
		s.emitFn(e)
	}
}

func (s *session) close() {
	s.emitMu.Lock()
	s.closed = true
	s.emitMu.Unlock()
}

// Reject classes: the first word of a reject's Reason, before ": ".
// Core counts rejects by it, so it is a fixed word: the details after it
// may name addresses and claimed names, which a flood makes unbounded.
const (
	rejectBadTag      = "bad_tag"        // traffic the heartbeat key does not decrypt
	rejectUnencrypted = "unencrypted"    // plain traffic where the key is required
	rejectMalformed   = "malformed"      // a damaged frame, packet or stream
	rejectForeign     = "foreign"        // a node not of this cluster, or of another label
	rejectDupName     = "duplicate_name" // two processes claim one node name
)

// reject queues an EventReject whose Reason is "class: details". via
// says where it was refused (packet, stream, frame...), so that one
// kind of refused traffic does not hide another of the same class. At
// most one reject per class, via and cluster node passes per RejectEvery
// (per class and via alone when the claimed sender is not a node of the
// cluster: such names are the sender's to invent). It never blocks: it
// runs in memberlist's callbacks and logger, and a reject dropped on a
// full queue is followed by others.
func (s *session) reject(class, via, peer, details string) {
	key := class + "\x00" + via
	if s.st.nodes[peer] {
		key += "\x00" + peer
	}
	if !s.limit.allow(key, time.Now()) {
		return
	}
	peer = printableName(peer)
	reason := class + ": " + details
	s.log.Warn("rejected", "peer", peer, "reason", reason)
	select {
	case s.rejects <- sdk.HeartbeatEvent{Kind: sdk.EventReject, Peer: peer, Reason: reason}:
	default:
	}
}

// printableName makes a claimed sender name, which may be any bytes,
// fit the event's Peer: valid UTF-8 (the wire to core is protobuf
// strings), printable (core logs it), and no longer than a node name
// may be.
func printableName(name string) string {
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, name)
}

// monitor reports silent peers and emits the events queued by callbacks.
func (s *session) monitor(ctx context.Context) {
	// Half the shorter of interval and timeout: a peer is reported at
	// most that late after its timeout.
	every := max(min(s.st.interval, s.st.timeout)/2, 10*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-s.rejects:
			s.emit(e)
		case l := <-s.leaves:
			s.mu.Lock()
			s.live.left(l.peer, l.reason)
			s.mu.Unlock()
		case now := <-tick.C:
			s.mu.Lock()
			for _, st := range s.live.due(now) {
				s.emit(sdk.HeartbeatEvent{Kind: sdk.EventStale, Peer: st.peer, Reason: st.reason})
			}
			s.mu.Unlock()
		}
	}
}

// joinLoop joins the peers memberlist does not count as live, every
// interval (at least every 200ms, so a dead host costs little): a peer
// started late, or restarted after it was declared dead, is found again
// without waiting for it to join us.
func (s *session) joinLoop(ctx context.Context) {
	every := max(s.st.interval, 200*time.Millisecond)
	lastErr := make(map[string]string)
	var mu sync.Mutex
	for {
		var wg sync.WaitGroup
		for _, peer := range s.missingPeers() {
			addr := s.st.joinAddrs[peer]
			wg.Add(1)
			// One goroutine per peer: a black-holed address (dial
			// timeout) must not delay joining the others.
			go func() {
				defer wg.Done()
				_, err := s.ml.Join([]string{addr})
				msg := ""
				if err != nil {
					msg = err.Error()
				}
				mu.Lock()
				defer mu.Unlock()
				if lastErr[peer] != msg {
					lastErr[peer] = msg
					if err != nil {
						s.log.Debug("cannot join peer, retrying every interval", "peer", peer, "addr", addr, "error", err)
					} else {
						s.log.Debug("joined peer", "peer", peer, "addr", addr)
					}
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func (s *session) missingPeers() []string {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	var out []string
	for _, p := range s.st.peers {
		if _, ok := s.members[p]; !ok {
			out = append(out, p)
		}
	}
	return out
}

// livePeers returns copies of the live members other than us.
func (s *session) livePeers() []memberlist.Node {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	out := make([]memberlist.Node, 0, len(s.members))
	for _, n := range s.members {
		out = append(out, n)
	}
	return out
}

// publishLoop sends the latest dataset to every live peer each interval.
func (s *session) publishLoop(ctx context.Context, datasets <-chan []byte) {
	tick := time.NewTicker(s.st.interval)
	defer tick.Stop()
	var frame []byte // nil until the first dataset
	for {
		select {
		case <-ctx.Done():
			return
		case ds, ok := <-datasets:
			if !ok {
				datasets = nil // keep publishing the last one
				continue
			}
			f := encodeFrame(s.st.local, ds)
			if len(f) > maxStreamFrame {
				// Never truncated: better no dataset than a cut one,
				// which peers would refuse anyway. The previous one
				// stops being sent, so peers see the node go stale.
				s.log.Error("dataset too large to send, not publishing it", "bytes", len(ds), "limit", maxStreamFrame-frameHeader-len(s.st.local))
				frame = nil
				continue
			}
			frame = f
		case <-tick.C:
			if frame != nil {
				s.publish(ctx, frame)
			}
		}
	}
}

func (s *session) publish(ctx context.Context, frame []byte) {
	for _, n := range s.livePeers() {
		if len(frame) <= s.maxPacket {
			if err := s.ml.SendBestEffort(&n, frame); err != nil {
				s.log.Debug("send", "peer", n.Name, "error", err)
			}
			continue
		}
		snd, ok := s.senders[n.Name]
		if !ok {
			snd = &streamSender{slot: make(chan outbound, 1)}
			s.senders[n.Name] = snd
			s.wg.Add(1)
			go func() { defer s.wg.Done(); snd.run(ctx, s) }()
		}
		snd.offer(outbound{node: n, frame: frame})
	}
}

type outbound struct {
	node  memberlist.Node
	frame []byte
}

// streamSender sends one peer's datasets that need TCP. A slow or dead
// peer then only delays itself, and a dataset queued behind a send in
// flight is replaced by a newer one rather than piling up.
type streamSender struct {
	slot chan outbound
}

// offer replaces any dataset not sent yet. Only publishLoop calls it.
func (q *streamSender) offer(o outbound) {
	select {
	case <-q.slot:
	default:
	}
	q.slot <- o
}

func (q *streamSender) run(ctx context.Context, s *session) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-q.slot:
			if err := s.ml.SendReliable(&o.node, o.frame); err != nil {
				s.log.Debug("send over tcp", "peer", o.node.Name, "bytes", len(o.frame), "error", err)
			}
		}
	}
}

// memberlist.Delegate: only NotifyMsg matters; no metadata, broadcasts
// or push/pull state ride on memberlist's own messages.
var _ memberlist.Delegate = (*session)(nil)

// NodeMeta is unused.
func (s *session) NodeMeta(int) []byte { return nil }

// GetBroadcasts is unused.
func (s *session) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState is unused.
func (s *session) LocalState(bool) []byte { return nil }

// MergeRemoteState is unused.
func (s *session) MergeRemoteState([]byte, bool) {}

// NotifyMsg receives a frame. memberlist has checked the cluster key but
// does not say who sent it; the frame's sender must be a node of this
// cluster other than us (ours would mean another process uses our name).
// Membership in memberlist's view is not required: a dataset from a node
// it currently counts dead is still proof that node lives.
func (s *session) NotifyMsg(b []byte) {
	sender, ds, err := decodeFrame(b)
	switch {
	case err != nil:
		s.reject(rejectMalformed, "frame", sender, fmt.Sprintf("dropped a frame: %v", err))
		return
	case sender == s.st.local:
		s.reject(rejectDupName, "frame", sender, fmt.Sprintf("a frame claims to come from this node %q: another node uses the same name", sender))
		return
	case !s.st.nodes[sender]:
		s.reject(rejectForeign, "frame", sender, fmt.Sprintf("dropped a frame from %q, which is not a node of this cluster (%s)", sender, s.st.nodeList))
		return
	}
	// memberlist may reuse its buffer; core keeps the dataset.
	ds = append([]byte(nil), ds...)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live.beat(sender, now)
	s.emit(sdk.HeartbeatEvent{Kind: sdk.EventBeat, Peer: sender, Dataset: ds, Received: now})
}

// memberlist.EventDelegate: maintains members. Called under memberlist's
// node lock.
var _ memberlist.EventDelegate = (*session)(nil)

// NotifyJoin records a live peer.
func (s *session) NotifyJoin(n *memberlist.Node) { s.setMember(n) }

// NotifyUpdate records a peer's new address or metadata.
func (s *session) NotifyUpdate(n *memberlist.Node) { s.setMember(n) }

// NotifyLeave forgets a peer memberlist lost, so that it is no longer
// sent datasets and joinLoop looks for it again. It does not make the
// peer stale: only the timeout since its last dataset does (see
// liveness). A graceful leave is what a restart of vigild sends; a death
// memberlist confirmed after suspicion rests on probes that a busy host
// can miss while its datasets still arrive, and comes about the timeout
// anyway with our tuning. Either is only noted for the Stale's reason.
func (s *session) NotifyLeave(n *memberlist.Node) {
	if n.Name == s.st.local || !s.st.nodes[n.Name] {
		return
	}
	s.memMu.Lock()
	delete(s.members, n.Name)
	s.memMu.Unlock()
	// memberlist (v0.7) does not keep n.State up to date: a leave and
	// a death look the same here.
	l := leave{peer: n.Name, reason: "memberlist lost it: it left, or stopped answering probes"}
	s.log.Debug("memberlist lost a peer; it is judged by its timeout", "peer", n.Name)
	select {
	case s.leaves <- l:
	default: // only the reason's note is lost
	}
}

// leave is a peer memberlist lost, and how.
type leave struct{ peer, reason string }

func (s *session) setMember(n *memberlist.Node) {
	if n.Name == s.st.local || !s.st.nodes[n.Name] {
		return
	}
	s.memMu.Lock()
	s.members[n.Name] = *n
	s.memMu.Unlock()
}

// memberlist.AliveDelegate and MergeDelegate: only the cluster's nodes
// are admitted. The key already keeps strangers out; this catches a node
// of another cluster sharing the secret, or a node name missing from
// cluster.conf.
var (
	_ memberlist.AliveDelegate    = (*session)(nil)
	_ memberlist.MergeDelegate    = (*session)(nil)
	_ memberlist.ConflictDelegate = (*session)(nil)
)

var errNotMember = errors.New("not a node of this cluster")

// NotifyAlive refuses a node not in the cluster's nodes.
func (s *session) NotifyAlive(n *memberlist.Node) error {
	if s.st.nodes[n.Name] {
		return nil
	}
	s.reject(rejectForeign, "alive", n.Name, fmt.Sprintf("refused node %q at %s: not a node of this cluster (%s); add it to nodes or stop it", n.Name, n.Address(), s.st.nodeList))
	return fmt.Errorf("%q: %w", n.Name, errNotMember)
}

// NotifyMerge refuses a join that would bring live nodes not in the
// cluster's nodes. Dead ones a peer still remembers do no harm.
func (s *session) NotifyMerge(peers []*memberlist.Node) error {
	var bad []string
	for _, n := range peers {
		if (n.State == memberlist.StateAlive || n.State == memberlist.StateSuspect) && !s.st.nodes[n.Name] {
			bad = append(bad, n.Name)
			s.reject(rejectForeign, "alive", n.Name, fmt.Sprintf("refused a join bringing node %q at %s: not a node of this cluster (%s)", n.Name, n.Address(), s.st.nodeList))
		}
	}
	if bad != nil {
		return fmt.Errorf("%q: %w", bad, errNotMember)
	}
	return nil
}

// NotifyConflict reports two live processes claiming one node name.
func (s *session) NotifyConflict(existing, other *memberlist.Node) {
	s.reject(rejectDupName, "conflict", existing.Name, fmt.Sprintf("two nodes claim the name %q: %s and %s; give each node its own name", existing.Name, existing.Address(), other.Address()))
}
