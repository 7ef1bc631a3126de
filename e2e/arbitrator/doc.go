// Package arbitrator holds the end-to-end test of the arbitrator's vote in
// a vigil-lab lab: two nodes and a vigil-arbitrator in the lab's client
// namespace, the nodes' heartbeat links to each other cut (both still
// reach the arbitrator), and exactly one side gets quorum while the other
// starts nothing. The test skips, saying why, when not run as root or when
// a tool the lab needs is missing. The package has no code of its own
// outside its tests.
package arbitrator
