package arbitrator

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzDecodeRequest feeds the request decoder garbage: it must never
// panic, and whatever it accepts must respect the wire's limits and encode
// back to the same bytes. The body decoder is fuzzed behind the tag check
// too, since a fuzzer never forges a tag.
func FuzzDecodeRequest(f *testing.F) {
	for _, q := range []*Request{req("a", "a"), req("n1", "n1", "n2", "n3")} {
		b, err := EncodeRequest(testKey, q)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-macLen])
	}
	f.Add([]byte{})
	f.Add([]byte("VGAR\x01Q"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if q, err := DecodeRequest(testKey, data); err == nil {
			check(t, q)
		}
		q, err := decodeRequestBody(data)
		if err != nil {
			return
		}
		check(t, q)
		b, err := EncodeRequest(testKey, q)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", q, err)
		}
		if !bytes.Equal(b[:len(b)-macLen], data) {
			t.Fatalf("decoded %+v encodes to other bytes", q)
		}
	})
}

func check(t *testing.T, q *Request) {
	t.Helper()
	if len(q.Cluster) == 0 || len(q.Cluster) > MaxName || len(q.Node) == 0 || len(q.Node) > MaxName ||
		len(q.Set) == 0 || len(q.Set) > MaxNodes || !slices.Equal(q.Set, NormalizeSet(q.Set)) {
		t.Fatalf("accepted a request out of the limits: %+v", q)
	}
}
