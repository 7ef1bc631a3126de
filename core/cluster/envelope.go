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
	// Boot is random per daemon start; Gen counts the envelopes of a boot.
	Boot string `json:"boot"`
	Gen  uint64 `json:"gen"`
	// Time is the sender's wall clock (unix nanoseconds); a new boot must
	// be later than anything seen of the previous one.
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

// freshness is what a receiver remembers of a sender on one heartbeat.
type freshness struct {
	boot string
	gen  uint64
	time int64
}

// check judges an authenticated envelope against what was last seen on
// the same heartbeat: a later generation of the same boot is fresh, the
// same one is a harmless duplicate (the transport resent it), an earlier
// one is a replay; a new boot must be later in time than the last one.
func (f *freshness) check(e *Envelope) error {
	switch {
	case f.boot == "":
	case e.Boot == f.boot && e.Gen == f.gen:
		return errDuplicateHB
	case e.Boot == f.boot && e.Gen < f.gen:
		return fmt.Errorf("%w: generation %d after %d", ErrReplay, e.Gen, f.gen)
	case e.Boot != f.boot && e.Time <= f.time:
		return fmt.Errorf("%w: boot %s is older than boot %s", ErrReplay, e.Boot, f.boot)
	}
	f.boot, f.gen, f.time = e.Boot, e.Gen, e.Time
	return nil
}
