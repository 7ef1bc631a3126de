package orchestrator

// Exported readings of the placement rules for the daemon's operations
// (a drain asks where each service would go).

// Active reports whether the instance runs, may run, or is on its way up
// or down: nobody else may start the service then.
func (i Instance) Active() bool { return i.active() }

// Eligible reports whether node n can take service s, and when it cannot,
// why (lost, frozen, failed there...), in the words an operator reads.
func Eligible(v View, s Service, n string) (bool, string) {
	if eligible(v, s, n) {
		return true, ""
	}
	node, ok := v.Nodes[n]
	switch {
	case !ok:
		return false, "is not in the view"
	case node.State != NodeReady:
		return false, "is " + string(node.State)
	case node.Frozen:
		return false, "is frozen"
	}
	return false, "has it " + string(s.Instances[n].State)
}
