package hbnet

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrame_RoundTrip(t *testing.T) {
	for _, ds := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte{0, 1, 2}, 100000)} {
		sender, got, err := decodeFrame(encodeFrame("node-1", ds))
		if err != nil || sender != "node-1" || !bytes.Equal(got, ds) {
			t.Errorf("round trip of %d bytes: sender %q, %d bytes, err %v", len(ds), sender, len(got), err)
		}
	}
}

func TestFrame_RefusesDamagedFrames(t *testing.T) {
	good := encodeFrame("n1", []byte("dataset"))
	tests := map[string][]byte{
		"empty":         nil,
		"other magic":   append([]byte("XXXX"), good[4:]...),
		"other version": append(append([]byte("VGHB"), 9), good[5:]...),
		"no name":       append([]byte("VGHB\x01\x00"), good[8:]...),
		"truncated":     good[:len(good)-1],
		"extra bytes":   append(append([]byte(nil), good...), '!'),
		"header only":   good[:6],
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := decodeFrame(b); !errors.Is(err, errFrame) {
				t.Errorf("decodeFrame = %v, want errFrame", err)
			}
		})
	}
}
