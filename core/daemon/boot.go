package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/cluster"
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

func (d *Daemon) seenPath() string { return filepath.Join(d.cfg.StateDir, "peers-seen.json") }

// restoreSeen gives the view what a former life of the daemon accepted
// from each peer, so a replay captured before the restart stays a replay.
func (d *Daemon) restoreSeen() {
	b, err := os.ReadFile(d.seenPath())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var seen map[string]cluster.Seen
	if err == nil {
		err = json.Unmarshal(b, &seen)
	}
	if err != nil {
		d.log.Error("unreadable record of the peers' last datasets; starting without it", "path", d.seenPath(), "error", err)
		return
	}
	d.view.Restore(seen)
}

// seenLoop keeps the record restoreSeen reads, off the heartbeat path:
// once a second, when it changed.
func (d *Daemon) seenLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last map[string]cluster.Seen
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seen := d.view.Seen()
		if maps.Equal(seen, last) {
			continue
		}
		b, err := json.Marshal(seen)
		if err == nil {
			err = action.WriteFileAtomic(d.seenPath(), b, 0o600, time.Time{})
		}
		if err != nil {
			d.log.Error("persist the peers' last datasets", "error", err)
			continue
		}
		last = seen
	}
}
