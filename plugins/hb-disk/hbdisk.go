// Package hbdisk is the disk heartbeat (type "hb.disk"): every node owns
// one slot of a shared block device, writes its dataset there every
// interval under a growing generation number, and reads its peers' slots.
// It owns the slot format and the device I/O; it never interprets a
// dataset (core signs and merges them) and never repairs a peer's slot: a
// torn, corrupt or foreign slot is ignored and reported, and a slot whose
// generation stops moving makes its node stale. Datasets go to the device
// sealed under the heartbeat key (see slot.go), never in clear.
package hbdisk

import (
	"bytes"
	"context"
	"crypto/cipher"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// Type is the heartbeat type served.
const Type = "hb.disk"

// Keyword names.
const (
	KwDev      = "dev"
	KwSlotSize = "slot_size"
	KwOffset   = "offset"
)

// The peers' slots are read readsPerWrite times per interval, but not
// more often than every minReadEvery.
const (
	readsPerWrite = 4
	minReadEvery  = 10 * time.Millisecond
)

const (
	defaultSlotSize = 1 << 20
	// maxSlotSize bounds the two I/O buffers mapped per heartbeat; a
	// dataset anywhere near it is a bug elsewhere.
	maxSlotSize = 64 << 20
)

// Config configures a Driver. The zero value is the production setup.
type Config struct {
	// RejectEvery is how often the same rejection (same peer, same kind
	// of fault) is reported again while it lasts, as an event and a log
	// line. Default 5s.
	RejectEvery time.Duration
	// Logger defaults to sdk.Logger().
	Logger hclog.Logger
}

// Driver runs disk heartbeats.
type Driver struct {
	cfg Config
	log hclog.Logger
	// noDirect forces the buffered-I/O fallback (tests: every filesystem
	// at hand accepts O_DIRECT).
	noDirect bool
	// beforeCycle, when set, runs on the I/O goroutine before each
	// cycle: tests block in it to model a hung device, which this host
	// cannot make (no device-mapper to suspend).
	beforeCycle func()
}

var _ sdk.HeartbeatDriver = (*Driver)(nil)

// New returns a Driver with cfg's defaults applied.
func New(cfg Config) *Driver {
	if cfg.RejectEvery <= 0 {
		cfg.RejectEvery = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = sdk.Logger()
	}
	return &Driver{cfg: cfg, log: cfg.Logger.Named("hb-disk")}
}

// Info declares the hb.disk type.
func (d *Driver) Info() sdk.Info {
	return sdk.Info{
		Name:    "hb-disk",
		Version: Version,
		Types: []sdk.TypeInfo{{
			Type: Type,
			Help: "A heartbeat through a block device every node can write: one slot per node, in nodes order.",
			Keywords: []sdk.Keyword{
				{Name: KwDev, Required: true, Help: "The shared block device (or a file on shared storage), the same on every node, e.g. /dev/mapper/hb. Its slots are overwritten: give it to the heartbeat alone."},
				{Name: KwSlotSize, Type: sdk.TypeSize, Default: "1MiB", Help: "The size of each node's slot, a multiple of 4096; a slot holds a 512-byte header and the node's dataset. The same on every node."},
				{Name: KwOffset, Type: sdk.TypeSize, Default: "0", Help: "Where the heartbeat's label (written once by nodemgr hb-disk init) starts on the device, slot 0 4096 bytes after it; a multiple of 4096. The same on every node."},
			},
		}},
	}
}

// spec is a heartbeat's config, checked.
type spec struct {
	name     string
	dev      string
	cluster  string
	nodes    []string
	local    int
	slotSize int64
	offset   int64
	interval time.Duration
	timeout  time.Duration
	// aead seals the local slot and opens peers'. AES-GCM keeps no state
	// between calls, so Run's goroutine and the I/O one may share it.
	aead cipher.AEAD
}

// slotOffset is where slot i starts: after the device's label (label.go).
func (s spec) slotOffset(i int) int64 { return s.offset + labelSize + int64(i)*s.slotSize }

// maxPayload is the largest dataset a slot holds: the room after the
// header, less the tag.
func (s spec) maxPayload() int { return int(s.slotSize) - headerSize - tagSize }

func parseSpec(cfg sdk.HeartbeatConfig) (spec, error) {
	s := spec{name: cfg.Name, dev: strings.TrimSpace(cfg.Keywords[KwDev]), cluster: cfg.Cluster,
		nodes: cfg.Nodes, interval: cfg.Interval, timeout: cfg.Timeout}
	fail := func(format string, a ...any) (spec, error) {
		return spec{}, fmt.Errorf("%s: "+format, append([]any{cfg.Name}, a...)...)
	}
	if s.dev == "" {
		return fail("%s is required: set it to a block device every node shares", KwDev)
	}
	var err error
	if s.slotSize, err = sizeKeyword(cfg.Keywords, KwSlotSize, defaultSlotSize); err != nil {
		return fail("%w", err)
	}
	if s.slotSize < blockSize || s.slotSize%blockSize != 0 || s.slotSize > maxSlotSize {
		return fail("%s %d: use a multiple of 4096 between 4096 and 64MiB", KwSlotSize, s.slotSize)
	}
	if s.offset, err = sizeKeyword(cfg.Keywords, KwOffset, 0); err != nil {
		return fail("%w", err)
	}
	if s.offset%blockSize != 0 {
		return fail("%s %d: use a multiple of 4096 (direct I/O needs aligned offsets)", KwOffset, s.offset)
	}
	if s.interval <= 0 || s.timeout <= 0 {
		return fail("interval (%s) and timeout (%s) must be positive", s.interval, s.timeout)
	}
	for i, n := range s.nodes {
		if n == "" || len(n) > maxNameLen || strings.IndexByte(n, 0) >= 0 {
			return fail("node name %q does not fit a slot: use 1 to %d bytes", n, maxNameLen)
		}
		if slices.Index(s.nodes, n) != i {
			return fail("node %q is listed twice in nodes", n)
		}
	}
	if len(cfg.Cluster) > maxNameLen || strings.IndexByte(cfg.Cluster, 0) >= 0 {
		return fail("cluster name %q does not fit a slot: use at most %d bytes", cfg.Cluster, maxNameLen)
	}
	if s.local = slices.Index(s.nodes, cfg.LocalNode); s.local < 0 {
		return fail("the local node %q is not in nodes (%s): add it, or fix the node name", cfg.LocalNode, strings.Join(s.nodes, " "))
	}
	if s.aead, err = newSealer(cfg.Key); err != nil {
		return fail("%w", err)
	}
	return s, nil
}

func sizeKeyword(kw map[string]string, name string, def int64) (int64, error) {
	v := strings.TrimSpace(kw[name])
	if v == "" {
		return def, nil
	}
	n, err := sdk.ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// peer is what Run knows of one peer's slot.
type peer struct {
	name  string
	index int
	// gen is the last generation accepted (0: none yet).
	gen uint64
	// moved is when gen last moved, on the local clock; Run's start until
	// it does.
	moved time.Time
	stale bool
}

// Run publishes the local dataset in the local slot and reports peers'
// until ctx ends. The slot is left as is on the way out: peers see its
// generation stop and call the node stale.
func (d *Driver) Run(ctx context.Context, cfg sdk.HeartbeatConfig, datasets <-chan []byte, emit func(sdk.HeartbeatEvent)) error {
	sp, err := parseSpec(cfg)
	if err != nil {
		return err
	}
	log := d.log.With("hb", sp.name, "dev", sp.dev)
	dev, err := openDevice(sp.dev, sp.slotSize, sp.offset, d.noDirect)
	if err != nil {
		return fmt.Errorf("%s: %w: set %s to a device every node can read and write", sp.name, err, KwDev)
	}
	if need := sp.slotOffset(len(sp.nodes)); dev.size < need {
		dev.close()
		return fmt.Errorf("%s: %s holds %d bytes; its label and %d slots of %d bytes from offset %d need %d: use a larger device or a smaller %s",
			sp.name, sp.dev, dev.size, len(sp.nodes), sp.slotSize, sp.offset, need, KwSlotSize)
	}
	if err := checkLabel(dev, sp); err != nil {
		dev.close()
		return err
	}
	if !dev.direct {
		log.Warn("the device refuses O_DIRECT (EINVAL); using buffered O_DSYNC I/O and dropping the page cache before each read, which another host's writes may still beat")
	}
	// Byte counts go out as strings: the JSON log hop to core turns large
	// numbers into floats (1.048576e+06).
	log.Info("disk heartbeat running", "slot", sp.local, "slot_offset", strconv.FormatInt(sp.slotOffset(sp.local), 10),
		"slot_size", strconv.FormatInt(sp.slotSize, 10), "direct_io", dev.direct)
	if sp.timeout < 2*sp.interval {
		log.Warn("timeout is under two intervals: one slow write will make peers stale", "interval", sp.interval, "timeout", sp.timeout)
	}

	// Room for one job: Run hands one over only when the last one's result
	// is in, so handing over never blocks, even on a hung device.
	jobs := make(chan cycle, 1)
	results := make(chan cycleResult, 1)
	ioDone := make(chan struct{})
	loop := &ioLoop{dev: dev, sp: sp, log: log, payload: []byte{}, beforeCycle: d.beforeCycle}
	go loop.run(jobs, results, ioDone)
	defer func() {
		close(jobs)
		// A hung device keeps the I/O goroutine in the kernel; it closes
		// the device when the call returns. Run does not wait for that
		// past the timeout.
		select {
		case <-ioDone:
		case <-time.After(max(sp.timeout, time.Second)):
			log.Error("device I/O still blocked at shutdown; leaving it behind")
		}
	}()

	start := time.Now()
	peers := make(map[int]*peer)
	for i, n := range sp.nodes {
		if i != sp.local {
			peers[i] = &peer{name: n, index: i, moved: start}
		}
	}
	r := &runner{sp: sp, log: log, emit: emit, peers: peers, limit: limiter{every: d.cfg.RejectEvery}}

	var pending []byte // a new dataset for the next cycle
	busy, first := false, true
	var busySince time.Time
	// The local slot is written every interval; the peers' slots are
	// read readsPerWrite times as often, so a peer's write is seen a
	// fraction of an interval after it lands, not up to a whole one: the
	// beat's time (the read's) is that much closer to the write's, and a
	// dead peer is found stale that much sooner.
	every := max(sp.interval/readsPerWrite, minReadEvery)
	var lastWrite time.Time
	submit := func(now time.Time) {
		known := make([]uint64, len(sp.nodes))
		for i, p := range peers {
			known[i] = p.gen
		}
		write := lastWrite.IsZero() || now.Sub(lastWrite) >= sp.interval-every/2
		if !write {
			jobs <- cycle{known: known, readOnly: true}
			busy, busySince = true, now
			return
		}
		jobs <- cycle{payload: pending, known: known}
		pending, busy, busySince, lastWrite = nil, true, now, now
	}
	submit(start)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ds, ok := <-datasets:
			if !ok {
				datasets = nil // core is done publishing; keep beating
				continue
			}
			if len(ds) > sp.maxPayload() {
				r.refuseDataset(len(ds), time.Now())
				continue
			}
			pending = bytes.Clone(ds)
			if pending == nil {
				pending = []byte{}
			}
		case now := <-ticker.C:
			if !busy {
				submit(now)
			} else if now.Sub(busySince) >= sp.timeout {
				r.ioBlocked(now.Sub(busySince))
			}
			r.checkStale(now)
		case res := <-results:
			busy = false
			r.handle(res, first, time.Now())
			first = false
		}
	}
}

