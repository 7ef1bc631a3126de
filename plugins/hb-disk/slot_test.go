package hbdisk

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// testSealer is an AEAD under a fixed key: the slot tests need a key, not
// a particular one.
func testSealer(t testing.TB, fill byte) cipher.AEAD {
	t.Helper()
	aead, err := newSealer(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

func TestSlot_RoundTrips(t *testing.T) {
	const slotSize = 3 * blockSize
	aead := testSealer(t, 1)
	for _, n := range []int{0, 1, blockSize - headerSize - tagSize, blockSize - headerSize - tagSize + 1, slotSize - headerSize - tagSize} {
		buf := make([]byte, slotSize)
		payload := bytes.Repeat([]byte{0xA5}, n)
		h := slotHeader{Index: 2, SlotSize: slotSize, Gen: 1<<62 + 7, Time: 123, Cluster: "prod", Node: "node-c"}
		w := encodeSlot(buf, h, payload, aead)
		if w%blockSize != 0 || w < headerSize+n+tagSize {
			t.Fatalf("payload %d: write length %d is not the block-rounded slot", n, w)
		}
		if got, rej := peekLen(buf, slotSize-headerSize); rej != nil || got != headerSize+n+tagSize {
			t.Fatalf("payload %d: peekLen = %d, %v", n, got, rej)
		}
		got, p, rej := decodeSlot(buf, expect{Index: 2, SlotSize: slotSize, Cluster: "prod", Node: "node-c"}, aead)
		if rej != nil {
			t.Fatalf("payload %d: rejected: %s", n, rej.Reason)
		}
		h.Len = uint32(n + tagSize)
		if got != h || !bytes.Equal(p, payload) || p == nil {
			t.Fatalf("payload %d: decoded %+v (%d bytes, nil %v), want %+v", n, got, len(p), p == nil, h)
		}
	}
}

func TestSlot_SealsThePayloadUnderAFreshNonceEachWrite(t *testing.T) {
	aead := testSealer(t, 1)
	payload := []byte("run_args = -e PASSWORD=secret")
	h := slotHeader{SlotSize: blockSize, Gen: 1, Cluster: "prod", Node: "a"}
	one, two := make([]byte, blockSize), make([]byte, blockSize)
	encodeSlot(one, h, payload, aead)
	encodeSlot(two, h, payload, aead)
	if bytes.Contains(one, []byte("PASSWORD")) {
		t.Fatalf("the payload is in clear in the slot")
	}
	if bytes.Equal(one[offNonce:offNonce+nonceSize], two[offNonce:offNonce+nonceSize]) ||
		bytes.Equal(one[headerSize:headerSize+len(payload)], two[headerSize:headerSize+len(payload)]) {
		t.Fatalf("two writes of the same dataset share a nonce or a ciphertext")
	}
}

func TestSlot_RejectsWhatItCannotTrust(t *testing.T) {
	const slotSize = 2 * blockSize
	aead := testSealer(t, 1)
	want := expect{Index: 1, SlotSize: slotSize, Cluster: "prod", Node: "b"}
	good := slotHeader{Index: 1, SlotSize: slotSize, Gen: 42, Cluster: "prod", Node: "b"}
	le := binary.LittleEndian
	// recrc makes damage pass the checksum: what a stray writer that knows
	// the format, but not the key, would do.
	recrc := func(b []byte) { le.PutUint32(b[offCRC:], slotChecksum(b[:headerSize+le.Uint32(b[offLen:])])) }
	for _, tc := range []struct {
		name   string
		header func(*slotHeader)
		sealer cipher.AEAD
		damage func([]byte)
		kind   string
		reason string
	}{
		{name: "torn payload", damage: func(b []byte) { b[headerSize+3] ^= 0xFF }, kind: "checksum", reason: "malformed: checksum mismatch"},
		{name: "torn generation", damage: func(b []byte) { b[offGen] ^= 1 }, kind: "checksum", reason: "torn or corrupt"},
		{name: "torn node name", damage: func(b []byte) { b[offNode] = 'x' }, kind: "checksum", reason: "torn or corrupt"},
		{name: "torn nonce", damage: func(b []byte) { b[offNonce] ^= 1 }, kind: "checksum", reason: "torn or corrupt"},
		{name: "bad magic", damage: func(b []byte) { b[0] = 'X' }, kind: "magic", reason: "malformed: the slot holds no vigil heartbeat (bad magic)"},
		{name: "future version", damage: func(b []byte) { le.PutUint32(b[offVersion:], 9) }, kind: "version", reason: "version: slot format version 9"},
		{name: "version 1, plaintext", damage: func(b []byte) { le.PutUint32(b[offVersion:], 1); recrc(b) }, kind: "unencrypted", reason: "unencrypted: the slot is in format version 1, whose dataset is not encrypted"},
		{name: "impossible length", damage: func(b []byte) { le.PutUint32(b[offLen:], slotSize) }, kind: "length", reason: "impossible payload length"},
		{name: "shorter than a tag", damage: func(b []byte) { le.PutUint32(b[offLen:], tagSize-1) }, kind: "length", reason: "impossible payload length 15"},
		{name: "another cluster", header: func(h *slotHeader) { h.Cluster = "test" }, kind: "cluster", reason: `foreign: slot 1 belongs to cluster "test", not "prod"`},
		{name: "another node", header: func(h *slotHeader) { h.Node = "c" }, kind: "node", reason: `holds node "c"`},
		{name: "another index", header: func(h *slotHeader) { h.Index = 0 }, kind: "node", reason: "same order"},
		{name: "another slot size", header: func(h *slotHeader) { h.SlotSize = blockSize }, kind: "slot_size", reason: "same slot_size"},
		{name: "another key", sealer: testSealer(t, 2), kind: "bad_tag", reason: "bad_tag: slot 1 does not open with this node's heartbeat key"},
		{name: "forged payload", damage: func(b []byte) { b[headerSize] ^= 1; recrc(b) }, kind: "bad_tag", reason: "bad_tag: "},
		// The header is the associated data: a header field changed
		// under a good checksum does not pass either.
		{name: "forged generation", damage: func(b []byte) { b[offGen] ^= 1; recrc(b) }, kind: "bad_tag", reason: "bad_tag: "},
		{name: "forged reserved byte", damage: func(b []byte) { b[headerSize-1] = 1; recrc(b) }, kind: "bad_tag", reason: "bad_tag: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := good
			if tc.header != nil {
				tc.header(&h)
			}
			sealer := aead
			if tc.sealer != nil {
				sealer = tc.sealer
			}
			buf := make([]byte, slotSize)
			encodeSlot(buf, h, []byte("a dataset"), sealer)
			if tc.damage != nil {
				tc.damage(buf)
			}
			_, p, rej := decodeSlot(buf, want, aead)
			if rej == nil {
				t.Fatalf("accepted, payload %q", p)
			}
			if p != nil {
				t.Errorf("a rejected slot returned a payload")
			}
			if rej.Kind != tc.kind || !strings.Contains(rej.event(), tc.reason) {
				t.Errorf("rejected as %s: %q; want %s containing %q", rej.Kind, rej.event(), tc.kind, tc.reason)
			}
		})
	}
}

func TestSlot_EmptyIsNotARejection(t *testing.T) {
	if !slotEmpty(make([]byte, blockSize)) {
		t.Fatal("a zeroed slot is not empty")
	}
	buf := make([]byte, blockSize)
	encodeSlot(buf, slotHeader{SlotSize: blockSize}, nil, testSealer(t, 1))
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
