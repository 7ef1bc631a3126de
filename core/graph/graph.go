// Package graph owns the order in which a service's resources are started
// and stopped: driver groups, subsets within a group, resource ids within a
// subset, and the waves of resources that may run concurrently.
//
// It works on plain Items so it stays decoupled from the config format and
// must not import other Vigil packages, run an action or touch a driver:
// core/action walks the waves Plan returns.
package graph

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrUnknownGroup is returned for an item whose group is not one of Groups.
var ErrUnknownGroup = errors.New("unknown driver group")

// ErrDuplicateRID is returned when two items carry the same resource id.
var ErrDuplicateRID = errors.New("duplicate resource id")

// ErrUnknownAction is returned for an Action other than Start or Stop.
var ErrUnknownAction = errors.New("unknown action")

// Item is one resource as the graph sees it.
type Item struct {
	// RID is the resource id, e.g. "container#2".
	RID string
	// Group is the driver group, e.g. "disk" for a vg# resource.
	Group string
	// Subset is the subset name, e.g. "01appservers"; empty for none.
	Subset string
	// Parallel is the parallel flag of the item's subset. It is ignored for
	// items without a subset, which always run alone.
	Parallel bool
	// Mount is the path a filesystem mounts ("" for other items), and
	// Paths the other paths it uses (its device): Schedule mounts
	// filesystems together unless one holds the other's paths.
	Mount string
	Paths []string
}

// Action is the direction a plan walks the graph.
type Action int

// The actions. The zero value is invalid so a forgotten field is caught.
const (
	Start Action = iota + 1
	Stop
)

// String returns "start" or "stop".
func (a Action) String() string {
	switch a {
	case Start:
		return "start"
	case Stop:
		return "stop"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Wave is a set of items that run concurrently; the next wave starts when
// every item of this one is done. A wave of one item runs alone.
type Wave []Item

// startOrder is the DESIGN.md group order; stop is its reverse.
var startOrder = []string{"ip", "disk", "fs", "share", "container", "app", "sync"}

// Groups returns the driver groups in start order.
func Groups() []string { return slices.Clone(startOrder) }

func groupRank(group string) int { return slices.Index(startOrder, group) }

// Plan orders items into waves for action a.
//
// Start runs groups in the order ip, disk, fs, share, container, app, sync.
// Within a group, items without a subset come first (they are the group's
// plain resources; subsets are the opt-in refinement, named to sort among
// themselves like "00database"), then subsets by name; within a subset, items
// go by the number after '#' in their id (container#2 before container#10),
// ids without a number after numbered ones, by id. Consecutive items of one
// subset with Parallel set form one wave; every other item is a wave of its
// own. Stop is the exact reverse of start, waves and items within them.
//
// An empty item list gives no wave. An unknown group or a duplicate id is an
// error and gives no plan.
func Plan(items []Item, a Action) ([]Wave, error) {
	if err := check(items, a); err != nil {
		return nil, err
	}
	waves := startWaves(items)
	if a == Stop {
		reverse(waves)
	}
	return waves, nil
}

// check refuses an unknown action, an item of an unknown group and a
// duplicate id.
func check(items []Item, a Action) error {
	if a != Start && a != Stop {
		return fmt.Errorf("plan %s: %w", a, ErrUnknownAction)
	}
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if groupRank(it.Group) < 0 {
			return fmt.Errorf("%s: group %q: %w (want one of %s)",
				it.RID, it.Group, ErrUnknownGroup, strings.Join(startOrder, ", "))
		}
		if seen[it.RID] {
			return fmt.Errorf("%s: %w", it.RID, ErrDuplicateRID)
		}
		seen[it.RID] = true
	}
	return nil
}

// Rollback returns the waves that stop what a failed start already started,
// given those items in any order: the stop order of Plan, with the same
// parallel grouping. It does not fail: an item of an unknown group, which
// Plan would have refused, is stopped first.
func Rollback(started []Item) []Wave {
	waves := startWaves(started)
	reverse(waves)
	return waves
}

func startWaves(items []Item) []Wave {
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, compareStart)
	var waves []Wave
	for _, it := range sorted {
		if n := len(waves); n > 0 && joins(waves[n-1], it) {
			waves[n-1] = append(waves[n-1], it)
			continue
		}
		waves = append(waves, Wave{it})
	}
	return waves
}

// joins reports whether it may run in the same wave as w.
func joins(w Wave, it Item) bool {
	last := w[len(w)-1]
	return it.Subset != "" && it.Parallel && last.Parallel &&
		it.Group == last.Group && it.Subset == last.Subset
}

func reverse(waves []Wave) {
	slices.Reverse(waves)
	for _, w := range waves {
		slices.Reverse(w)
	}
}

func compareStart(a, b Item) int {
	ra, rb := groupRank(a.Group), groupRank(b.Group)
	if ra < 0 {
		ra = len(startOrder)
	}
	if rb < 0 {
		rb = len(startOrder)
	}
	return cmp.Or(
		cmp.Compare(ra, rb),
		cmp.Compare(a.Group, b.Group),
		cmp.Compare(a.Subset, b.Subset), // "" sorts first
		CompareRID(a.RID, b.RID),
	)
}

// CompareRID orders resource ids by the number after their last '#'
// (container#2 before container#10), numbered ids first, then by the whole
// id.
func CompareRID(a, b string) int {
	na, oka := ridIndex(a)
	nb, okb := ridIndex(b)
	switch {
	case oka && !okb:
		return -1
	case !oka && okb:
		return 1
	case oka && okb && na != nb:
		return cmp.Compare(na, nb)
	}
	return cmp.Compare(a, b)
}

func ridIndex(rid string) (int, bool) {
	i := strings.LastIndexByte(rid, '#')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(rid[i+1:])
	return n, err == nil
}
