package lab

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Descriptors inherited past stdin, stdout and stderr are not handed on to
// what the lab starts: a lab run under `flock /tmp/vigil-lab.lock` would
// otherwise pass the lock to every node's vigild and plugins, which keep
// it while the lab is up, and the next lab command waiting for the lock
// (its own `down` included) would wait forever.
func init() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
