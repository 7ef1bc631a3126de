package graph

import (
	"path"
	"slices"
	"strings"
)

// A Step is one item of a schedule and the steps it waits for.
type Step struct {
	Item Item
	// After are the indices, in the schedule, of the steps that must be
	// done before this one begins.
	After []int
}

// needs says which earlier groups a group's start waits for. What is not
// listed waits for every group before it in start order. The address
// (its duplicate probe) and the disks do not need each other: they start
// together. A filesystem waits for both: nothing is mounted before the
// probe has found the address free, so an address another host still
// holds stops the start before any data is touched.
var needs = map[string][]string{
	"ip":   {},
	"disk": {},
	"fs":   {"ip", "disk"},
}

// Schedule orders items for action a as a graph of steps: each step begins
// as soon as the steps it waits for are done, so independent resources run
// together. It relaxes Plan's waves in two ways and keeps the rest:
//   - across groups, a group waits only for the groups it needs (ip and
//     disk together; fs after both; share, container, app and sync after
//     every earlier group);
//   - within the fs group, a filesystem outside any subset waits only for
//     the earlier ones whose mount point holds one of its paths, or under
//     whose mount point it mounts (fs#2 on /srv/a/data after fs#1 on
//     /srv/a; fs#2 and fs#3 side by side on it together). Filesystems of a
//     subset keep Plan's order, after the others.
//
// Every other group keeps Plan's order within it. Stop is the reverse: a
// step stops once every step that started after it has stopped. Errors
// are Plan's.
func Schedule(items []Item, a Action) ([]Step, error) {
	if err := check(items, a); err != nil {
		return nil, err
	}
	steps := startSchedule(items)
	if a == Stop {
		steps = reverseSchedule(steps)
	}
	return steps, nil
}

// RollbackSchedule is the stop schedule of what a failed start already
// started, given in any order. Like Rollback it does not fail.
func RollbackSchedule(started []Item) []Step {
	return reverseSchedule(startSchedule(started))
}

func startSchedule(items []Item) []Step {
	var steps []Step
	byGroup := map[string][]int{} // group → its steps so far
	for _, w := range startWaves(items) {
		g := w[0].Group
		var after []int
		needed, ok := needs[g]
		for _, other := range startOrder {
			if other == g {
				break
			}
			if !ok || slices.Contains(needed, other) {
				after = append(after, byGroup[other]...)
			}
		}
		if groupRank(g) < 0 {
			// An unknown group (Rollback's input only) waits for all.
			after = nil
			for _, idx := range byGroup {
				after = append(after, idx...)
			}
		}
		own := byGroup[g]
		first := len(steps)
		for _, it := range w {
			dep := slices.Clone(after)
			if g == "fs" && it.Subset == "" {
				for _, j := range own {
					if nested(steps[j].Item, it) {
						dep = append(dep, j)
					}
				}
			} else {
				dep = append(dep, own...)
			}
			slices.Sort(dep)
			steps = append(steps, Step{Item: it, After: slices.Compact(dep)})
		}
		for i := first; i < len(steps); i++ {
			byGroup[g] = append(byGroup[g], i)
		}
	}
	return steps
}

// nested reports whether two filesystems must mount in order: one's
// mount point holds a path of the other (its mount point, its device).
func nested(a, b Item) bool {
	return under(a.Mount, b) || under(b.Mount, a)
}

// under reports whether mnt holds one of the item's paths.
func under(mnt string, it Item) bool {
	if mnt == "" {
		return false
	}
	mnt = path.Clean(mnt)
	for _, p := range append([]string{it.Mount}, it.Paths...) {
		if p == "" {
			continue
		}
		p = path.Clean(p)
		if p == mnt || mnt == "/" || strings.HasPrefix(p, mnt+"/") {
			return true
		}
	}
	return false
}

// reverseSchedule turns a start schedule into its stop: the steps in
// reverse, each waiting for the steps that waited for it.
func reverseSchedule(start []Step) []Step {
	n := len(start)
	out := make([]Step, n)
	for i, s := range start {
		out[n-1-i].Item = s.Item
		for _, j := range s.After {
			out[n-1-j].After = append(out[n-1-j].After, n-1-i)
		}
	}
	for i := range out {
		slices.Sort(out[i].After)
	}
	return out
}
