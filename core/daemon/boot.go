package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/action"
)

// nextBoot numbers this daemon start. Peers order a node's datasets by
// (boot, generation), so a new boot must be greater than every earlier
// one whatever the wall clock does: the number is kept in the state
// directory and only grows (the first one, or one after the state
// directory was lost, starts from the Unix time in seconds, above any
// counter a former life of the node could have reached by restarts).
// rebooted reports whether the host booted since the last daemon start:
// the run directory (a tmpfs) holds no mark of this boot.
func nextBoot(stateDir, runDir string) (boot uint64, rebooted bool, err error) {
	path := filepath.Join(stateDir, "boot")
	var last uint64
	if b, err := os.ReadFile(path); err == nil {
		if last, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return 0, false, fmt.Errorf("boot counter %s is unreadable (%v): remove it to start a new count", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, false, fmt.Errorf("read boot counter: %w", err)
	}
	boot = max(last+1, uint64(time.Now().Unix()))
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return 0, false, err
	}
	if err := action.WriteFileAtomic(path, []byte(strconv.FormatUint(boot, 10)+"\n"), 0o600, time.Time{}); err != nil {
		return 0, false, fmt.Errorf("write boot counter: %w", err)
	}
	mark := filepath.Join(runDir, "host-booted")
	if _, err := os.Stat(mark); errors.Is(err, os.ErrNotExist) {
		rebooted = true
		if err := os.MkdirAll(runDir, 0o700); err != nil {
			return 0, false, err
		}
		if err := os.WriteFile(mark, nil, 0o600); err != nil {
			return 0, false, err
		}
	}
	return boot, rebooted, nil
}
