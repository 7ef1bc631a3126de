package proto

import (
	"bytes"
	"testing"
)

// FuzzReadFrame: the status channel's frames come from another process.
// Whatever the bytes, ReadFrame returns (an error or a message) without
// panicking, and a frame it accepts writes back to the same message.
func FuzzReadFrame(f *testing.F) {
	ok, _ := WriteFrame(&bytes.Buffer{}, nil, &StatusCall{})
	f.Add(ok)
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0, 0, 3, 0x0a, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var call StatusCall
		if _, err := ReadFrame(bytes.NewReader(b), nil, &call); err != nil {
			return
		}
		var out bytes.Buffer
		if _, err := WriteFrame(&out, nil, &call); err != nil {
			t.Fatalf("an accepted frame does not write back: %v", err)
		}
	})
}
