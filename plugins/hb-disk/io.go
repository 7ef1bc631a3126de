package hbdisk

import (
	"bytes"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The device I/O runs on its own goroutine so that a hung device (a SAN
// path gone, a loop device whose file is on a dead NFS mount) stalls only
// the I/O: Run keeps its clock and still reports every peer stale, which
// is the one thing a disk heartbeat must do when the disk goes away.

// cycle asks the I/O goroutine for one round: write the local slot, read
// every peer's.
type cycle struct {
	// payload, when not nil, replaces the dataset written from now on.
	payload []byte
	// known holds, per node index, the generation Run last accepted (0:
	// none), so that only a moved slot's payload is copied out.
	known []uint64
	// readOnly: read the peers' slots, write nothing (the reads between
	// two writes).
	readOnly bool
}

// slotRead is what one peer's slot held.
type slotRead struct {
	index int
	// err: the read itself failed.
	err error
	// empty: nobody ever wrote the slot.
	empty bool
	// rej: the slot is torn, corrupt or foreign; nothing else is set.
	rej *rejection
	gen uint64
	// payload is a copy, set only when gen differs from the known one.
	payload []byte
}

type cycleResult struct {
	writeErr error
	wrote    bool // the cycle wrote the local slot (writeErr is its result)
	gen      uint64
	peers    []slotRead
}

// ioLoop owns the device: it serves cycles until jobs is closed, then
// closes the device.
type ioLoop struct {
	dev     *device
	sp      spec
	log     hclog.Logger
	gen     uint64
	payload []byte
	// beforeCycle is Driver.beforeCycle.
	beforeCycle func()
}

func (l *ioLoop) run(jobs <-chan cycle, results chan<- cycleResult, done chan<- struct{}) {
	defer close(done)
	defer l.dev.close()
	l.gen = l.startGeneration()
	for job := range jobs {
		if l.beforeCycle != nil {
			l.beforeCycle()
		}
		if job.payload != nil {
			l.payload = job.payload
		}
		res := cycleResult{gen: l.gen, wrote: !job.readOnly}
		if !job.readOnly {
			h := slotHeader{
				Index: uint32(l.sp.local), SlotSize: uint64(l.sp.slotSize), Gen: l.gen,
				Time: time.Now().UnixNano(), Cluster: l.sp.cluster, Node: l.sp.nodes[l.sp.local],
			}
			n := encodeSlot(l.dev.wbuf, h, l.payload, l.sp.aead)
			res.writeErr = l.dev.writeAt(l.dev.wbuf[:n], l.sp.slotOffset(l.sp.local))
			// A failed write still spends its generation: a retry must
			// not reuse a number a peer may have half-seen.
			l.gen++
		}
		for i := range l.sp.nodes {
			if i != l.sp.local {
				res.peers = append(res.peers, l.readPeer(i, job.known[i]))
			}
		}
		results <- res
	}
}

// startGeneration picks the first generation to write: above the wall
// clock in nanoseconds and above what the slot already holds, so a peer
// never sees this node's generation go backwards, even across a restart
// with the clock set back.
func (l *ioLoop) startGeneration() uint64 {
	gen := uint64(time.Now().UnixNano())
	h, _, rej, err := l.readSlot(l.sp.local)
	switch {
	case err != nil:
		l.log.Warn("cannot read the local slot; starting from the clock", "error", err)
	case rej != nil && rej.Kind != "magic":
		l.log.Warn("the local slot held something else; overwriting it", "slot", l.sp.local, "reason", rej.event())
	case rej == nil && h.Gen >= gen:
		gen = h.Gen + 1
	}
	return gen
}

func (l *ioLoop) readPeer(i int, known uint64) slotRead {
	h, payload, rej, err := l.readSlot(i)
	// A slot that fails to verify may be a write in flight: look again
	// before calling it torn. Identity faults passed the checksum: they
	// are what the peer wrote.
	for retry := 0; retry < tornRetries && rej != nil && !rej.identity(); retry++ {
		time.Sleep(tornRetryDelay)
		h, payload, rej, err = l.readSlot(i)
	}
	r := slotRead{index: i, err: err, rej: rej}
	switch {
	case err != nil || rej != nil:
	case payload == nil:
		r.empty = true
	default:
		r.gen = h.Gen
		if h.Gen != known {
			r.payload = bytes.Clone(payload)
		}
	}
	return r
}

// readSlot reads and checks slot i: its first block, then, when the
// payload runs past it, the whole slot again in one read (never the tail
// alone, which could pair one write's header with another's payload). An
// empty slot returns no header, payload, rejection or error; a valid one a
// non-nil payload, which aliases the read buffer.
func (l *ioLoop) readSlot(i int) (slotHeader, []byte, *rejection, error) {
	off := l.sp.slotOffset(i)
	buf := l.dev.rbuf
	if err := l.dev.readAt(buf[:blockSize], off); err != nil {
		return slotHeader{}, nil, nil, err
	}
	if slotEmpty(buf) {
		return slotHeader{}, nil, nil, nil
	}
	n, rej := peekLen(buf, int(l.sp.slotSize)-headerSize)
	if rej != nil {
		return slotHeader{}, nil, rej, nil
	}
	if n > blockSize {
		if err := l.dev.readAt(buf[:roundUp(n)], off); err != nil {
			return slotHeader{}, nil, nil, err
		}
	}
	h, payload, rej := decodeSlot(buf, expect{
		Index: uint32(i), SlotSize: uint64(l.sp.slotSize), Cluster: l.sp.cluster, Node: l.sp.nodes[i],
	}, l.sp.aead)
	return h, payload, rej, nil
}
