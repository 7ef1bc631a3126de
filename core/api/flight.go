package api

import "time"

// The flight recorder's records, as the journal keeps them (a "failover"
// entry's data) and svcmgr print failovers draws them.

// Flight is one recorded takeover or move.
type Flight struct {
	Service string `json:"service"`
	Node    string `json:"node"`
	// Kind is takeover (from a lost node), move (an operator's target) or
	// start (placement).
	Kind   string    `json:"kind"`
	From   []string  `json:"from,omitempty"`
	Reason string    `json:"reason"`
	Begin  time.Time `json:"begin"`
	// Phases follow each other: their durations sum to Total.
	Phases    []Phase   `json:"phases"`
	Resources []Phase   `json:"resources,omitempty"`
	Total     float64   `json:"total_seconds"`
	End       time.Time `json:"end"`
	Failed    string    `json:"failed,omitempty"`
}

// Phase is one bar of a flight's timeline.
type Phase struct {
	Name    string    `json:"name"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Seconds float64   `json:"seconds"`
}

// peerTimes is what the recorder knows of a lost peer.
