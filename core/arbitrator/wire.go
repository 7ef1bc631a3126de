package arbitrator

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vigil-ha/vigil/core/frame"
	"io"
	"slices"
	"time"
)

// Wire limits: a request or answer larger than these is garbage.
const (
	// MaxNodes bounds a request's set.
	MaxNodes = 64
	// MaxName bounds a cluster or node name, in bytes.
	MaxName = 64
	// MaxFrame bounds a request or answer, in bytes.
	MaxFrame = 8192
	// MaxReason bounds a denial's reason, in bytes.
	MaxReason = 255
)

const (
	version   = 1
	nonceLen  = 16
	macLen    = sha256.Size
	kindChal  = 'C'
	kindReq   = 'Q'
	kindReply = 'A'
)

var magic = [4]byte{'V', 'G', 'A', 'R'}

// ErrMalformed: a frame does not decode (garbage, a truncated frame, a
// set out of order).
var ErrMalformed = errors.New("malformed arbitrator frame")

// ErrBadTag: a frame's tag does not verify (another cluster's secret, or
// a forged or altered frame).
var ErrBadTag = errors.New("arbitrator frame fails authentication (is the cluster secret the same on both ends?)")

// Request is what a node asks.
type Request struct {
	// Challenge is the server's, from the start of this connection.
	Challenge [nonceLen]byte
	// Nonce is the client's; the answer echoes it.
	Nonce   [nonceLen]byte
	Cluster string
	Node    string
	// Set is the nodes the requester sees alive, itself included, sorted
	// without duplicates.
	Set []string
}

// Reply is the server's answer.
type Reply struct {
	Nonce   [nonceLen]byte
	Granted bool
	// Lease is how long the server holds the grant from when it received
	// the request (also sent on a denial, for the client's information).
	Lease time.Duration
	// Reason says why a vote was denied.
	Reason string
}

// NormalizeSet sorts a set and drops duplicates, the form requests carry.
func NormalizeSet(set []string) []string {
	s := slices.Clone(set)
	slices.Sort(s)
	return slices.Compact(s)
}

func header(kind byte) []byte { return append(magic[:len(magic):len(magic)], version, kind) }

func checkName(what, s string) error {
	if s == "" || len(s) > MaxName {
		return fmt.Errorf("%s %q: give 1 to %d bytes", what, s, MaxName)
	}
	return nil
}

// EncodeRequest returns the tagged request body.
func EncodeRequest(key []byte, r *Request) ([]byte, error) {
	if err := checkName("cluster", r.Cluster); err != nil {
		return nil, err
	}
	if err := checkName("node", r.Node); err != nil {
		return nil, err
	}
	if len(r.Set) == 0 || len(r.Set) > MaxNodes {
		return nil, fmt.Errorf("a set of %d nodes: give 1 to %d", len(r.Set), MaxNodes)
	}
	if !slices.Equal(r.Set, NormalizeSet(r.Set)) {
		return nil, fmt.Errorf("set %v: sort it without duplicates (NormalizeSet)", r.Set)
	}
	b := header(kindReq)
	b = append(b, r.Challenge[:]...)
	b = append(b, r.Nonce[:]...)
	b = frame.PutStr(b, r.Cluster)
	b = frame.PutStr(b, r.Node)
	b = append(b, byte(len(r.Set)))
	for _, n := range r.Set {
		if err := checkName("node", n); err != nil {
			return nil, err
		}
		b = frame.PutStr(b, n)
	}
	return frame.Seal(key, b), nil
}

