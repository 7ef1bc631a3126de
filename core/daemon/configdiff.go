package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/journal"
)

// configEntry is the journal's record of a config event: the version now
// in force and its diff against the last version journaled (kept under
// the journal's directory, so a change made while vigild was down shows
// too). A reload that changed nothing is not recorded.
func (d *Daemon) configEntry(ev api.Event) (journal.Entry, bool) {
	e := journal.Entry{Time: ev.Time, Kind: "config", Node: ev.Node, Service: ev.Service}
	s, err := d.lookup(ev.Service)
	if err != nil {
		return e, false
	}
	d.mu.Lock()
	content, version := s.version.Content, s.version.Version
	d.mu.Unlock()
	if content == nil {
		return e, false
	}
	path := filepath.Join(d.cfg.StateDir, "journal", "configs", ev.Service)
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, content) {
		return e, false
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
		if werr := action.WriteFileAtomic(path, content, 0o600, ev.Time); werr != nil {
			d.log.Error("journal: keep the config's copy", "service", ev.Service, "error", werr)
		}
	}
	if old == nil {
		e.Message = fmt.Sprintf("version %d first recorded", version)
		return e, true
	}
	diff := lineDiff(string(old), string(content))
	e.Message = fmt.Sprintf("version %d: %s", version, strings.Join(diff, "; "))
	e.Data, _ = json.Marshal(map[string]any{"version": version, "diff": diff})
	return e, true
}

// lineDiff lists the lines removed (-) and added (+) from a to b, in
// order (a longest common subsequence of lines; configs are short).
func lineDiff(a, b string) []string {
	x, y := strings.Split(strings.TrimRight(a, "\n"), "\n"), strings.Split(strings.TrimRight(b, "\n"), "\n")
	if len(x)*len(y) > 4_000_000 {
		return []string{fmt.Sprintf("-%d lines", len(x)), fmt.Sprintf("+%d lines", len(y))}
	}
	// lcs[i][j]: the longest common subsequence of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "-"+x[i])
			i++
		default:
			out = append(out, "+"+y[j])
			j++
		}
	}
	return out
}
