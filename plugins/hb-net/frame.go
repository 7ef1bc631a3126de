package hbnet

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A frame is what one node sends another, inside memberlist's encrypted
// user message:
//
//	"VGHB" | version (1) | name length (1) | sender name | dataset length (4, big endian) | dataset
//
// memberlist's NotifyMsg does not say who sent a message, so the frame
// carries the sender's name; the dataset length lets the receiver refuse
// a frame that lost bytes instead of passing on a truncated dataset.
const (
	frameMagic   = "VGHB"
	frameVersion = 1
	maxNameLen   = 255
	frameHeader  = len(frameMagic) + 1 + 1 + 4 // without the name
)

var errFrame = errors.New("malformed frame")

// encodeFrame frames a dataset. sender is at most maxNameLen bytes
// (parseSettings checks node names).
func encodeFrame(sender string, dataset []byte) []byte {
	b := make([]byte, 0, frameHeader+len(sender)+len(dataset))
	b = append(b, frameMagic...)
	b = append(b, frameVersion, byte(len(sender)))
	b = append(b, sender...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(dataset)))
	return append(b, dataset...)
}

// decodeFrame returns the sender and the dataset of a frame. The dataset
// aliases b.
func decodeFrame(b []byte) (sender string, dataset []byte, err error) {
	if len(b) < frameHeader || string(b[:len(frameMagic)]) != frameMagic {
		return "", nil, fmt.Errorf("%w: no %s header", errFrame, frameMagic)
	}
	b = b[len(frameMagic):]
	if b[0] != frameVersion {
		return "", nil, fmt.Errorf("%w: version %d, this node speaks %d (upgrade the older node)", errFrame, b[0], frameVersion)
	}
	n := int(b[1])
	b = b[2:]
	if n == 0 || len(b) < n+4 {
		return "", nil, fmt.Errorf("%w: bad sender name length %d", errFrame, n)
	}
	sender = string(b[:n])
	b = b[n:]
	size := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(len(b)) != uint64(size) {
		return sender, nil, fmt.Errorf("%w: dataset of %d bytes announced, %d received", errFrame, size, len(b))
	}
	return sender, b, nil
}
