package cluster

import (
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/core/config"

	"github.com/vigil-ha/vigil/core/status"
)

// NodeState is a daemon's own state.
type NodeState string

// Node states.
const (
	// Joining: the daemon has not yet heard every peer that answers; it
	// starts nothing.
	Joining NodeState = "joining"
	Ready   NodeState = "ready"
	// Lost: every heartbeat is stale for the node (a receiver's verdict,
	// never published by the node itself).
	Lost NodeState = "lost"
	// Unknown: never heard since this daemon started.
	Unknown NodeState = "unknown"
)

// Dataset is what a node publishes on every heartbeat.
type Dataset struct {
	Node     string                      `json:"node"`
	State    NodeState                   `json:"state"`
	Services map[string]*ServiceInstance `json:"services"`
	// Sees lists the peers this node hears (ready or joining): a peer
	// counts another on its side only when each sees the other.
	Sees []string `json:"sees,omitempty"`
	// Frozen: the operator froze this node (nodemgr freeze, drain): its
	// services are left as they are and it takes none.
	Frozen bool `json:"frozen,omitempty"`
	// ClusterFreeze is the operator's cluster-wide freeze as this node
	// knows it (Value "frozen" or ""); the newest version wins.
	ClusterFreeze Expectation `json:"cluster_freeze"`
	// Sync lists the addresses (host:port) peers fetch this node's
	// service configs from: a dataset carries versions and checksums,
	// never the files.
	Sync []string `json:"sync,omitempty"`
	// ClusterConf is the ConfSum of the node's cluster.conf: `nodemgr
	// cluster check` compares every node's.
	ClusterConf string `json:"cluster_conf,omitempty"`
}

// validate refuses what no daemon publishes and the readers cannot take:
// a service without its instance, a name that is not a service's.
func (ds *Dataset) validate() error {
	for name, inst := range ds.Services {
		if inst == nil {
			return fmt.Errorf("service %q has no instance", name)
		}
		if err := config.CheckServiceName(name); err != nil {
			return err
		}
	}
	return nil
}

// ServiceInstance is one service as one node runs it.
type ServiceInstance struct {
	Status status.Service `json:"status"`
	// Type is the service's service_type keyword (DEV, PRD, ...).
	Type   string `json:"type,omitempty"`
	Frozen bool   `json:"frozen"`
	// Updated is when the last full evaluation ended.
	Updated time.Time `json:"updated"`
	// Nodes is the service's nodes keyword, as this node's config has it.
	Nodes  []string      `json:"nodes"`
	Config ConfigVersion `json:"config"`
	// State is the instance's orchestration state (idle, ready,
	// starting, started, start failed, stopping, stopped, failed...).
	State string `json:"state,omitempty"`
	// Expect is the operator's cluster-wide wish for the service, as this
	// node knows it; the newest version wins.
	Expect Expectation `json:"expect"`
	// Restarts counts the monitor's restarts in place of each resource
	// since it was last up for a while (rid -> count).
	Restarts map[string]int `json:"restarts,omitempty"`
}

// Expectation is what operator actions ask of a service cluster-wide.
type Expectation struct {
	// Value is "" (the orchestrator places it), "stopped" or "frozen".
	Value string `json:"value,omitempty"`
	// Target is the node a switch, takeover or giveback asked for.
	Target string `json:"target,omitempty"`
	// Version orders expectations: a counter, one above the newest known
	// when an operator acts (never a clock: a node whose clock is behind
	// must not lose its operator's action); By (the node where it was
	// set) breaks a tie.
	Version int64  `json:"version,omitempty"`
	By      string `json:"by,omitempty"`
	// Clear names the node whose failed and start-failed marks the
	// operator cleared with this version ("*": every node).
	Clear string `json:"clear,omitempty"`
}

// Newer reports whether e supersedes o.
func (e Expectation) Newer(o Expectation) bool {
	return e.Version > o.Version || (e.Version == o.Version && e.By > o.By)
}

// ConfigVersion is the last valid version of a service's config this node
// has; peers take the newest.
type ConfigVersion struct {
	// Version orders versions: a counter, one above the version in force
	// when the file changes here (never its mtime: clocks differ); the
	// checksum breaks a tie between two changes made apart.
	Version int64  `json:"version"`
	Sum     string `json:"sum"`
	// Content is the file, held by the daemon and never published: peers
	// fetch it on demand (core/configsync).
	Content []byte `json:"-"`
}

// Newer reports whether c supersedes o (and differs from it).
func (c ConfigVersion) Newer(o ConfigVersion) bool {
	return c.Sum != o.Sum && (c.Version > o.Version || (c.Version == o.Version && c.Sum > o.Sum))
}
