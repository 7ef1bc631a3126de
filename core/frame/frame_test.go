package frame

import "testing"

func TestReader_FirstFailureSticks(t *testing.T) {
	b := PutStr([]byte{1, 2}, "node")
	r := &Reader{B: b}
	r.Expect([]byte{1, 2})
	if s := r.Str(); s != "node" || !r.Done() {
		t.Fatalf("read %q, done %v", s, r.Done())
	}
	r = &Reader{B: []byte{9, 5, 'a'}}
	r.Expect([]byte{1})
	_ = r.Str() // the length says 5, 1 byte is left
	if !r.Bad || r.Done() || r.Take(0) != nil {
		t.Fatalf("a bad header and a short string must stick: %+v", r)
	}
}
