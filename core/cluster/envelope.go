package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// Envelope carries a node's dataset between nodes. It is sealed with an
// HMAC keyed from the cluster secret, and numbered so a receiver can tell a
// fresh beat from a replayed one.
type Envelope struct {
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
	// Boot numbers the sender's daemon starts (a counter kept in its
	// state directory, so it grows whatever the wall clock does); Gen
	// counts the envelopes of a boot. (Boot, Gen) orders a node's
	// datasets.
	Boot uint64 `json:"boot"`
	Gen  uint64 `json:"gen"`
	// Time is the sender's wall clock (unix nanoseconds), for people: no
	// decision depends on it.
	Time    int64           `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

// Errors a receiver counts as rejects.
var (
	ErrBadMAC      = errors.New("bad authentication tag")
	ErrForeign     = errors.New("not a member of this cluster")
	ErrReplay      = errors.New("replayed or out-of-date message")
	ErrMalformed   = errors.New("malformed message")
	errDuplicateHB = errors.New("duplicate")
)

const macSize = sha256.Size

// Seal serialises and authenticates an envelope.
func Seal(key []byte, e *Envelope) ([]byte, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return append(m.Sum(make([]byte, 0, macSize+len(body))), body...), nil
}

// Open checks the tag and decodes; it does not judge freshness.
func Open(key, data []byte) (*Envelope, error) {
	if len(data) <= macSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	tag, body := data[:macSize], data[macSize:]
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(tag, m.Sum(nil)) {
		return nil, ErrBadMAC
	}
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &e, nil
}

// freshness is the newest (boot, generation) a receiver has seen of a
// sender, on one heartbeat or overall.
type freshness struct {
	boot uint64
	gen  uint64
	// state is the node state of the dataset in force (View.latest).
	state NodeState
}

// newer reports whether e comes after f.
func (f freshness) newer(e *Envelope) bool {
	return e.Boot > f.boot || (e.Boot == f.boot && e.Gen > f.gen)
}

// check judges an authenticated envelope against what was last seen on
// the same heartbeat: a later generation of the same boot, or a later
// boot, is fresh; the same one is a harmless duplicate (the transport
// resent it); an earlier one is a replay.
func (f *freshness) check(e *Envelope) error {
	switch {
	case f.boot == 0 && f.gen == 0:
	case e.Boot == f.boot && e.Gen == f.gen:
		return errDuplicateHB
	case e.Boot == f.boot && e.Gen < f.gen:
		return fmt.Errorf("%w: generation %d after %d", ErrReplay, e.Gen, f.gen)
	case e.Boot < f.boot:
		return fmt.Errorf("%w: boot %d is older than boot %d", ErrReplay, e.Boot, f.boot)
	}
	f.boot, f.gen = e.Boot, e.Gen
	return nil
}
