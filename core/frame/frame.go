// Package frame reads and writes the fields of the small binary frames of
// Vigil's own TCP protocols (core/arbitrator, core/configsync): bytes
// taken in order, strings with a one-byte length. It owns no protocol:
// headers, limits, tags and encryption stay with each protocol.
package frame

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Reader reads a frame's fields in order; the first failure sticks (Bad),
// so a decoder reads every field and checks once.
type Reader struct {
	B   []byte // what is left to read
	Bad bool
}

// Take returns the next n bytes, or nil (and Bad) when fewer are left.
func (r *Reader) Take(n int) []byte {
	if r.Bad || n < 0 || n > len(r.B) {
		r.Bad = true
		return nil
	}
	v := r.B[:n]
	r.B = r.B[n:]
	return v
}

// Byte returns the next byte.
func (r *Reader) Byte() byte {
	if v := r.Take(1); v != nil {
		return v[0]
	}
	return 0
}

// Str returns a string written by PutStr.
func (r *Reader) Str() string { return string(r.Take(int(r.Byte()))) }

// Expect takes len(want) bytes and marks the frame bad unless they are
// want (a protocol's header).
func (r *Reader) Expect(want []byte) {
	if h := r.Take(len(want)); h != nil && !bytes.Equal(h, want) {
		r.Bad = true
	}
}

// Done reports whether every field was read and nothing is left over.
func (r *Reader) Done() bool { return !r.Bad && len(r.B) == 0 }

// PutStr appends s with its one-byte length; s must be at most 255 bytes
// (each protocol checks its names first).
func PutStr(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }

// TagSize is the size of the HMAC-SHA256 tag Seal appends.
const TagSize = sha256.Size

// Seal appends body's HMAC-SHA256 tag under key.
func Seal(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(body)
}

// Errors of Open, for each protocol to wrap in its own.
var (
	ErrSize = errors.New("frame size out of bounds")
	ErrTag  = errors.New("tag does not verify")
)

// Open checks a sealed frame of at most max bytes and returns its body.
func Open(key, raw []byte, max int) ([]byte, error) {
	if len(raw) < TagSize || len(raw) > max {
		return nil, fmt.Errorf("%w: %d bytes", ErrSize, len(raw))
	}
	body, mac := raw[:len(raw)-TagSize], raw[len(raw)-TagSize:]
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(mac, m.Sum(nil)) {
		return nil, ErrTag
	}
	return body, nil
}
