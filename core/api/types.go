// Package api is the node daemon's local API: a unix socket readable by
// root only, carrying JSON over HTTP. It holds the wire types, the server
// (which checks the caller is root and hands requests to a Backend) and the
// client svcmgr and svcmon use. It decides nothing itself.
package api

import (
	"context"
	"errors"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
)

// SocketName is the API socket's name in the daemon's run directory.
const SocketName = "vigild.sock"

// ClusterStatus is every node's view of every service, as this node
// knows it.
type ClusterStatus struct {
	Cluster string `json:"cluster"`
	Local   string `json:"local"`
	// Nodes lists the cluster's nodes in config order.
	Nodes []string `json:"nodes"`
	// Node holds each node's state and services; the local node's from
	// its own evaluation, the peers' from their latest datasets.
	Node map[string]*NodeStatus `json:"node"`
	// Rejects counts cluster messages dropped, by heartbeat and reason.
	Rejects map[string]int `json:"rejects,omitempty"`
}

// NodeStatus is one node as seen from here.
type NodeStatus struct {
	State cluster.NodeState `json:"state"`
	// Since is when State last changed.
	Since    time.Time                           `json:"since"`
	Services map[string]*cluster.ServiceInstance `json:"services"`
	// HB says what each heartbeat sees of the node (peers only).
	HB map[string]*cluster.HBSeen `json:"hb,omitempty"`
	// ClusterConf is the node's cluster.conf checksum (cluster.ConfSum),
	// as it publishes it; "" for a peer never heard.
	ClusterConf string `json:"cluster_conf,omitempty"`
}

// ActionRequest asks for an action on a service.
type ActionRequest struct {
	// Action is start, stop, switch, takeover, giveback, freeze or thaw.
	Action string `json:"action"`
	// To is switch's target node.
	To   string   `json:"to,omitempty"`
	RIDs []string `json:"rids,omitempty"`
	// Wait for another action on the service to end instead of failing.
	Wait bool `json:"wait,omitempty"`
}

// Progress is one line of a streamed answer: a step, then a final line
// with Done set and Error when it failed.
type Progress struct {
	Line  string `json:"line,omitempty"`
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
}

// ConfigSet asks to set keywords ("fs#1.mnt_opt=ro", "orchestrate=ha").
type ConfigSet struct {
	KV []string `json:"kv"`
}

// Event is one change the daemon announces on its event stream.
type Event struct {
	Kind    string    `json:"kind"` // status, peer, action, config
	Node    string    `json:"node,omitempty"`
	Service string    `json:"service,omitempty"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
}

// Backend is what the server serves; vigild implements it.
type Backend interface {
	Status(ctx context.Context) *ClusterStatus
	// Action runs an action on a local service, telling progress as it
	// goes.
	Action(ctx context.Context, svc string, req ActionRequest, progress func(string)) error
	ConfigGet(ctx context.Context, svc string) ([]byte, error)
	ConfigSet(ctx context.Context, svc string, kv []string) error
	ConfigCommit(ctx context.Context, svc string) error
	// Subscribe returns a channel of events until ctx ends.
	Subscribe(ctx context.Context) <-chan Event
}

// ErrNoDaemon: no daemon answers on the socket.
var ErrNoDaemon = errors.New("no vigild answers")

// ErrNotRoot: vigild's socket is root's and the caller is not root.
var ErrNotRoot = errors.New("vigild's API is root's only: run this as root (sudo)")
