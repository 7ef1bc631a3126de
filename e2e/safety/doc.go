// Package safety holds the lab proofs of the orchestrator's safety rules
// (DESIGN.md, "Orchestration"): each test builds a vigil-lab lab of two
// nodes with the seed's services on shared loop disks and real BMCs
// (ipmi_sim), breaks it the way a review found a hole (a daemon restarted
// on a partitioned node, a heartbeat-only split, a frozen owner without
// fencing, a fenced node back at once, a short cut with a slow BMC), and
// checks the outcome on the real components: the shared devices' mounts in
// every mount namespace of each node (by major:minor), the holders of the
// floating addresses, the BMCs' power state, the daemons' views and logs.
// Faults the lab has no command for (a BMC unreachable from one node only,
// a cut of the heartbeats alone) are iptables rules in a node's network
// namespace, removed in the test's cleanup. The tests skip, saying why,
// when not run as root or when a tool the lab needs is missing. The
// package has no code of its own outside its tests.
package safety
