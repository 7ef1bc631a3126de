package hbdisk

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The on-disk format. Slot i starts at offset + 4096 + i*slot_size (the
// label, label.go, comes first), i being the node's index in
// cluster.conf's nodes list. Every integer is little-endian
// at a fixed offset, so a slot can be read by hand (xxd) when a cluster
// misbehaves:
//
//	off  size  field
//	  0     8  magic "VIGILHB\x00"
//	  8     4  format version (2)
//	 12     4  slot index (the writer's position in nodes)
//	 16     8  slot size the writer was configured with, in bytes
//	 24     8  generation: +1 on every write; a fresh start resumes above
//	           both the slot's last value and the wall clock in nanoseconds,
//	           so readers never see it go backwards across restarts
//	 32     8  timestamp, unix nanoseconds on the writer's clock
//	           (informative: peers' clocks are never compared)
//	 40     4  payload length in bytes: the sealed dataset, tag included
//	 44     4  CRC32C (Castagnoli) over the header, this field read as
//	           zero, and the payload
//	 48   128  cluster name, NUL-padded
//	176   128  node name, NUL-padded
//	304    12  AES-GCM nonce, random on every write
//	316   196  reserved, zero
//	512     n  payload: the dataset core handed over, sealed with AES-GCM
//	           under the heartbeat key (HeartbeatConfig.Key, derived by
//	           core from the cluster secret), the header with the CRC
//	           field read as zero as associated data; then the 16-byte tag
//
// The dataset is sealed because it carries service configs (run_args -e
// PASSWORD=...) and the device is readable by whoever can read the SAN;
// hb-net's traffic is sealed with AES-GCM under the same kind of key. The
// header stays in clear so that a slot can be sized, checked for tearing
// and attributed before the key is tried, and a wrong key reads as
// bad_tag, not as garbage. Version 1 slots carried the dataset in clear.
//
// A write covers the header and the payload rounded up to 4096 bytes, in
// one pwrite, so a slot is never assembled from two writes; a write torn
// by a crash or read half-done by a peer fails the checksum (a CRC, not
// the tag, so that tearing and a foreign key are told apart).
const (
	headerSize = 512
	// blockSize is the O_DIRECT alignment used for buffers, offsets and
	// lengths: 4096 satisfies every logical block size in use (512, 4K).
	blockSize = 4096
	// maxNameLen bounds cluster and node names (a hostname is at most 64,
	// an FQDN 253; 128 covers the names people give nodes).
	maxNameLen = 128
	// nonceSize and tagSize are AES-GCM's standard sizes.
	nonceSize = 12
	tagSize   = 16

	formatVersion = 2

	offMagic    = 0
	offVersion  = 8
	offIndex    = 12
	offSlotSize = 16
	offGen      = 24
	offTime     = 32
	offLen      = 40
	offCRC      = 44
	offCluster  = 48
	offNode     = offCluster + maxNameLen
	offNonce    = offNode + maxNameLen
)

// newSealer returns the AEAD slots are sealed with. The key comes from
// core; hb-net takes the same lengths.
func newSealer(key []byte) (cipher.AEAD, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("the heartbeat key is %d bytes; it must be 16, 24 or 32 (core derives it from the cluster secret: is the secret set?)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("heartbeat key: %w", err)
	}
	return cipher.NewGCM(block)
}

var magic = [8]byte{'V', 'I', 'G', 'I', 'L', 'H', 'B', 0}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// slotHeader is a slot's header, decoded. Len is the sealed payload's
// length (the dataset's plus tagSize).
type slotHeader struct {
	Index    uint32
	SlotSize uint64
	Gen      uint64
	Time     int64
	Len      uint32
	Cluster  string
	Node     string
}

// encodeSlot writes h and payload, sealed with aead under a fresh random
// nonce, into buf (len(buf) must hold them, rounded up to blockSize) and
// returns the length to write: header and sealed payload rounded up to
// blockSize, the tail zeroed so nothing of an older, longer payload
// lingers on disk. payload must not alias buf.
func encodeSlot(buf []byte, h slotHeader, payload []byte, aead cipher.AEAD) int {
	sealed := len(payload) + tagSize
	n := roundUp(headerSize + sealed)
	clear(buf[:n])
	copy(buf[offMagic:], magic[:])
	le := binary.LittleEndian
	le.PutUint32(buf[offVersion:], formatVersion)
	le.PutUint32(buf[offIndex:], h.Index)
	le.PutUint64(buf[offSlotSize:], h.SlotSize)
	le.PutUint64(buf[offGen:], h.Gen)
	le.PutUint64(buf[offTime:], uint64(h.Time))
	le.PutUint32(buf[offLen:], uint32(sealed))
	copy(buf[offCluster:offCluster+maxNameLen], h.Cluster)
	copy(buf[offNode:offNode+maxNameLen], h.Node)
	nonce := buf[offNonce : offNonce+nonceSize]
	_, _ = rand.Read(nonce) // never fails (crypto/rand crashes the program rather)
	// The CRC field is still zero: the associated data is the header as
	// decodeSlot rebuilds it.
	aead.Seal(buf[headerSize:headerSize], nonce, payload, buf[:headerSize])
	le.PutUint32(buf[offCRC:], slotChecksum(buf[:headerSize+sealed]))
	return n
}

// slotChecksum is the CRC32C of a slot's header and payload, the checksum
// field counted as zero.
func slotChecksum(b []byte) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:offCRC])
	c = crc32.Update(c, castagnoli, zero[:])
	return crc32.Update(c, castagnoli, b[offCRC+4:])
}

