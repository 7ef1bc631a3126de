package hbnet

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// frameSeeds are valid frames and near misses: the fuzzer starts from
// what a peer sends and what a damaged or foreign packet looks like.
func frameSeeds() [][]byte {
	good := encodeFrame("n1", []byte(`{"node":"n1","gen":7}`))
	return [][]byte{
		good,
		encodeFrame("n1", nil),
		encodeFrame("node-with-a-long-name.example.com", randomBytes(1200, 1)),
		encodeFrame(strings.Repeat("x", maxNameLen), []byte{0}),
		good[:len(good)-1],                       // truncated
		append(bytes.Clone(good), 0),             // a byte too many
		append([]byte("VGHB\x02"), good[5:]...),  // another version
		[]byte("VGHB\x01\x00\x00\x00\x00\x00"),   // no sender name
		[]byte("VGHB\x01\xff\x00\x00\x00\x00"),   // a name longer than the frame
		[]byte("VGHB\x01\x02n1\xff\xff\xff\xff"), // announces 4 GiB
		[]byte("VGHB"),
		nil,
	}
}

// FuzzFrameDecode checks that decodeFrame never panics nor alters its
// input, refuses with errFrame, and that what it accepts is exactly what
// encodeFrame makes of the result: the format has one encoding per
// (sender, dataset), so a frame that decodes but re-encodes differently
// would mean bytes the decoder skipped unchecked.
func FuzzFrameDecode(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		sender, ds, err := decodeFrame(b)
		if !bytes.Equal(b, in) {
			t.Fatalf("decodeFrame changed its input")
		}
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("decodeFrame error %v does not wrap errFrame", err)
			}
			if ds != nil {
				t.Fatalf("decodeFrame returned a dataset with error %v", err)
			}
			return
		}
		if sender == "" || len(sender) > maxNameLen {
			t.Fatalf("accepted a sender name of %d bytes", len(sender))
		}
		if re := encodeFrame(sender, ds); !bytes.Equal(re, b) {
			t.Fatalf("frame of %d bytes decodes to sender %q and %d bytes, which encode to %d other bytes", len(b), sender, len(ds), len(re))
		}
	})
}

// FuzzFrameRoundTrip checks that any sender a node may have (1 to
// maxNameLen bytes, which parseSettings enforces) and any dataset come
// back whole from a frame.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add("n1", []byte(`{"node":"n1"}`))
	f.Add(strings.Repeat("y", maxNameLen), []byte{})
	f.Add("VGHB", []byte("VGHB\x01\x02n1"))
	f.Fuzz(func(t *testing.T, sender string, ds []byte) {
		if sender == "" || len(sender) > maxNameLen {
			t.Skip("not a name parseSettings lets through")
		}
		gotSender, got, err := decodeFrame(encodeFrame(sender, ds))
		if err != nil || gotSender != sender || !bytes.Equal(got, ds) {
			t.Fatalf("round trip of sender %q and %d bytes: sender %q, %d bytes, err %v", sender, len(ds), gotSender, len(got), err)
		}
	})
}
