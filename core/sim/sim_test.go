package sim

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/orchestrator"
)

var (
	flagSeed  = flag.Uint64("seed", 0, "replay this one seed, with its whole trace")
	flagSeeds = flag.Int("seeds", 2000, "how many seeds TestSim runs")
	flagFirst = flag.Uint64("first", 1, "the first seed TestSim runs")
	flagBeats = flag.Bool("beats", false, "with -seed: a trace line per heartbeat taken")
	flagMax   = flag.Int("guard-seeds", 5000, "most seeds a guard test runs before giving up")
	flagOff   = flag.String("off", "", "guards to switch off (comma-separated: fence,unheard,undef,selfstop,arbitrator), for -seed and TestSim")
	flagNodes = flag.Int("nodes", 0, "force the node count (2 or 3)")
	flagNoFen = flag.Bool("nostonith", false, "force a cluster without fencing")
	flagArb   = flag.Bool("arbitrator", false, "force an arbitrator")
)

func TestMain(m *testing.M) {
	// The simulation allocates much and keeps little: collect less often.
	debug.SetGCPercent(400)
	os.Exit(m.Run())
}

// runSeeds runs seeds [first, first+n) on every core and returns the
// results with a violation, by seed.
func runSeeds(first uint64, n int, opts Options, stopAtFirst bool) []Result {
	var (
		mu   sync.Mutex
		bad  []Result
		next = first
		wg   sync.WaitGroup
	)
	end := first + uint64(n)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= end || (stopAtFirst && len(bad) > 0) {
					mu.Unlock()
					return
				}
				seed := next
				next++
				mu.Unlock()
				if r := Run(seed, opts); r.Violation != nil {
					mu.Lock()
					bad = append(bad, r)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	sort.Slice(bad, func(i, j int) bool { return bad[i].Seed < bad[j].Seed })
	return bad
}

func printTrace(t *testing.T, r Result) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %v\nshape: %s\n", r.Seed, r.Violation, r.Shape)
	for _, l := range r.Trace {
		b.WriteString(l + "\n")
	}
	t.Log(b.String())
}

// flagOptions reads -off, -nodes, -nostonith and -arbitrator.
func flagOptions(t *testing.T) Options {
	o := Options{Nodes: *flagNodes, NoStonith: *flagNoFen, Arbitrator: *flagArb}
	for _, g := range strings.FieldsFunc(*flagOff, func(r rune) bool { return r == ',' }) {
		switch g {
		case "fence":
			o.Off.FenceConfirmation = true
		case "unheard":
			o.Off.UnheardPeer = true
		case "undef":
			o.Off.UndefIsActive = true
		case "selfstop":
			o.Off.SelfStopWait = true
		case "arbitrator":
			o.AnySideArbitrator = true
		default:
			t.Fatalf("-off=%s: unknown guard %q (fence, unheard, undef, selfstop, arbitrator)", *flagOff, g)
		}
	}
	return o
}

// replayFlags are the flags that replay a seed run with o.
func replayFlags(o Options) string {
	var gs []string
	off := o.Off
	if off.FenceConfirmation {
		gs = append(gs, "fence")
	}
	if off.UnheardPeer {
		gs = append(gs, "unheard")
	}
	if off.UndefIsActive {
		gs = append(gs, "undef")
	}
	if off.SelfStopWait {
		gs = append(gs, "selfstop")
	}
	if o.AnySideArbitrator {
		gs = append(gs, "arbitrator")
	}
	f := ""
	if len(gs) > 0 {
		f += " -off=" + strings.Join(gs, ",")
	}
	if o.Nodes != 0 {
		f += fmt.Sprintf(" -nodes=%d", o.Nodes)
	}
	if o.NoStonith {
		f += " -nostonith"
	}
	if o.Arbitrator {
		f += " -arbitrator"
	}
	return f
}

