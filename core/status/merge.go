package status

// mergeTable is the pairwise merge, written out in full so every case is a
// decision someone made. It is symmetric (checked by the tests). Rules:
//
//   - undef and n/a are neutral: merged with any other status x they give x.
//     Between themselves undef wins (undef+n/a = undef): "could not tell" must
//     not be hidden behind "does not apply".
//   - warn absorbs everything.
//   - up+down = warn (half started).
//   - up+stdby up = up: standby resources run on every node, so they add
//     nothing to an instance that is up.
//   - down+stdby up = stdby up: a passive node with its standby resources up.
//   - down+stdby down = down.
//   - stdby down next to anything up (up or stdby up) = warn: a standby
//     resource is missing.
var mergeTable = [7][7]Status{
	// Columns, like rows: Undef, Up, Down, Warn, NA, StdbyUp, StdbyDown.
	Undef:     {Undef, Up, Down, Warn, Undef, StdbyUp, StdbyDown},
	Up:        {Up, Up, Warn, Warn, Up, Up, Warn},
	Down:      {Down, Warn, Down, Warn, Down, StdbyUp, Down},
	Warn:      {Warn, Warn, Warn, Warn, Warn, Warn, Warn},
	NA:        {Undef, Up, Down, Warn, NA, StdbyUp, StdbyDown},
	StdbyUp:   {StdbyUp, Up, StdbyUp, Warn, StdbyUp, StdbyUp, Warn},
	StdbyDown: {StdbyDown, Warn, Down, Warn, StdbyDown, Warn, StdbyDown},
}

// Merge combines two statuses with the merge table. It is commutative but not
// associative once standby statuses are involved ((down+stdby up)+up = up,
// while down+(stdby up+up) = warn), so to combine more than two statuses use
// MergeAll, which does not depend on order. An invalid value counts as undef.
func Merge(a, b Status) Status {
	if !a.Valid() {
		a = Undef
	}
	if !b.Valid() {
		b = Undef
	}
	return mergeTable[a][b]
}

// MergeAll combines any number of statuses. The result depends only on which
// values occur, never on their order, and equals Merge for two values:
//
//   - any warn, up with down, or stdby down with up or stdby up → warn;
//   - otherwise up if any up, else stdby up if any stdby up, else down if any
//     down, else stdby down if any stdby down;
//   - otherwise (only neutral values) undef if any undef, else n/a, which is
//     also the result for no value at all.
func MergeAll(ss ...Status) Status {
	var seen [7]bool
	for _, s := range ss {
		if !s.Valid() {
			s = Undef
		}
		seen[s] = true
	}
	switch {
	case seen[Warn],
		seen[Up] && seen[Down],
		seen[StdbyDown] && (seen[Up] || seen[StdbyUp]):
		return Warn
	case seen[Up]:
		return Up
	case seen[StdbyUp]:
		return StdbyUp
	case seen[Down]:
		return Down
	case seen[StdbyDown]:
		return StdbyDown
	case seen[Undef]:
		return Undef
	default:
		return NA
	}
}
