// Package ha holds the end-to-end tests of the high-availability rules of
// DESIGN.md ("Orchestration") in vigil-lab labs: a power-off fenced first
// with fence_ipmilan, a failed fence that blocks the takeover until fencing
// works, the operator actions (switch, takeover, freeze, thaw), and quorum
// in a three-node lab. Each test builds a lab of its own with the seed's
// two services under orchestrate = ha, breaks it through the BMCs and the
// lab's links, and checks what the cluster does through the nodes' APIs,
// their logs and their mount tables. The tests skip, saying why, when not
// run as root or when a tool the lab needs is missing. The package has no
// code of its own outside its tests.
package ha
