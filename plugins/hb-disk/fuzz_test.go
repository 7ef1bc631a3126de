package hbdisk

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecodeSlot feeds what a peer's slot may hold (anything: the device is
// shared, and other tools or a torn write may have left any bytes) to the
// reader's checks, as readSlot applies them. Properties: never panics; a
// slot is accepted only when its AES-GCM tag verifies under the key (the
// fuzzer cannot forge one, so every acceptance is checked against an
// independent opening); an accepted slot's names and size are the ones
// expected. With fixCRC the fuzzer plays a writer that knows the format
// but not the key: the checksum is made right after the mutation, so the
// identity checks and the tag see mutated slots too.
func FuzzDecodeSlot(f *testing.F) {
	const slotSize = 2 * blockSize
	aead := testSealer(f, 1)
	want := expect{Index: 1, SlotSize: slotSize, Cluster: "prod", Node: "b"}
	h := slotHeader{Index: 1, SlotSize: slotSize, Gen: 42, Time: 7, Cluster: "prod", Node: "b"}
	for _, payload := range [][]byte{nil, []byte(`{"node":"b"}`), bytes.Repeat([]byte{0xA5}, slotSize-headerSize-tagSize)} {
		buf := make([]byte, slotSize)
		n := encodeSlot(buf, h, payload, aead)
		f.Add(buf[:n], false)
		f.Add(buf[:n], true)
	}
	other := make([]byte, slotSize)
	f.Add(other[:encodeSlot(other, h, []byte("another key"), testSealer(f, 2))], false)
	v1 := make([]byte, blockSize)
	n := encodeSlot(v1, h, []byte("old"), aead)
	binary.LittleEndian.PutUint32(v1[offVersion:], 1)
	f.Add(v1[:n], true)
	f.Add([]byte{}, false)
	f.Add(magic[:], false)

	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		// A read always fills the slot's buffer: what the fuzzer does not
		// give reads as zeros, as on a fresh device.
		buf := make([]byte, slotSize)
		copy(buf, data)
		if slotEmpty(buf) {
			return
		}
		n, rej := peekLen(buf, slotSize-headerSize)
		if rej != nil {
			if rej.Kind == "" || rej.Reason == "" {
				t.Fatalf("a reject without a kind or reason: %+v", rej)
			}
			return
		}
		if n < headerSize+tagSize || n > slotSize {
			t.Fatalf("peekLen accepted a slot of %d bytes", n)
		}
		if fixCRC {
			binary.LittleEndian.PutUint32(buf[offCRC:], slotChecksum(buf[:n]))
		}
		orig := bytes.Clone(buf)
		got, payload, rej := decodeSlot(buf, want, aead)
		if rej != nil {
			if payload != nil || rej.Kind == "" || rej.Reason == "" {
				t.Fatalf("reject %+v with payload %v", rej, payload != nil)
			}
			return
		}
		if got.Cluster != want.Cluster || got.Node != want.Node || got.Index != want.Index || got.SlotSize != want.SlotSize {
			t.Fatalf("accepted a slot of %+v, want %+v", got, want)
		}
		if payload == nil || len(payload) != n-headerSize-tagSize {
			t.Fatalf("accepted a %d-byte slot with a %d-byte payload (nil %v)", n, len(payload), payload == nil)
		}
		// Open the original bytes independently: the header, CRC zeroed,
		// is the associated data.
		aad := bytes.Clone(orig[:headerSize])
		clear(aad[offCRC : offCRC+4])
		plain, err := aead.Open(nil, orig[offNonce:offNonce+nonceSize], orig[headerSize:n], aad)
		if err != nil {
			t.Fatalf("decodeSlot accepted a slot whose tag does not verify: %v", err)
		}
		if !bytes.Equal(plain, payload) {
			t.Fatalf("decodeSlot returned %q, the slot holds %q", payload, plain)
		}
	})
}
