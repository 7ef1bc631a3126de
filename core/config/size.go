package config

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxFileSize is the largest service file or cluster.conf the parser
// reads. Real configs are a few KiB; the limit keeps a file written by
// mistake (or pushed by a peer) from taking a node's memory and time.
const MaxFileSize = 1 << 20

// ErrTooLarge is the kind of a file over MaxFileSize.
var ErrTooLarge = errors.New("config too large")

// checkSize refuses a file of n bytes when it is over MaxFileSize. The
// message names the file itself (File is left empty so that it reads
// "NAME is N bytes; ..." rather than repeating the name).
func checkSize(path string, n int64) error {
	if n <= MaxFileSize {
		return nil
	}
	return Errors{{
		Msg: fmt.Sprintf("%s is %d bytes; a config may be at most %d MiB: shorten it (long values can usually move to a file the service reads)",
			path, n, MaxFileSize>>20),
		Err: ErrTooLarge,
	}}.err()
}

// ReadFile reads a config file, refusing one over MaxFileSize without
// reading more than MaxFileSize+1 bytes of it (the path may name a device
// or a file still growing).
func ReadFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		n := int64(len(data))
		if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > n {
			n = st.Size()
		}
		return nil, checkSize(path, n)
	}
	return data, nil
}
