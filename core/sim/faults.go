package sim

import (
	"time"
)

// faultKind is one kind of fault the schedule draws.
type faultKind int

const (
	fPowerOff faultKind = iota
	fPowerOn
	fCrash
	fRestart
	fFreeze
	fPluginCrash
	fFenceFail
	fPartition
	fClockStep
	fLoss
	fSlowDisk
	fSlowNet
	fArbRestart
	nFaults
)

// safeWithoutFencing are the faults a cluster without fencing survives by
// design: none makes a live node look dead (a partition, a freeze, a
// crashed daemon over live resources, a clock stepped back across a
// restart would, and only a fence makes those safe).
var safeWithoutFencing = []faultKind{fPowerOff, fPowerOn, fRestart, fPluginCrash, fClockStep, fLoss, fSlowDisk, fSlowNet}

// scheduleFaults draws the faults of the run, one at a time: each fault
// schedules the next, so the schedule is a function of the seed alone.
func (w *world) scheduleFaults() {
	var next func()
	next = func() {
		if w.now >= w.opts.FaultTime {
			return
		}
		w.inject()
		w.after(w.between(w.cfg.faultEvery/4, 2*w.cfg.faultEvery), next)
	}
	w.at(w.between(2*time.Second, 8*time.Second), next)
}

func (w *world) inject() {
	var k faultKind
	switch {
	case w.cfg.stonith:
		k = faultKind(w.rng.IntN(int(nFaults)))
	case w.cfg.arbitrator && w.cfg.splitStop:
		// Without fencing, an exclusive arbitrator vote and
		// split_action = stop are what make a clean split safe.
		// A stop that fails on the side without quorum (a plugin
		// down) is what no one can see without fencing: no plugin
		// crashes here, and no stop fails (drawShape).
		kinds := []faultKind{fPartition, fPartition, fArbRestart}
		for _, k := range safeWithoutFencing {
			if k != fPluginCrash {
				kinds = append(kinds, k)
			}
		}
		k = kinds[w.rng.IntN(len(kinds))]
	default:
		k = safeWithoutFencing[w.rng.IntN(len(safeWithoutFencing))]
	}
	n := w.nodes[w.rng.IntN(len(w.nodes))]
	switch k {
	case fPowerOff:
		w.powerOff(n, "fault")
		if w.chance(0.6) {
			inc := n.inc
			w.after(w.between(2*time.Second, 20*time.Second), func() {
				if n.inc == inc {
					w.powerOn(n, "fault over")
				}
			})
		}
	case fPowerOn:
		for _, m := range w.nodes {
			if !m.powered {
				w.powerOn(m, "operator")
				break
			}
		}
	case fCrash:
		w.crashDaemon(n, w.between(200*time.Millisecond, 8*time.Second))
	case fRestart:
		w.crashDaemon(n, w.between(50*time.Millisecond, 300*time.Millisecond))
	case fFreeze:
		w.freezeDaemon(n, w.between(300*time.Millisecond, 8*time.Second))
	case fPluginCrash:
		p := w.rng.IntN(2)
		n.pluginCrash[p] = w.now
		n.pluginDown[p] = w.now + w.between(200*time.Millisecond, 10*time.Second)
		w.logf(n.name, "PLUGIN %d CRASH (back at %s)", p, fmtDur(n.pluginDown[p]))
	case fFenceFail:
		n.fenceFail = w.now + w.between(2*time.Second, 20*time.Second)
		w.logf(n.name, "BMC FAILS fences until %s", fmtDur(n.fenceFail))
	case fPartition:
		w.partition()
	case fClockStep:
		step := w.between(time.Second, time.Hour)
		if w.cfg.stonith && w.chance(0.5) {
			step = -step
		}
		n.wallOffset += step
		w.logf(n.name, "CLOCK STEP %+v (wall now %s)", step, n.wall().Format(time.TimeOnly))
	case fLoss:
		m := w.other(n)
		l := [2]string{n.name, m.name}
		p := 0.2 + 0.3*w.rng.Float64()
		if w.cfg.stonith {
			p = 0.3 + 0.7*w.rng.Float64()
		}
		w.net.loss[l] = p
		w.logf("-", "LOSS %.2f on %s->%s", p, n.name, m.name)
		w.after(w.between(time.Second, 10*time.Second), func() { delete(w.net.loss, l) })
	case fSlowDisk:
		n.diskLag = w.between(300*time.Millisecond, 3*time.Second)
		if !w.cfg.stonith {
			// Without fencing, a lag past the timeout makes a live
			// node look dead: kept below it (safeWithoutFencing).
			n.diskLag = w.between(100*time.Millisecond, w.cfg.dskTimeout-w.cfg.dskInterval-100*time.Millisecond)
		}
		w.logf(n.name, "SLOW DISK reads lag %s", n.diskLag)
		w.after(w.between(2*time.Second, 15*time.Second), func() { n.diskLag = 0 })
	case fArbRestart:
		if w.arb != nil {
			w.restartArbiter()
		}
	case fSlowNet:
		m := w.other(n)
		l := [2]string{n.name, m.name}
		w.net.slow[l] = w.between(50*time.Millisecond, 1500*time.Millisecond)
		if !w.cfg.stonith {
			w.net.slow[l] = w.between(50*time.Millisecond, w.cfg.netTimeout-w.cfg.netInterval-100*time.Millisecond)
		}
		w.logf("-", "SLOW NET %s->%s by %s", n.name, m.name, w.net.slow[l])
		w.after(w.between(2*time.Second, 10*time.Second), func() { delete(w.net.slow, l) })
	}
}

