// Package journal owns a node's event journal: an append-only record of
// what happened on the node (peers joined and lost, fences, claims, starts
// and stops, failovers and their phases, monitor verdicts, operator
// actions, config changes), kept on disk as JSON lines under the state
// directory, bounded in size by rotation, and read back after a restart.
//
// It decides nothing and knows nothing of the daemon: vigild appends, the
// API reads. Appending never blocks on a reader: a slow follower misses
// entries (it can read them back from the files).
package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entry is one journal record.
type Entry struct {
	// Seq numbers the node's entries, continued across restarts.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is what happened: joined, lost, fence, fence_failed,
	// fence_confirm, fence_check, claim, start, stop, failover, monitor,
	// operator, config, quorum, warn, alert_failed...
	Kind    string `json:"kind"`
	Node    string `json:"node,omitempty"`
	Service string `json:"service,omitempty"`
	Message string `json:"message,omitempty"`
	// UID is the operator's uid, for operator actions.
	UID *int `json:"uid,omitempty"`
	// Data carries a kind's details (a failover's phases, a config diff).
	Data json.RawMessage `json:"data,omitempty"`
}

// Config configures a Journal.
type Config struct {
	// Dir holds the journal files. Required.
	Dir string
	// MaxFileSize is the size past which the current file is rotated.
	// Default 4 MiB.
	MaxFileSize int64
	// MaxFiles is how many rotated files are kept besides the current
	// one. Default 4 (so at most 20 MiB with the default size).
	MaxFiles int
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// Journal is one node's journal. Safe for concurrent use.
type Journal struct {
	cfg  Config
	mu   sync.Mutex
	f    *os.File
	size int64
	seq  uint64
	subs map[chan Entry]struct{}
}

const current = "events.jsonl"

// rotated is the name of the n-th rotated file (1 is the newest).
func rotated(n int) string { return "events." + strconv.Itoa(n) + ".jsonl" }

// Open opens (or creates) the journal in cfg.Dir, continuing its numbering.
func Open(cfg Config) (*Journal, error) {
	if cfg.Dir == "" {
		return nil, errors.New("journal: no directory given")
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = 4 << 20
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", cfg.Dir, err)
	}
	j := &Journal{cfg: cfg, subs: map[chan Entry]struct{}{}}
	j.seq = j.lastSeq()
	if err := j.openCurrent(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *Journal) openCurrent() error {
	path := filepath.Join(j.cfg.Dir, current)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("journal: stat %s: %w", path, err)
	}
	j.f, j.size = f, fi.Size()
	return nil
}

// lastSeq is the highest sequence number on disk (0 for none): the newest
// file that holds a readable entry has it on its last readable line.
func (j *Journal) lastSeq() uint64 {
	names := append([]string{current}, j.rotatedNames()...)
	for _, name := range names {
		var last uint64
		j.scanFile(name, func(e Entry) bool { last = max(last, e.Seq); return true })
		if last > 0 {
			return last
		}
	}
	return 0
}

// rotatedNames lists the rotated files, newest first.
func (j *Journal) rotatedNames() []string {
	var out []string
	for n := 1; n <= j.cfg.MaxFiles; n++ {
		if _, err := os.Stat(filepath.Join(j.cfg.Dir, rotated(n))); err == nil {
			out = append(out, rotated(n))
		}
	}
	return out
}

// Append records e (its Seq set, its Time set when zero) and tells the
// followers. It returns the entry as written.
func (j *Journal) Append(e Entry) (Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return e, errors.New("journal: closed")
	}
	j.seq++
	e.Seq = j.seq
	if e.Time.IsZero() {
		e.Time = j.cfg.Now()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return e, fmt.Errorf("journal: encode entry: %w", err)
	}
	b = append(b, '\n')
	if j.size > 0 && j.size+int64(len(b)) > j.cfg.MaxFileSize {
		if err := j.rotateLocked(); err != nil {
			return e, err
		}
	}
	n, err := j.f.Write(b)
	j.size += int64(n)
	if err != nil {
		return e, fmt.Errorf("journal: write: %w", err)
	}
	for ch := range j.subs {
		select {
		case ch <- e:
		default: // a slow follower misses it; it is on disk
		}
	}
	return e, nil
}

// rotateLocked shifts events.N.jsonl to N+1 (dropping the oldest) and
// starts a new current file.
func (j *Journal) rotateLocked() error {
	j.f.Close()
	j.f = nil
	os.Remove(filepath.Join(j.cfg.Dir, rotated(j.cfg.MaxFiles)))
	for n := j.cfg.MaxFiles - 1; n >= 1; n-- {
		os.Rename(filepath.Join(j.cfg.Dir, rotated(n)), filepath.Join(j.cfg.Dir, rotated(n+1)))
	}
	if err := os.Rename(filepath.Join(j.cfg.Dir, current), filepath.Join(j.cfg.Dir, rotated(1))); err != nil {
		return fmt.Errorf("journal: rotate: %w", err)
	}
	return j.openCurrent()
}

// Filter selects entries.
type Filter struct {
	// Since: only entries at or after it (zero: all).
	Since time.Time
	// Service: only this service's entries ("": all).
	Service string
	// Kinds: only these kinds (empty: all).
	Kinds []string
	// Limit keeps the last Limit entries (0: all).
	Limit int
}

// Match reports whether e passes f.
func (f Filter) Match(e Entry) bool {
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if f.Service != "" && e.Service != f.Service {
		return false
	}
	if len(f.Kinds) > 0 {
		for _, k := range f.Kinds {
			if k == e.Kind {
				return true
			}
		}
		return false
	}
	return true
}

// Read returns the entries that pass f, oldest first, from every file.
// A torn last line (a crash in the middle of a write) is skipped.
func (j *Journal) Read(f Filter) ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	names := j.rotatedNames()
	var out []Entry
	for i := len(names) - 1; i >= 0; i-- {
		j.scanFile(names[i], func(e Entry) bool {
			if f.Match(e) {
				out = append(out, e)
			}
			return true
		})
	}
	j.scanFile(current, func(e Entry) bool {
		if f.Match(e) {
			out = append(out, e)
		}
		return true
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, nil
}

func (j *Journal) scanFile(name string, fn func(Entry) bool) {
	fh, err := os.Open(filepath.Join(j.cfg.Dir, name))
	if err != nil {
		return
	}
	defer fh.Close()
	r := bufio.NewReaderSize(fh, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 && (err == nil || errors.Is(err, io.EOF)) {
			var e Entry
			if json.Unmarshal(line, &e) == nil && strings.TrimSpace(e.Kind) != "" {
				if !fn(e) {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Subscribe returns a channel of the entries appended from now on, until
// cancel is called.
func (j *Journal) Subscribe() (ch <-chan Entry, cancel func()) {
	c := make(chan Entry, 256)
	j.mu.Lock()
	j.subs[c] = struct{}{}
	j.mu.Unlock()
	var once sync.Once
	return c, func() {
		once.Do(func() {
			j.mu.Lock()
			delete(j.subs, c)
			j.mu.Unlock()
			close(c)
		})
	}
}

// Close closes the journal's file; later appends fail.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
