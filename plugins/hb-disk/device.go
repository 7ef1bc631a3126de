package hbdisk

import (
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// device is the open heartbeat device and the page-aligned buffers its
// I/O goes through. It belongs to the I/O goroutine once Run has started it.
type device struct {
	path string
	fd   int
	// direct is false when the device refused O_DIRECT: reads may then be
	// served from the page cache, which fadvise drops before each read.
	direct bool
	size   int64
	// wbuf and rbuf are anonymous mappings, so page-aligned as O_DIRECT
	// requires, each one slot long.
	wbuf, rbuf []byte
}

// openDevice opens path for slot I/O, O_DIRECT|O_DSYNC unless the device
// (or noDirect) says otherwise, and maps the buffers. O_DSYNC makes every
// write durable before the next read cycle; O_DIRECT makes reads see what
// another host wrote rather than this host's cached copy.
func openDevice(path string, slotSize, probeOff int64, noDirect bool) (*device, error) {
	d := &device{path: path, fd: -1}
	var err error
	if d.wbuf, err = mapBuffer(slotSize); err != nil {
		return nil, err
	}
	if d.rbuf, err = mapBuffer(slotSize); err != nil {
		d.close()
		return nil, err
	}
	const base = unix.O_RDWR | unix.O_CLOEXEC | unix.O_DSYNC
	if !noDirect {
		d.fd, err = unix.Open(path, base|unix.O_DIRECT, 0)
		switch {
		case err == nil:
			d.direct = true
			// Some filesystems accept O_DIRECT at open and refuse it at
			// the first I/O; find out now, on a read, which is harmless.
			if _, err := unix.Pread(d.fd, d.rbuf[:blockSize], probeOff); errors.Is(err, unix.EINVAL) {
				unix.Close(d.fd)
				d.fd, d.direct = -1, false
			}
		case errors.Is(err, unix.EINVAL):
			// tmpfs on older kernels and some FUSE filesystems: fall
			// back below.
		default:
			d.close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	if d.fd < 0 {
		if d.fd, err = unix.Open(path, base, 0); err != nil {
			d.close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	// Seek works for block devices too, where stat reports size 0.
	if d.size, err = unix.Seek(d.fd, 0, io.SeekEnd); err != nil {
		d.close()
		return nil, fmt.Errorf("size of %s: %w", path, err)
	}
	return d, nil
}

func mapBuffer(n int64) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("map a %d-byte I/O buffer: %w", n, err)
	}
	return b, nil
}

func (d *device) close() {
	if d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
	for _, b := range [][]byte{d.wbuf, d.rbuf} {
		if b != nil {
			_ = unix.Munmap(b)
		}
	}
	d.wbuf, d.rbuf = nil, nil
}

// writeAt writes b whole at off.
func (d *device) writeAt(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(d.fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %s at %d: %w", d.path, off, err)
		}
		if n == 0 {
			return fmt.Errorf("write %s at %d: %w", d.path, off, io.ErrShortWrite)
		}
		// An O_DIRECT write completes whole or fails; only a buffered
		// one can come back short, and its remainder needs no alignment.
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// readAt fills b from off. Without O_DIRECT it first drops the range from
// the page cache, so a block device shows another host's latest write.
func (d *device) readAt(b []byte, off int64) error {
	if !d.direct {
		_ = unix.Fadvise(d.fd, off, int64(len(b)), unix.FADV_DONTNEED)
	}
	for len(b) > 0 {
		n, err := unix.Pread(d.fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", d.path, off, err)
		}
		if n == 0 {
			return fmt.Errorf("read %s at %d: %w", d.path, off, io.ErrUnexpectedEOF)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// A peer's write in flight shows as a checksum mismatch for a moment: a
// slot that does not verify is read again, tornRetries times tornRetryDelay
// apart, and reported only if it never does.
const (
	tornRetries    = 2
	tornRetryDelay = 5 * time.Millisecond
)
