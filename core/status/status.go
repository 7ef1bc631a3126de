// Package status owns Vigil's status vocabulary: the resource status values,
// the merge table that combines them, and the rules that derive a service's
// group, avail and overall statuses and its cluster-wide avail from resource
// and instance statuses.
//
// It is pure data and arithmetic: it must not import other Vigil packages,
// query a driver, read a config or render text. Drivers report statuses,
// core/action and core/cluster feed them here, cmd/ draws them.
package status

import (
	"encoding/json"
	"fmt"
)

// Status is the state of a resource, a group of resources, a service
// instance or a service. The values mirror the wire enum (plugins/sdk/proto Status)
// so conversion at the plugin boundary is a cast; Undef is the zero value.
type Status int

// The status values, in wire order.
const (
	// Undef means the status could not be determined (e.g. a plugin crashed
	// during the call); the reason goes in the resource log.
	Undef Status = iota
	// Up means the resource is running.
	Up
	// Down means the resource is stopped.
	Down
	// Warn means a partial or abnormal state that needs an operator's look.
	Warn
	// NA means the status does not apply (e.g. a group with no resource).
	NA
	// StdbyUp means a standby resource is running, as expected on every node.
	StdbyUp
	// StdbyDown means a standby resource is stopped though it should run.
	StdbyDown
)

var names = [...]string{
	Undef:     "undef",
	Up:        "up",
	Down:      "down",
	Warn:      "warn",
	NA:        "n/a",
	StdbyUp:   "stdby up",
	StdbyDown: "stdby down",
}

// All lists every valid status in wire order.
func All() []Status {
	return []Status{Undef, Up, Down, Warn, NA, StdbyUp, StdbyDown}
}

// Valid reports whether s is one of the defined values.
func (s Status) Valid() bool { return s >= Undef && s <= StdbyDown }

// String returns the name shown by print status and svcmon ("stdby up", "n/a", ...).
func (s Status) String() string {
	if !s.Valid() {
		return fmt.Sprintf("Status(%d)", int(s))
	}
	return names[s]
}

// Parse is the inverse of String.
func Parse(text string) (Status, error) {
	for i, n := range names {
		if n == text {
			return Status(i), nil
		}
	}
	return Undef, fmt.Errorf("unknown status %q: want one of undef, up, down, warn, n/a, stdby up, stdby down", text)
}

// MarshalText encodes s as its name, so statuses read well as JSON values
// and map keys. It never fails: a value outside the enum (a plugin's bug, a
// newer peer) encodes as "undef", because one value that cannot be written
// would stop the node's whole dataset from being published, and peers
// would find the node lost and fence it.
func (s Status) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return []byte(names[Undef]), nil
	}
	return []byte(names[s]), nil
}

// UnmarshalText decodes a name written by MarshalText. An unknown name (a
// newer peer's value) reads as Undef rather than failing the document it
// sits in: a peer's dataset must not be dropped whole for one value. Parse
// is the strict reading, for input a person typed.
func (s *Status) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		v = Undef
	}
	*s = v
	return nil
}

// MarshalJSON encodes s as a JSON string ("up", "stdby down", ...).
func (s Status) MarshalJSON() ([]byte, error) {
	b, err := s.MarshalText()
	if err != nil {
		return nil, err
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON decodes a JSON string written by MarshalJSON; null leaves s
// unchanged, as encoding/json does for other types.
func (s *Status) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		return fmt.Errorf("status must be a JSON string: %w", err)
	}
	return s.UnmarshalText([]byte(text))
}