// untag splits a frame into body and tag and checks the tag.
func untag(key, raw []byte) ([]byte, error) {
	body, err := frame.Open(key, raw, MaxFrame)
	switch {
	case errors.Is(err, frame.ErrTag):
		return nil, ErrBadTag
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return body, nil
}

// DecodeRequest checks a request's tag under key, then decodes it. Any
// input returns an error or a request whose fields respect the limits.
func DecodeRequest(key, raw []byte) (*Request, error) {
	body, err := untag(key, raw)
	if err != nil {
		return nil, err
	}
	return decodeRequestBody(body)
}

func decodeRequestBody(body []byte) (*Request, error) {
	r := &frame.Reader{B: body}
	r.Expect(header(kindReq))
	q := &Request{}
	copy(q.Challenge[:], r.Take(nonceLen))
	copy(q.Nonce[:], r.Take(nonceLen))
	q.Cluster = r.Str()
	q.Node = r.Str()
	n := int(r.Byte())
	for range n {
		if r.Bad {
			break
		}
		q.Set = append(q.Set, r.Str())
	}
	switch {
	case r.Bad:
		return nil, fmt.Errorf("%w: truncated or not a request", ErrMalformed)
	case len(r.B) != 0:
		return nil, fmt.Errorf("%w: %d bytes after the request", ErrMalformed, len(r.B))
	case checkName("cluster", q.Cluster) != nil, checkName("node", q.Node) != nil:
		return nil, fmt.Errorf("%w: empty or long name", ErrMalformed)
	case n == 0 || n > MaxNodes:
		return nil, fmt.Errorf("%w: a set of %d nodes", ErrMalformed, n)
	case !slices.Equal(q.Set, NormalizeSet(q.Set)):
		return nil, fmt.Errorf("%w: set not sorted or with duplicates", ErrMalformed)
	}
	for _, s := range q.Set {
		if checkName("node", s) != nil {
			return nil, fmt.Errorf("%w: empty or long name in the set", ErrMalformed)
		}
	}
	return q, nil
}

// EncodeReply returns the tagged reply body.
func EncodeReply(key []byte, a *Reply) []byte {
	b := header(kindReply)
	b = append(b, a.Nonce[:]...)
	g := byte(0)
	if a.Granted {
		g = 1
	}
	b = append(b, g)
	b = binary.BigEndian.AppendUint32(b, uint32(a.Lease/time.Millisecond))
	reason := a.Reason
	if len(reason) > MaxReason {
		reason = reason[:MaxReason]
	}
	b = frame.PutStr(b, reason)
	return frame.Seal(key, b)
}

// DecodeReply checks a reply's tag under key, then decodes it.
func DecodeReply(key, raw []byte) (*Reply, error) {
	body, err := untag(key, raw)
	if err != nil {
		return nil, err
	}
	r := &frame.Reader{B: body}
	r.Expect(header(kindReply))
	a := &Reply{}
	copy(a.Nonce[:], r.Take(nonceLen))
	g := r.Byte()
	ms := r.Take(4)
	a.Reason = r.Str()
	if r.Bad || len(r.B) != 0 || g > 1 {
		return nil, fmt.Errorf("%w: not a reply", ErrMalformed)
	}
	a.Granted = g == 1
	a.Lease = time.Duration(binary.BigEndian.Uint32(ms)) * time.Millisecond
	return a, nil
}

// challenge frames are fixed-size: header and the challenge.
func encodeChallenge(c [nonceLen]byte) []byte { return append(header(kindChal), c[:]...) }

func decodeChallenge(b []byte) ([nonceLen]byte, error) {
	var c [nonceLen]byte
	r := &frame.Reader{B: b}
	r.Expect(header(kindChal))
	copy(c[:], r.Take(nonceLen))
	if r.Bad || len(r.B) != 0 {
		return c, fmt.Errorf("%w: not a challenge (is this address an arbitrator?)", ErrMalformed)
	}
	return c, nil
}

// writeFrame sends a frame behind its 2-byte length.
func writeFrame(w io.Writer, b []byte) error {
	if len(b) > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(b), MaxFrame)
	}
	_, err := w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b))))
	if err == nil {
		_, err = w.Write(b)
	}
	return err
}

// readFrame reads a length-prefixed frame of at most MaxFrame bytes.
func readFrame(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: a frame of %d bytes (the limit is %d)", ErrMalformed, n, MaxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
