package proto

// The framing of the status channel (resource.proto, OpenStatusChannel):
// each message is a 4-byte big-endian length, then that many bytes of
// protobuf. Core and the SDK both read and write it here, with the wire it
// frames, so the two ends cannot drift apart. Written by hand: make proto
// regenerates the *.pb.go files only.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	protobuf "google.golang.org/protobuf/proto"
)

// FrameVersion is the framing StatusChannelResponse.version names.
const FrameVersion = 1

// MaxFrame is the largest message either end sends or takes.
const MaxFrame = 16 << 20

// Errors ReadFrame returns for a frame it refuses; the connection cannot
// be trusted after ErrFrameTooLarge.
var (
	// ErrFrameTooLarge: the length says more than MaxFrame.
	ErrFrameTooLarge = errors.New("frame larger than 16 MiB")
	// ErrFrameMalformed: the bytes are not the message expected, or
	// more bytes came than the length said.
	ErrFrameMalformed = errors.New("malformed frame")
)

// WriteFrame writes m as one frame in a single write, marshalled into buf's
// storage, and returns the buffer for the next call.
func WriteFrame(w io.Writer, buf []byte, m protobuf.Message) ([]byte, error) {
	buf = append(buf[:0], 0, 0, 0, 0)
	buf, err := protobuf.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return buf, fmt.Errorf("marshal %T: %w", m, err)
	}
	n := len(buf) - 4
	if n > MaxFrame {
		return buf, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	binary.BigEndian.PutUint32(buf, uint32(n))
	_, err = w.Write(buf)
	return buf, err
}

// ReadFrame reads one frame into buf's storage (grown as needed) and
// unmarshals it into m, and returns the buffer for the next call. One
// message is in flight on a connection at a time, so bytes beyond the
// frame are the peer's mistake: ErrFrameMalformed.
func ReadFrame(r io.Reader, buf []byte, m protobuf.Message) ([]byte, error) {
	if cap(buf) < 512 {
		buf = make([]byte, 4096)
	}
	buf = buf[:cap(buf)]
	got, err := io.ReadAtLeast(r, buf, 4)
	if err != nil {
		return buf, err
	}
	n := int(binary.BigEndian.Uint32(buf))
	if n > MaxFrame {
		return buf, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	if got > 4+n {
		return buf, fmt.Errorf("%w: %d bytes past a %d-byte message", ErrFrameMalformed, got-4-n, n)
	}
	if 4+n > len(buf) {
		grown := make([]byte, 4+n)
		copy(grown, buf[:got])
		buf = grown
	}
	if _, err := io.ReadFull(r, buf[got:4+n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	if err := protobuf.Unmarshal(buf[4:4+n], m); err != nil {
		return buf, fmt.Errorf("%w: %v", ErrFrameMalformed, err)
	}
	return buf, nil
}
