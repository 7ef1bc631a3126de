package sdk

import (
	"context"
	"time"
)

// PluginKindHeartbeat is the go-plugin name of the heartbeat service.
const PluginKindHeartbeat = "heartbeat"

// HeartbeatConfig is one [hb#n] section of cluster.conf, as core hands it
// to the plugin.
type HeartbeatConfig struct {
	Name      string // "hb#1"
	Type      string // "hb.net"
	Cluster   string
	LocalNode string
	// Nodes lists every node, the local one included, in cluster.conf
	// order.
	Nodes    []string
	Interval time.Duration
	Timeout  time.Duration
	// Keywords holds the section's keywords, canonical names.
	Keywords map[string]string
	// Key is 32 bytes derived from the cluster secret for this heartbeat
	// (never the secret itself).
	Key []byte
}

// Peers returns the nodes other than the local one.
func (c HeartbeatConfig) Peers() []string {
	var out []string
	for _, n := range c.Nodes {
		if n != c.LocalNode {
			out = append(out, n)
		}
	}
	return out
}

// EventKind says what a heartbeat event reports.
type EventKind int

// Heartbeat events.
const (
	// EventBeat: a dataset arrived from Peer.
	EventBeat EventKind = iota + 1
	// EventStale: Peer has not been heard for the timeout, or the
	// transport says it is gone.
	EventStale
	// EventReject: something arrived that the plugin refused (bad key,
	// torn or corrupt slot); Peer is the claimed sender when known.
	EventReject
)

// HeartbeatEvent is what a heartbeat tells core.
type HeartbeatEvent struct {
	Kind     EventKind
	Peer     string
	Dataset  []byte    // EventBeat: the peer's dataset, as the peer published it
	Received time.Time // EventBeat
	Reason   string    // EventStale, EventReject
}

// HeartbeatDriver is what a heartbeat plugin implements. Datasets are
// opaque: core signs them and checks what comes back, so a plugin only
// carries bytes, whole (never truncated), and says when a peer went quiet.
type HeartbeatDriver interface {
	// Info lists the heartbeat types served ("hb.net") and the keywords
	// of their sections.
	Info() Info
	// Run runs one heartbeat until ctx ends. Each value from datasets is
	// the local dataset to publish from then on (the latest wins). emit
	// is safe to call from any goroutine. A config Run cannot use is an
	// error returned at once.
	Run(ctx context.Context, cfg HeartbeatConfig, datasets <-chan []byte, emit func(HeartbeatEvent)) error
}
