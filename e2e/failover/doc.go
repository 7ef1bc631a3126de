// Package failover holds the end-to-end failover tests: each builds a
// two-node lab with bin/vigil-lab (network and disk heartbeats, a BMC per
// node, the seed's two services under orchestrate = ha), breaks it the
// way a site breaks (a node powered off, links cut, a daemon, a plugin or
// a container killed) and checks what the cluster does through the nodes'
// APIs, their logs and their mount tables. The tests skip, saying why,
// when not run as root or when a tool the lab needs is missing. The
// package has no code of its own outside its tests.
package failover
