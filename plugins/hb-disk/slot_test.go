package hbdisk

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

func TestSlot_RoundTrips(t *testing.T) {
	const slotSize = 3 * blockSize
	for _, n := range []int{0, 1, blockSize - headerSize, blockSize - headerSize + 1, slotSize - headerSize} {
		buf := make([]byte, slotSize)
		payload := bytes.Repeat([]byte{0xA5}, n)
		h := slotHeader{Index: 2, SlotSize: slotSize, Gen: 1<<62 + 7, Time: 123, Cluster: "prod", Node: "node-c"}
		w := encodeSlot(buf, h, payload)
		if w%blockSize != 0 || w < headerSize+n {
			t.Fatalf("payload %d: write length %d is not the block-rounded slot", n, w)
		}
		if got, rej := peekLen(buf, slotSize-headerSize); rej != nil || got != headerSize+n {
			t.Fatalf("payload %d: peekLen = %d, %v", n, got, rej)
		}
		got, p, rej := decodeSlot(buf, expect{Index: 2, SlotSize: slotSize, Cluster: "prod", Node: "node-c"})
		if rej != nil {
			t.Fatalf("payload %d: rejected: %s", n, rej.Reason)
		}
		h.Len = uint32(n)
		if got != h || !bytes.Equal(p, payload) {
			t.Fatalf("payload %d: decoded %+v (%d bytes), want %+v", n, got, len(p), h)
		}
	}
}

func TestSlot_RejectsWhatItCannotTrust(t *testing.T) {
	const slotSize = 2 * blockSize
	want := expect{Index: 1, SlotSize: slotSize, Cluster: "prod", Node: "b"}
	good := slotHeader{Index: 1, SlotSize: slotSize, Gen: 42, Cluster: "prod", Node: "b"}
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		header func(*slotHeader)
		damage func([]byte)
		kind   string
		reason string
	}{
		{name: "torn payload", damage: func(b []byte) { b[headerSize+3] ^= 0xFF }, kind: "checksum", reason: "torn or corrupt"},
		{name: "torn generation", damage: func(b []byte) { b[offGen] ^= 1 }, kind: "checksum", reason: "torn or corrupt"},
		{name: "torn node name", damage: func(b []byte) { b[offNode] = 'x' }, kind: "checksum", reason: "torn or corrupt"},
		{name: "bad magic", damage: func(b []byte) { b[0] = 'X' }, kind: "magic", reason: "bad magic"},
		{name: "future version", damage: func(b []byte) { le.PutUint32(b[offVersion:], 9) }, kind: "version", reason: "version 9"},
		{name: "impossible length", damage: func(b []byte) { le.PutUint32(b[offLen:], slotSize) }, kind: "length", reason: "impossible payload length"},
		{name: "another cluster", header: func(h *slotHeader) { h.Cluster = "test" }, kind: "cluster", reason: `cluster "test", not "prod"`},
		{name: "another node", header: func(h *slotHeader) { h.Node = "c" }, kind: "node", reason: `holds node "c"`},
		{name: "another index", header: func(h *slotHeader) { h.Index = 0 }, kind: "node", reason: "same order"},
		{name: "another slot size", header: func(h *slotHeader) { h.SlotSize = blockSize }, kind: "slot_size", reason: "same slot_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := good
			if tc.header != nil {
				tc.header(&h)
			}
			buf := make([]byte, slotSize)
			encodeSlot(buf, h, []byte("a dataset"))
			if tc.damage != nil {
				tc.damage(buf)
			}
			_, p, rej := decodeSlot(buf, want)
			if rej == nil {
				t.Fatalf("accepted, payload %q", p)
			}
			if p != nil {
				t.Errorf("a rejected slot returned a payload")
			}
			if rej.Kind != tc.kind || !strings.Contains(rej.Reason, tc.reason) {
				t.Errorf("rejected as %s: %q; want %s containing %q", rej.Kind, rej.Reason, tc.kind, tc.reason)
			}
		})
	}
}

func TestSlot_EmptyIsNotARejection(t *testing.T) {
	if !slotEmpty(make([]byte, blockSize)) {
		t.Fatal("a zeroed slot is not empty")
	}
	buf := make([]byte, blockSize)
	encodeSlot(buf, slotHeader{SlotSize: blockSize}, nil)
	if slotEmpty(buf) {
		t.Fatal("a written slot reads empty")
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "4096", want: 4096},
		{in: "1MiB", want: 1 << 20},
		{in: "1m", want: 1 << 20},
		{in: " 64K ", want: 64 << 10},
		{in: "1.5k", want: 1536},
		{in: "", bad: true},
		{in: "big", bad: true},
		{in: "1x", bad: true},
	} {
		got, err := sdk.ParseSize(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}
