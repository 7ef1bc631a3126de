package hbdisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The on-disk format. Slot i starts at offset + i*slot_size, i being the
// node's index in cluster.conf's nodes list. Every integer is little-endian
// at a fixed offset, so a slot can be read by hand (xxd) when a cluster
// misbehaves:
//
//	off  size  field
//	  0     8  magic "VIGILHB\x00"
//	  8     4  format version (1)
//	 12     4  slot index (the writer's position in nodes)
//	 16     8  slot size the writer was configured with, in bytes
//	 24     8  generation: +1 on every write; a fresh start resumes above
//	           both the slot's last value and the wall clock in nanoseconds,
//	           so readers never see it go backwards across restarts
//	 32     8  timestamp, unix nanoseconds on the writer's clock
//	           (informative: peers' clocks are never compared)
//	 40     4  payload length in bytes
//	 44     4  CRC32C (Castagnoli) over the header, this field read as
//	           zero, and the payload
//	 48   128  cluster name, NUL-padded
//	176   128  node name, NUL-padded
//	304   208  reserved, zero
//	512     n  payload: the dataset, as core handed it
//
// A write covers the header and the payload rounded up to 4096 bytes, in
// one pwrite, so a slot is never assembled from two writes; a write torn
// by a crash or read half-done by a peer fails the checksum.
const (
	headerSize = 512
	// blockSize is the O_DIRECT alignment used for buffers, offsets and
	// lengths: 4096 satisfies every logical block size in use (512, 4K).
	blockSize = 4096
	// maxNameLen bounds cluster and node names (a hostname is at most 64,
	// an FQDN 253; 128 covers the names people give nodes).
	maxNameLen = 128

	formatVersion = 1

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
)

var magic = [8]byte{'V', 'I', 'G', 'I', 'L', 'H', 'B', 0}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// slotHeader is a slot's header, decoded.
type slotHeader struct {
	Index    uint32
	SlotSize uint64
	Gen      uint64
	Time     int64
	Len      uint32
	Cluster  string
	Node     string
}

// encodeSlot writes h and payload into buf (len(buf) must hold them, rounded
// up to blockSize) and returns the length to write: header and payload
// rounded up to blockSize, the tail zeroed so nothing of an older, longer
// payload lingers on disk.
func encodeSlot(buf []byte, h slotHeader, payload []byte) int {
	n := roundUp(headerSize + len(payload))
	clear(buf[:n])
	copy(buf[offMagic:], magic[:])
	le := binary.LittleEndian
	le.PutUint32(buf[offVersion:], formatVersion)
	le.PutUint32(buf[offIndex:], h.Index)
	le.PutUint64(buf[offSlotSize:], h.SlotSize)
	le.PutUint64(buf[offGen:], h.Gen)
	le.PutUint64(buf[offTime:], uint64(h.Time))
	le.PutUint32(buf[offLen:], uint32(len(payload)))
	copy(buf[offCluster:offCluster+maxNameLen], h.Cluster)
	copy(buf[offNode:offNode+maxNameLen], h.Node)
	copy(buf[headerSize:], payload)
	le.PutUint32(buf[offCRC:], slotChecksum(buf[:headerSize+len(payload)]))
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

// identity reports whether the slot verified but belongs to someone else:
// a fact about the configuration, not a torn write.
func (r *rejection) identity() bool {
	return r.Kind == "cluster" || r.Kind == "node" || r.Kind == "slot_size"
}

// peekLen checks what can be checked from the first block of a slot (magic,
// version, a possible length) and returns how many bytes the whole slot
// takes, so the caller knows how much to read.
func peekLen(b []byte, maxPayload int) (int, *rejection) {
	if !bytes.Equal(b[offMagic:offMagic+len(magic)], magic[:]) {
		return 0, &rejection{"magic", "the slot holds no vigil heartbeat (bad magic): check offset and that no other tool writes this device"}
	}
	if v := binary.LittleEndian.Uint32(b[offVersion:]); v != formatVersion {
		return 0, &rejection{"version", fmt.Sprintf("slot format version %d is not understood (this node reads %d): run the same vigil version on every node", v, formatVersion)}
	}
	n := binary.LittleEndian.Uint32(b[offLen:])
	if uint64(n) > uint64(maxPayload) {
		return 0, &rejection{"length", fmt.Sprintf("impossible payload length %d for a %d-byte slot (torn or corrupt slot)", n, maxPayload+headerSize)}
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
// returned) and returns its header and payload; the payload aliases b. The
// checksum is checked before any identity field so that a torn header is
// reported as torn, not as a foreign node.
func decodeSlot(b []byte, want expect) (slotHeader, []byte, *rejection) {
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
	return h, b[headerSize:n], nil
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
