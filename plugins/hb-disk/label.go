package hbdisk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The device label: one block at `offset`, before slot 0, written once by
// InitDevice (`nodemgr hb-disk init --dev DEV`, as `sbd create`). Run
// refuses a device without it, or with another cluster's name, so a typo
// in dev never overwrites someone's data with slots:
//
//	off  size  field
//	  0     8  magic "VIGILHBL"
//	  8     4  label version (1)
//	 12     4  CRC32C (Castagnoli) of the block, this field read as zero
//	 16   128  cluster name, NUL-padded
//	144     8  when it was written, unix nanoseconds (informative)
//	152  3944  zero
const (
	labelSize    = blockSize
	labelVersion = 1

	offLabelVersion = 8
	offLabelCRC     = 12
	offLabelCluster = 16
	offLabelTime    = offLabelCluster + maxNameLen
)

var labelMagic = []byte("VIGILHBL")

// Errors of a device's label, for callers to branch on.
var (
	// ErrNoLabel: the device was never initialised for a heartbeat.
	ErrNoLabel = errors.New("no Vigil heartbeat label")
	// ErrForeignLabel: the device is another cluster's heartbeat device.
	ErrForeignLabel = errors.New("the heartbeat label names another cluster")
	// ErrHoldsData: InitDevice found data that is not a heartbeat's.
	ErrHoldsData = errors.New("the device holds data")
)

func encodeLabel(b []byte, cluster string, at time.Time) {
	clear(b[:labelSize])
	copy(b, labelMagic)
	binary.LittleEndian.PutUint32(b[offLabelVersion:], labelVersion)
	copy(b[offLabelCluster:offLabelCluster+maxNameLen], cluster)
	binary.LittleEndian.PutUint64(b[offLabelTime:], uint64(at.UnixNano()))
	binary.LittleEndian.PutUint32(b[offLabelCRC:], labelCRC(b))
}

func labelCRC(b []byte) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:offLabelCRC])
	c = crc32.Update(c, castagnoli, zero[:])
	return crc32.Update(c, castagnoli, b[offLabelCRC+4:labelSize])
}

// decodeLabel returns the cluster a label block names.
func decodeLabel(b []byte) (string, error) {
	if len(b) < labelSize || !bytes.Equal(b[:len(labelMagic)], labelMagic) {
		return "", ErrNoLabel
	}
	if v := binary.LittleEndian.Uint32(b[offLabelVersion:]); v != labelVersion {
		return "", fmt.Errorf("label version %d, this plugin reads %d: upgrade it", v, labelVersion)
	}
	if binary.LittleEndian.Uint32(b[offLabelCRC:]) != labelCRC(b) {
		return "", fmt.Errorf("%w: its checksum does not match (torn or overwritten)", ErrNoLabel)
	}
	return strings.TrimRight(string(b[offLabelCluster:offLabelCluster+maxNameLen]), "\x00"), nil
}

// checkLabel reads the label at sp.offset and refuses a device that is not
// this cluster's heartbeat device.
func checkLabel(d *device, sp spec) error {
	if _, err := unix.Pread(d.fd, d.rbuf[:labelSize], sp.offset); err != nil {
		return fmt.Errorf("read the label of %s: %w", sp.dev, err)
	}
	got, err := decodeLabel(d.rbuf[:labelSize])
	switch {
	case errors.Is(err, ErrNoLabel):
		return fmt.Errorf("%s: %s has no Vigil heartbeat label at offset %d (%w): it may hold someone's data, so nothing is written to it; if it is the shared heartbeat device, label it once, from one node: nodemgr hb-disk init --dev %s", sp.name, sp.dev, sp.offset, err, sp.dev)
	case err != nil:
		return fmt.Errorf("%s: %s: %w", sp.name, sp.dev, err)
	case got != sp.cluster:
		return fmt.Errorf("%s: %s is the heartbeat device of cluster %q, not %q (%w): fix dev, or relabel it with nodemgr hb-disk init --force once that cluster is gone", sp.name, sp.dev, got, sp.cluster, ErrForeignLabel)
	}
	return nil
}

// InitOptions says what InitDevice labels.
type InitOptions struct {
	// Dev is the device (or file) to label.
	Dev string
	// Cluster is the cluster's name, as in cluster.conf.
	Cluster string
	// Offset is the heartbeat's offset keyword: where the label goes.
	Offset int64
	// Force relabels a device holding data or another cluster's label.
	Force bool
}

// InitDevice writes the heartbeat label of o.Cluster on o.Dev. A device
// labelled for the same cluster is left as is (it reports false); one
// labelled for another cluster, or holding anything but zeros and
// heartbeat slots in its first MiB, is refused unless o.Force.
func InitDevice(o InitOptions) (written bool, err error) {
	if o.Cluster == "" || len(o.Cluster) > maxNameLen {
		return false, fmt.Errorf("cluster name %q: give 1 to %d bytes", o.Cluster, maxNameLen)
	}
	if o.Offset < 0 || o.Offset%blockSize != 0 {
		return false, fmt.Errorf("offset %d: use a multiple of 4096", o.Offset)
	}
	f, err := os.OpenFile(o.Dev, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", o.Dev, err)
	}
	defer f.Close()
	head := make([]byte, 1<<20)
	n, err := f.ReadAt(head, o.Offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read %s: %w", o.Dev, err)
	}
	if n < labelSize {
		return false, fmt.Errorf("%s holds %d bytes from offset %d: too small for a label and slots", o.Dev, n, o.Offset)
	}
	head = head[:n]
	if !o.Force {
		got, lerr := decodeLabel(head)
		switch {
		case lerr == nil && got == o.Cluster:
			return false, nil
		case lerr == nil:
			return false, fmt.Errorf("%s is the heartbeat device of cluster %q (%w): give another device, or --force once that cluster is gone", o.Dev, got, ErrForeignLabel)
		case !onlyZerosAndSlots(head):
			return false, fmt.Errorf("%s holds data at offset %d that is neither zeros nor heartbeat slots (%w): check it is the device you mean (a filesystem? a volume group?), then --force to overwrite it", o.Dev, o.Offset, ErrHoldsData)
		}
	}
	b := make([]byte, labelSize)
	encodeLabel(b, o.Cluster, time.Now())
	if _, err := f.WriteAt(b, o.Offset); err != nil {
		return false, fmt.Errorf("write the label on %s: %w", o.Dev, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("sync %s: %w", o.Dev, err)
	}
	return true, nil
}

// onlyZerosAndSlots reports whether b, read from a device, holds nothing
// but zeros and (unlabelled, older) heartbeat slots.
func onlyZerosAndSlots(b []byte) bool {
	for off := 0; off < len(b); off += blockSize {
		blk := b[off:min(off+blockSize, len(b))]
		if bytes.HasPrefix(blk, magic[:]) {
			return true // a heartbeat device of an older format: slots follow
		}
		for _, c := range blk {
			if c != 0 {
				return false
			}
		}
	}
	return true
}