func (w *world) other(n *machine) *machine {
	for {
		m := w.nodes[w.rng.IntN(len(w.nodes))]
		if m != n {
			return m
		}
	}
}

// partition splits the nodes in two sides, on the net (one way or both),
// on the disk (the second side loses its disk), or on both, for a while.
func (w *world) partition() {
	var a, b []*machine
	for len(a) == 0 || len(b) == 0 {
		a, b = nil, nil
		for _, n := range w.nodes {
			if w.chance(0.5) {
				a = append(a, n)
			} else {
				b = append(b, n)
			}
		}
	}
	which := w.rng.IntN(5) // 0,1: net; 2: disk; 3,4: both
	oneWay := w.chance(0.3)
	dur := w.between(time.Second, 20*time.Second)
	var cuts [][2]string
	if which != 2 {
		for _, x := range a {
			for _, y := range b {
				cuts = append(cuts, [2]string{x.name, y.name})
				if !oneWay {
					cuts = append(cuts, [2]string{y.name, x.name})
				}
			}
		}
	}
	for _, l := range cuts {
		w.net.cut[l] = true
	}
	until := w.now + dur
	var arbCut []string
	if w.arb != nil && which != 2 {
		// The arbitrator is on one side of the net partition.
		other := b
		if w.chance(0.5) {
			other = a
		}
		for _, n := range other {
			if !w.arb.cut[n.name] {
				w.arb.cut[n.name] = true
				arbCut = append(arbCut, n.name)
			}
		}
	}
	if which >= 2 {
		for _, n := range b {
			n.diskBlocked = max(n.diskBlocked, until)
		}
	}
	names := func(ns []*machine) (s string) {
		for _, n := range ns {
			s += n.name
		}
		return s
	}
	w.logf("-", "PARTITION %s | %s (net=%v one-way=%v disk=%v, arbitrator cut from %v) for %s", names(a), names(b), which != 2, oneWay, which >= 2, arbCut, dur)
	w.after(dur, func() {
		for _, l := range cuts {
			delete(w.net.cut, l)
		}
		for _, n := range arbCut {
			delete(w.arb.cut, n)
		}
		w.logf("-", "partition %s | %s healed", names(a), names(b))
	})
}

// heal ends the faults: links whole, disks and plugins back, BMCs
// answering, every node powered on, every daemon running and thawed.
func (w *world) heal() {
	w.healed, w.healedAt = true, w.now
	w.logf("-", "HEAL: faults stop, everything comes back")
	clear(w.net.cut)
	clear(w.net.loss)
	clear(w.net.slow)
	if w.arb != nil {
		clear(w.arb.cut)
	}
	for _, n := range w.nodes {
		n.diskBlocked, n.diskLag, n.fenceFail = 0, 0, 0
		n.pluginDown = [2]time.Duration{}
		if !n.powered {
			w.powerOn(n, "heal")
			continue
		}
		if n.daemon == nil {
			w.startDaemon(n, "heal")
			continue
		}
		w.resume(n.daemon)
	}
}
