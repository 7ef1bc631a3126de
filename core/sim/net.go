package sim

import "time"

// Heartbeat names, as cluster.conf's sections.
const (
	hbNet  = "hb#1"
	hbDisk = "hb#2"
)

// network models the net heartbeat: one link per ordered pair of nodes,
// each with its delay, its loss and its cut (a cut one way only is an
// asymmetric partition).
type network struct {
	w    *world
	cut  map[[2]string]bool
	loss map[[2]string]float64
	// slow: extra delay per link.
	slow map[[2]string]time.Duration
}

func newNetwork(w *world) *network {
	return &network{w: w, cut: map[[2]string]bool{}, loss: map[[2]string]float64{}, slow: map[[2]string]time.Duration{}}
}

// send carries one envelope from n to every peer on the net heartbeat.
// Messages on one link may overtake each other (the delays differ); the
// receiver's view judges that.
func (nw *network) send(n *machine, raw []byte) {
	w := nw.w
	for _, p := range w.nodes {
		if p == n {
			continue
		}
		l := [2]string{n.name, p.name}
		if nw.cut[l] || (nw.loss[l] > 0 && w.chance(nw.loss[l])) {
			continue
		}
		delay := w.between(100*time.Microsecond, 3*time.Millisecond) + nw.slow[l]
		from := n.name
		w.after(delay, func() {
			d := p.daemon
			if d == nil {
				return // nobody listens
			}
			w.runOn(d, func() { d.beat(hbNet, from, raw) })
		})
	}
}

// diskSlot is one node's slot on the shared heartbeat disk.
type diskSlot struct {
	gen uint64
	raw []byte
}

// startDiskPlugin runs d's disk heartbeat plugin: it writes the latest
// envelope to the node's slot and reads the peers' slots every interval.
// It is a process of its own: it runs on while the daemon is frozen (and
// then keeps writing the last envelope it was given), and dies with it. A
// slot read returns whatever the slot holds when the read is done, so the
// disk may deliver a dataset older than one the net delivered already.
func (w *world) startDiskPlugin(d *daemon) {
	n := d.n
	every := w.cfg.dskInterval
	var cycle func()
	cycle = func() {
		if !d.alive() {
			return
		}
		w.after(every, cycle)
		if n.diskBlocked > w.now {
			return
		}
		if n.latest != nil {
			n.slot.gen++
			n.slot.raw = n.latest
		}
		// The read of each peer's slot completes after the device's
		// latency; what it returns is the slot then.
		for _, p := range w.nodes {
			if p == n {
				continue
			}
			w.after(w.between(time.Millisecond, 20*time.Millisecond)+n.diskLag, func() { w.readSlot(d, p) })
		}
	}
	d.diskSeen, d.diskLast = map[string]uint64{}, map[string][]byte{}
	w.after(w.between(50*time.Millisecond, 300*time.Millisecond), cycle)
}

// readSlot mirrors hb-disk's handle for one peer slot: the first read is
// a baseline, a moved generation is a beat.
func (w *world) readSlot(d *daemon, p *machine) {
	if !d.alive() || d.n.diskBlocked > w.now {
		return
	}
	s := p.slot
	last, seen := d.diskSeen[p.name]
	d.diskSeen[p.name] = s.gen
	if !seen || s.gen == last || len(s.raw) == 0 {
		return
	}
	if prev := d.diskLast[p.name]; len(prev) > 0 && &prev[0] == &s.raw[0] {
		return // the same envelope again: the view drops duplicates
	}
	d.diskLast[p.name] = s.raw
	raw, from := s.raw, p.name
	w.runOn(d, func() { d.beat(hbDisk, from, raw) })
}