// slotEmpty reports whether b holds a slot nobody has written: all zeros
// where the magic goes (a new device, or one wiped).
func slotEmpty(b []byte) bool {
	return bytes.Equal(b[offMagic:offMagic+len(magic)], make([]byte, len(magic)))
}

// rejection says why a slot's content cannot be trusted. Kind is stable
// across reads (it keys the rate limit); Reason is for the operator.
type rejection struct {
	Kind, Reason string
}

// identity reports whether the slot passed its checksum but is not one
// this node can take: another cluster's, node's, slot size's or key's. It
// is what the writer wrote, a fact about the configuration, not a torn
// write, so reading it again is no use.
func (r *rejection) identity() bool {
	switch r.Kind {
	case "cluster", "node", "slot_size", "bad_tag":
		return true
	}
	return false
}

// class is the reject's class word, the first word of the event's Reason
// (core counts rejects by it): hb-net's words where the fault is the same.
func (r *rejection) class() string {
	switch r.Kind {
	case "magic", "length", "checksum":
		return "malformed"
	case "cluster", "node", "slot_size":
		return "foreign"
	}
	return r.Kind // bad_tag, unencrypted, version
}

// event is the reject as the heartbeat event's Reason: "class: details".
func (r *rejection) event() string { return r.class() + ": " + r.Reason }

// peekLen checks what can be checked from the first block of a slot (magic,
// version, a possible length) and returns how many bytes the whole slot
// takes, so the caller knows how much to read. maxSealed is the room the
// slot has after its header.
func peekLen(b []byte, maxSealed int) (int, *rejection) {
	if !bytes.Equal(b[offMagic:offMagic+len(magic)], magic[:]) {
		return 0, &rejection{"magic", "the slot holds no vigil heartbeat (bad magic): check offset and that no other tool writes this device"}
	}
	switch v := binary.LittleEndian.Uint32(b[offVersion:]); {
	case v == 1:
		return 0, &rejection{"unencrypted", "the slot is in format version 1, whose dataset is not encrypted; this node reads version 2 only: upgrade vigil on every node sharing this device"}
	case v != formatVersion:
		return 0, &rejection{"version", fmt.Sprintf("slot format version %d is not understood (this node reads %d): run the same vigil version on every node", v, formatVersion)}
	}
	n := binary.LittleEndian.Uint32(b[offLen:])
	if n < tagSize || uint64(n) > uint64(maxSealed) {
		return 0, &rejection{"length", fmt.Sprintf("impossible payload length %d for a %d-byte slot (torn or corrupt slot)", n, maxSealed+headerSize)}
	}
	return headerSize + int(n), nil
}

// expect is what a reader knows must be in a slot.
type expect struct {
	Index    uint32
	SlotSize uint64
	Cluster  string
	Node     string
}

// decodeSlot checks a whole slot (b holds at least the length peekLen
// returned) and returns its header and the dataset, opened in place: it
// aliases b, and b's payload bytes are overwritten whatever the outcome.
// The checksum is checked before any identity field so that a torn header
// is reported as torn, not as a foreign node; the identity fields before
// the tag so that another cluster's slot (under another key) is reported
// as that, with the names in it. Nothing in a slot is returned unless the
// tag verifies.
func decodeSlot(b []byte, want expect, aead cipher.AEAD) (slotHeader, []byte, *rejection) {
	n, rej := peekLen(b, int(want.SlotSize)-headerSize)
	if rej != nil {
		return slotHeader{}, nil, rej
	}
	le := binary.LittleEndian
	if got := slotChecksum(b[:n]); got != le.Uint32(b[offCRC:]) {
		return slotHeader{}, nil, &rejection{"checksum", "checksum mismatch: torn or corrupt slot, ignored"}
	}
	h := slotHeader{
		Index:    le.Uint32(b[offIndex:]),
		SlotSize: le.Uint64(b[offSlotSize:]),
		Gen:      le.Uint64(b[offGen:]),
		Time:     int64(le.Uint64(b[offTime:])),
		Len:      le.Uint32(b[offLen:]),
		Cluster:  cString(b[offCluster : offCluster+maxNameLen]),
		Node:     cString(b[offNode : offNode+maxNameLen]),
	}
	switch {
	case h.Cluster != want.Cluster:
		return h, nil, &rejection{"cluster", fmt.Sprintf("slot %d belongs to cluster %q, not %q: two clusters share this device (give each its own dev or offset)", want.Index, h.Cluster, want.Cluster)}
	case h.Node != want.Node || h.Index != want.Index:
		return h, nil, &rejection{"node", fmt.Sprintf("slot %d holds node %q (index %d), expected %q: list nodes in the same order on every node", want.Index, h.Node, h.Index, want.Node)}
	case h.SlotSize != want.SlotSize:
		return h, nil, &rejection{"slot_size", fmt.Sprintf("slot %d was written with slot_size %d, this node uses %d: set the same slot_size on every node", want.Index, h.SlotSize, want.SlotSize)}
	}
	var aad [headerSize]byte
	copy(aad[:], b[:headerSize])
	clear(aad[offCRC : offCRC+4])
	sealed := b[headerSize:n]
	payload, err := aead.Open(sealed[:0], b[offNonce:offNonce+nonceSize], sealed, aad[:])
	if err != nil {
		return h, nil, &rejection{"bad_tag", fmt.Sprintf("slot %d does not open with this node's heartbeat key (a node with another cluster secret, or a forged slot): set the same secret on every node", want.Index)}
	}
	if payload == nil {
		payload = sealed[:0] // an empty dataset is not an empty slot
	}
	return h, payload, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func roundUp(n int) int {
	return (n + blockSize - 1) / blockSize * blockSize
}