// TestSim runs many seeds of the simulated cluster and fails on the first
// broken invariant; -seed=S replays one seed with its whole trace.
func TestSim(t *testing.T) {
	if *flagSeed != 0 {
		o := flagOptions(t)
		o.Trace, o.Beats = true, *flagBeats
		r := Run(*flagSeed, o)
		printTrace(t, r)
		if r.Violation != nil {
			t.Fatalf("seed %d: %v", r.Seed, r.Violation)
		}
		return
	}
	begin := time.Now()
	opts := flagOptions(t)
	bad := runSeeds(*flagFirst, *flagSeeds, opts, false)
	took := time.Since(begin)
	kinds := map[string][]uint64{}
	for _, r := range bad {
		kinds[r.Violation.Kind] = append(kinds[r.Violation.Kind], r.Seed)
	}
	// The line make sim prints.
	fmt.Fprintf(os.Stdout, "sim: seeds=%d violations=%d time=%.1fs\n", *flagSeeds, len(bad), took.Seconds())
	if len(bad) == 0 {
		return
	}
	for k, seeds := range kinds {
		t.Errorf("%s: %d seeds, first %v (replay: go test ./core/sim -run 'TestSim$' -seed=%d%s -v)", k, len(seeds), seeds[:min(len(seeds), 10)], seeds[0], replayFlags(opts))
	}
	printTrace(t, Run(bad[0].Seed, opts))
}

// TestSim_Replays checks that a seed replays exactly: the same trace twice.
func TestSim_Replays(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		a, b := Run(seed, Options{Trace: true}), Run(seed, Options{Trace: true})
		if strings.Join(a.Trace, "\n") != strings.Join(b.Trace, "\n") {
			t.Fatalf("seed %d does not replay: %d vs %d lines", seed, len(a.Trace), len(b.Trace))
		}
	}
}

// guardTest runs seeds with one guard off until the first violation the
// same seed does not show with every guard on (so a hole of its own does
// not count for the guard), and reports how many seeds it took.
func guardTest(t *testing.T, off orchestrator.Disabled) {
	guardTestWith(t, Options{}, Options{Off: off})
}

// guardTestWith is guardTest for any pair of options: on, the guard
// holds; off, it does not.
func guardTestWith(t *testing.T, on, off Options) {
	begin := time.Now()
	var found *Result
	const batch = 20
	seeds, skipped := 0, 0
	for first := uint64(1); seeds < *flagMax && found == nil; first += batch {
		seeds += batch
		for _, r := range runSeeds(first, batch, off, false) {
			if Run(r.Seed, on).Violation != nil {
				skipped++
				continue
			}
			found = &r
			break
		}
	}
	if found == nil {
		t.Fatalf("no violation in %d seeds with the guard off (%d seeds fail with it on too): the simulation does not exercise it", seeds, skipped)
	}
	t.Logf("with the guard off, seed %d breaks %v (searched %d seeds in %.1fs, %d failing with the guard on as well skipped); replay: go test ./core/sim -run 'TestSim$' -seed=%d%s -v",
		found.Seed, found.Violation, seeds, time.Since(begin).Seconds(), skipped, found.Seed, replayFlags(off))
	printTrace(t, Run(found.Seed, off))
}

func TestSim_FindsViolationWithoutFenceConfirmation(t *testing.T) {
	guardTest(t, orchestrator.Disabled{FenceConfirmation: true})
}

func TestSim_FindsViolationWithoutUnheardPeerRule(t *testing.T) {
	guardTest(t, orchestrator.Disabled{UnheardPeer: true})
}

func TestSim_FindsViolationWithoutUndefIsActive(t *testing.T) {
	guardTest(t, orchestrator.Disabled{UndefIsActive: true})
}

func TestSim_FindsViolationWithoutSelfStopWait(t *testing.T) {
	// Without fencing, a lost node stops on its own when it finds it
	// lost quorum: a taker that does not give it the time starts beside.
	guardTestWith(t, Options{Nodes: 2, NoStonith: true, Arbitrator: true}, Options{Nodes: 2, NoStonith: true, Arbitrator: true, Off: orchestrator.Disabled{SelfStopWait: true}})
}

func TestSim_FindsViolationWithoutExclusiveArbitratorVote(t *testing.T) {
	// Two nodes without fencing, an arbitrator and split_action = stop:
	// only the vote's exclusivity keeps a split from two active sides.
	guardTestWith(t, Options{Nodes: 2, NoStonith: true, Arbitrator: true}, Options{Nodes: 2, NoStonith: true, Arbitrator: true, AnySideArbitrator: true})
}