// runner holds Run's state between events.
type runner struct {
	sp    spec
	log   hclog.Logger
	emit  func(sdk.HeartbeatEvent)
	peers map[int]*peer
	limit limiter
	// writeFailing and blocked make a failure streak log once, and its end.
	writeFailing bool
	blocked      bool
}

func (r *runner) refuseDataset(n int, now time.Time) {
	reason := fmt.Sprintf("oversize: dataset of %d bytes does not fit the %d-byte slot (%d bytes after the header and tag); raise %s",
		n, r.sp.slotSize, r.sp.maxPayload(), KwSlotSize)
	local := r.sp.nodes[r.sp.local]
	if r.limit.allow(local+"\x00oversize", now) {
		r.log.Error("dataset refused; still publishing the previous one", "reason", reason)
		r.emit(sdk.HeartbeatEvent{Kind: sdk.EventReject, Peer: local, Reason: reason})
	}
}

func (r *runner) ioBlocked(d time.Duration) {
	if !r.blocked {
		r.blocked = true
		r.log.Error("device I/O blocked; peers will turn stale and this node looks stale to them", "for", d.Round(time.Millisecond))
	}
}

func (r *runner) handle(res cycleResult, first bool, now time.Time) {
	if r.blocked {
		r.blocked = false
		r.log.Info("device I/O completed again")
	}
	switch {
	case !res.wrote:
	case res.writeErr != nil && !r.writeFailing:
		r.writeFailing = true
		r.log.Error("cannot write the local slot; peers will see this node stale", "error", res.writeErr)
	case res.writeErr == nil && r.writeFailing:
		r.writeFailing = false
		r.log.Info("writing the local slot again", "generation", res.gen)
	}
	for _, s := range res.peers {
		p := r.peers[s.index]
		switch {
		case s.err != nil:
			if r.limit.allow(p.name+"\x00io", now) {
				r.log.Warn("cannot read a peer's slot", "peer", p.name, "error", s.err)
			}
		case s.rej != nil:
			if r.limit.allow(p.name+"\x00"+s.rej.Kind, now) {
				r.log.Warn("peer slot rejected", "peer", p.name, "slot", p.index, "reason", s.rej.event())
				r.emit(sdk.HeartbeatEvent{Kind: sdk.EventReject, Peer: p.name, Reason: s.rej.event()})
			}
		case s.empty:
		case first:
			// What a slot holds when this node starts may have been
			// written long ago by a node now dead: a baseline, not a
			// beat.
			p.gen = s.gen
		case s.gen != p.gen:
			p.gen, p.moved = s.gen, now
			if p.stale {
				p.stale = false
				r.log.Info("peer slot moving again", "peer", p.name)
			}
			if len(s.payload) == 0 {
				// The peer's daemon has not handed it a dataset yet
				// (it has just started): nothing core could verify, so
				// no beat, and no reject either.
				continue
			}
			r.emit(sdk.HeartbeatEvent{Kind: sdk.EventBeat, Peer: p.name, Dataset: s.payload, Received: now})
		}
	}
}

func (r *runner) checkStale(now time.Time) {
	for _, p := range r.peers {
		if p.stale || now.Sub(p.moved) < r.sp.timeout {
			continue
		}
		p.stale = true
		reason := fmt.Sprintf("disk slot generation unchanged for %s", r.sp.timeout)
		r.log.Warn("peer stale", "peer", p.name, "reason", reason)
		r.emit(sdk.HeartbeatEvent{Kind: sdk.EventStale, Peer: p.name, Reason: reason})
	}
}

// limiter lets a repeated report through once per period.
type limiter struct {
	every time.Duration
	last  map[string]time.Time
}

func (l *limiter) allow(key string, now time.Time) bool {
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	l.last[key] = now
	return true
}
