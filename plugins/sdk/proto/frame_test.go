package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrame_RoundTripReusesTheBuffer(t *testing.T) {
	var w bytes.Buffer
	want := &StatusResponse{Status: Status_STATUS_WARN, Log: []string{strings.Repeat("x", 10000)}, Label: "l"}
	buf, err := WriteFrame(&w, nil, want)
	if err != nil {
		t.Fatal(err)
	}
	var got StatusResponse
	if _, err := ReadFrame(&w, buf, &got); err != nil {
		t.Fatal(err)
	}
	if got.GetStatus() != want.GetStatus() || got.GetLabel() != "l" || got.GetLog()[0] != want.GetLog()[0] {
		t.Fatalf("read back %v", &got)
	}
}

func TestFrame_ReadRefuses(t *testing.T) {
	length := func(n uint32, body ...byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), body...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"a length past Max", length(MaxFrame + 1), ErrFrameTooLarge},
		{"bytes past the frame", length(0, 1, 2), ErrFrameMalformed},
		{"bytes that are not the message", length(2, 0xff, 0xff), ErrFrameMalformed},
		{"a frame cut short", length(10, 1), io.ErrUnexpectedEOF},
		{"a length cut short", []byte{0, 0}, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m StatusResponse
			if _, err := ReadFrame(bytes.NewReader(tc.in), nil, &m); !errors.Is(err, tc.want) {
				t.Fatalf("Read = %v, want %v", err, tc.want)
			}
		})
	}
}
