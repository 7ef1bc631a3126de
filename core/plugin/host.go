// Package plugin is the plugin host: it finds plugin binaries in the plugin
// directory, starts each one on first use (one process per binary, shared by
// every service), negotiates the protocol version, restarts a plugin that
// died, and converts between the wire (plugins/sdk/proto) and Go types. Nothing
// above this package sees protobuf types or go-plugin.
//
// It decides nothing about services: callers say which resource to start,
// stop or evaluate.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/status"
)

// BinaryPrefix starts the file name of every plugin binary.
const BinaryPrefix = "vigil-plugin-"

// Sentinel errors callers branch on.
var (
	// ErrUnknownType: no plugin in the directory serves the type.
	ErrUnknownType = errors.New("no plugin serves this resource type")
	// ErrPluginDied: the plugin process went away during the call; it
	// will be restarted on next use.
	ErrPluginDied = errors.New("plugin process died")
	// ErrProtocol: the plugin speaks a protocol version this host does
	// not know.
	ErrProtocol = errors.New("plugin protocol version not supported")
	// ErrInsecurePlugin: a plugin binary, or the plugin directory, may
	// be changed by someone other than root; vigil runs it as root.
	ErrInsecurePlugin = errors.New("plugin is not safe to run as root")
)

// rescanAfter spaces the retries of plugins that failed to start.
const rescanAfter = 5 * time.Second

// Config configures a Host. The zero value of every field but Dir is
// usable.
type Config struct {
	// Dir is the plugin directory, searched for vigil-plugin-* executables.
	// It and every binary in it must be owned by root (or the user vigil
	// runs as) and writable by no one else: vigil runs them as root.
	Dir string
	// SocketDir is where plugins make their unix sockets. It is created
	// 0700 when missing. Default: a private directory the host makes with
	// os.MkdirTemp on first use and removes on Close; never a shared
	// directory such as /tmp itself.
	SocketDir string
	// Logger receives the host's lines and those forwarded from plugins,
	// each under the plugin's name. Default: hclog on stderr at warn.
	Logger hclog.Logger
	// StartTimeout bounds a plugin's start-up and handshake. Default 10s.
	StartTimeout time.Duration
	// StatusTimeout bounds a status or validate call when the caller's
	// context has no earlier deadline. Default 10s.
	StatusTimeout time.Duration
	// ActionTimeout bounds a start or stop call likewise. Default 5m.
	ActionTimeout time.Duration
}

// Host owns the plugin processes.
//
// Plugins start outside h.mu: one that hangs in its handshake must not
// stall lookups of the others (status, fencing and config parsing all look
// types up). A lookup answers as soon as a plugin serving its type has, and
// waits for every plugin only for a type none serves yet.
type Host struct {
	cfg Config
	log hclog.Logger
	// ctx bounds the scans' calls; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// scans counts the goroutines scans started; Close waits for them.
	scans sync.WaitGroup

	mu      sync.Mutex
	plugins map[string]*instance // by binary name
	// names are the binaries the last discovery found safe to run.
	names []string
	// refused are the binaries the last discovery would not run, and why.
	refused map[string]error
	scanned bool
	// failedAt is when the last scan left a plugin out; zero when none.
	failedAt time.Time
	// running is the scan under way, nil when none.
	running *scanRun
	byType  map[string]*instance
	// conflicts are types two plugins claim: looking one up fails, the
	// others still work.
	conflicts map[string]error
	// changed is closed, and replaced, whenever the index grows or a
	// scan ends: lookups waiting for a type wake on it.
	changed chan struct{}
	// socketDir is the directory made for Config.SocketDir's default.
	socketDir string
	closed    bool
	// closing is set by Close before it kills the processes (pluginLog);
	// logWith holds LogWith's pairs.
	closing atomic.Bool
	logWith atomic.Value
}

// scanRun is one scan of the plugin directory.
type scanRun struct {
	done chan struct{} // closed when every plugin has answered or failed
}

// New returns a Host for cfg; it starts nothing.
func New(cfg Config) *Host {
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "vigil", Level: hclog.Warn, Output: os.Stderr})
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.StatusTimeout == 0 {
		cfg.StatusTimeout = 10 * time.Second
	}
	if cfg.ActionTimeout == 0 {
		cfg.ActionTimeout = 5 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{cfg: cfg, log: cfg.Logger.Named("plugin"), ctx: ctx, cancel: cancel,
		plugins: map[string]*instance{}, changed: make(chan struct{})}
}

// Keyword declares one configuration keyword, as a plugin sent it.
type Keyword struct {
	Name       string
	Type       string
	Default    string
	Required   bool
	Aliases    []string
	Help       string
	Candidates []string
}

// TypeInfo is one resource type a plugin serves.
type TypeInfo struct {
	Type           string
	SectionAliases []string
	Keywords       []Keyword
	Help           string
}

// Info is what a plugin said of itself at handshake.
type Info struct {
	// Name is the plugin binary's name without the vigil-plugin- prefix.
	Name string
	Path string
	// Version is the plugin's own version.
	Version string
	// Protocol is the negotiated protocol version.
	Protocol        int
	Types           []TypeInfo
	ServiceKeywords []Keyword
}

// Discover lists the plugin binaries in the plugin directory that are
// safe to run, by name. Names with a dot (vigil-plugin-fs.old,
// .dpkg-old) are not plugins: a leftover copy must not claim its
// original's types.
func (h *Host) Discover() ([]string, error) {
	names, _, err := h.discover()
	return names, err
}

// discover lists the plugin binaries, and those it refuses with why.
func (h *Host) discover() (names []string, refused map[string]error, err error) {
	fi, err := os.Stat(h.cfg.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read plugin directory %s: %w (set --plugin-dir or VIGIL_PLUGIN_DIR)", h.cfg.Dir, err)
	}
	if err := checkRootOnly(h.cfg.Dir, fi); err != nil {
		return nil, nil, fmt.Errorf("plugin directory %s: %w", h.cfg.Dir, err)
	}
	entries, err := os.ReadDir(h.cfg.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read plugin directory %s: %w (set --plugin-dir or VIGIL_PLUGIN_DIR)", h.cfg.Dir, err)
	}
	refused = map[string]error{}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, BinaryPrefix) || len(n) == len(BinaryPrefix) || strings.Contains(n, ".") {
			continue
		}
		// Stat, not Lstat: a symlink runs its target, so the target
		// is what must be safe.
		path := filepath.Join(h.cfg.Dir, n)
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			continue
		}
		if err := checkRootOnly(path, fi); err != nil {
			refused[n] = fmt.Errorf("plugin %s: %w", path, err)
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, refused, nil
}

// checkRootOnly refuses a file or directory that someone other than root
// (or the user vigil runs as: root, for vigild) could change.
func checkRootOnly(path string, fi os.FileInfo) error {
	uid := -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid = int(st.Uid)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 && (uid == 0 || uid == os.Geteuid()) {
		return nil
	}
	return fmt.Errorf("%w: %s is mode %04o, owned by uid %d; vigil runs plugins as root, so only root may change them: chmod go-w %s; chown root %s",
		ErrInsecurePlugin, path, perm, uid, path, path)
}

// Plugins starts every plugin of the directory (those not running yet) and
// returns what each said of itself. A plugin that fails to start, or that
// discovery refused, is reported in errs, keyed by binary name, and left
// out of the list.
func (h *Host) Plugins(ctx context.Context) (infos []Info, errs map[string]error, err error) {
	h.mu.Lock()
	run, err := h.startScan(true)
	h.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	select {
	case <-run.done:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for the plugins to start: %w", ctx.Err())
	}
	h.mu.Lock()
	errs = map[string]error{}
	for n, err := range h.refused {
		errs[n] = err
	}
	for _, n := range h.names {
		inst, ok := h.plugins[n]
		if !ok {
			continue // closed meanwhile
		}
		info, err := inst.cachedInfo()
		if err != nil {
			errs[n] = err
			continue
		}
		infos = append(infos, info)
	}
	h.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	return infos, errs, nil
}

// startScan starts a scan when none runs and one is due (or force), and
// returns the scan under way, nil when none is. The plugins start in
// goroutines of their own; h.mu must be held.
func (h *Host) startScan(force bool) (*scanRun, error) {
	if h.closed {
		return nil, errors.New("plugin host is closed")
	}
	if h.running != nil {
		return h.running, nil
	}
	if !force && h.scanned && (h.failedAt.IsZero() || time.Since(h.failedAt) < rescanAfter) {
		return nil, nil
	}
	// Checked before anything starts: a socket directory others can
	// read is every plugin's problem, not one plugin's.
	if _, err := h.socketsLocked(); err != nil {
		return nil, err
	}
	names, refused, err := h.discover()
	if err != nil {
		return nil, err
	}
	for n, err := range refused {
		if _, known := h.refused[n]; !known {
			h.log.Error("plugin refused", "plugin", n, "error", err)
		}
	}
	h.names, h.refused = names, refused
	for _, n := range names {
		if _, ok := h.plugins[n]; !ok {
			h.plugins[n] = newInstance(h, n)
		}
	}
	run := &scanRun{done: make(chan struct{})}
	h.running = run
	insts := make([]*instance, 0, len(names))
	for _, n := range names {
		insts = append(insts, h.plugins[n])
	}
	var wg sync.WaitGroup
	for _, inst := range insts {
		wg.Add(1)
		h.scans.Add(1)
		go func() {
			defer h.scans.Done()
			defer wg.Done()
			info, err := inst.info(h.ctx)
			if err != nil {
				h.log.Error("plugin failed to start", "plugin", inst.binary, "error", err)
				return
			}
			// Indexed at once: a lookup of this plugin's types need
			// not wait for the slower ones.
			h.mu.Lock()
			for _, t := range info.Types {
				if _, taken := h.byType[t.Type]; !taken && h.conflicts[t.Type] == nil {
					if h.byType == nil {
						h.byType = map[string]*instance{}
					}
					h.byType[t.Type] = inst
				}
			}
			h.notify()
			h.mu.Unlock()
		}()
	}
	h.scans.Add(1)
	go func() {
		defer h.scans.Done()
		wg.Wait()
		h.mu.Lock()
		h.index(insts)
		h.running = nil
		h.scanned = true
		h.notify()
		h.mu.Unlock()
		close(run.done)
	}()
	return run, nil
}

// index rebuilds the type index from what insts said, in name order. A
// type two plugins claim is left out, with the error its lookups get.
// h.mu must be held.
func (h *Host) index(insts []*instance) {
	byType := map[string]*instance{}
	conflicts := map[string]error{}
	h.failedAt = time.Time{}
	for _, inst := range insts {
		n := inst.binary
		info, err := inst.cachedInfo()
		if err != nil {
			// Tried again on a later use: a plugin that failed once
			// (a slow start, a cancelled call) must not stay out.
			h.failedAt = time.Now()
			continue
		}
		for _, t := range info.Types {
			if conflicts[t.Type] != nil {
				continue
			}
			if other, dup := byType[t.Type]; dup {
				conflicts[t.Type] = fmt.Errorf("resource type %s is served by both %s and %s: remove one from %s", t.Type, other.binary, n, h.cfg.Dir)
				h.log.Error("two plugins serve one type", "type", t.Type, "plugins", []string{other.binary, n})
				delete(byType, t.Type)
				continue
			}
			byType[t.Type] = inst
		}
	}
	h.byType, h.conflicts = byType, conflicts
}

// notify wakes the lookups waiting for the index; h.mu must be held.
func (h *Host) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// lookup returns the instance serving typ. It waits only while a scan is
// under way and no plugin has claimed typ yet, and at most until ctx ends.
func (h *Host) lookup(ctx context.Context, typ string) (*instance, error) {
	for {
		h.mu.Lock()
		run, err := h.startScan(false)
		if err != nil {
			h.mu.Unlock()
			return nil, err
		}
		if inst, ok := h.byType[typ]; ok {
			h.mu.Unlock()
			return inst, nil
		}
		if err := h.conflicts[typ]; err != nil {
			h.mu.Unlock()
			return nil, err
		}
		if run == nil {
			h.mu.Unlock()
			return nil, fmt.Errorf("%s: %w (plugin directory %s)", typ, ErrUnknownType, h.cfg.Dir)
		}
		changed := h.changed
		h.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: waiting for the plugins to start: %w", typ, ctx.Err())
		}
	}
}

// Driver returns the driver for a resource type.
func (h *Host) Driver(ctx context.Context, typ string) (Driver, error) {
	inst, err := h.lookup(ctx, typ)
	if err != nil {
		return nil, err
	}
	return &driver{inst: inst, typ: typ}, nil
}

// sockets returns the directory plugins make their unix sockets in,
// creating it when needed.
func (h *Host) sockets() (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.socketsLocked()
}

func (h *Host) socketsLocked() (string, error) {
	if h.cfg.SocketDir != "" {
		if err := os.MkdirAll(h.cfg.SocketDir, 0o700); err != nil {
			return "", fmt.Errorf("plugin socket directory: %w", err)
		}
		fi, err := os.Stat(h.cfg.SocketDir)
		if err != nil {
			return "", fmt.Errorf("plugin socket directory: %w", err)
		}
		uid := -1
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid = int(st.Uid)
		}
		if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || (uid != 0 && uid != os.Geteuid()) {
			return "", fmt.Errorf("plugin socket directory %s is mode %04o, owned by uid %d: it must be a directory private to root: chmod 700 %s; chown root %s",
				h.cfg.SocketDir, fi.Mode().Perm(), uid, h.cfg.SocketDir, h.cfg.SocketDir)
		}
		return h.cfg.SocketDir, nil
	}
	if h.socketDir == "" {
		d, err := os.MkdirTemp("", "vigil-plugin-sockets-") // 0700, a name no one could plant
		if err != nil {
			return "", fmt.Errorf("plugin socket directory: %w", err)
		}
		h.socketDir = d
	}
	return h.socketDir, nil
}

// Close stops every plugin process, those still starting included.
// Long-lived things plugins started for services (private docker daemons)
// are not touched.
func (h *Host) Close() {
	h.closing.Store(true)
	h.mu.Lock()
	h.closed = true
	insts := h.plugins
	h.plugins = map[string]*instance{}
	h.mu.Unlock()
	h.cancel()
	for _, inst := range insts {
		inst.abortStart()
	}
	for _, inst := range insts {
		inst.kill()
	}
	h.scans.Wait()
	h.mu.Lock()
	if h.socketDir != "" {
		os.RemoveAll(h.socketDir)
		h.socketDir = ""
	}
	h.mu.Unlock()
}

// PIDs returns the process ids of the running plugin processes, by binary
// name; tests use it to kill one.
func (h *Host) PIDs() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for n, inst := range h.plugins {
		if pid := inst.pid(); pid > 0 {
			out[n] = pid
		}
	}
	return out
}

// Restarts returns how many times each plugin was restarted after dying.
func (h *Host) Restarts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for n, inst := range h.plugins {
		out[n] = inst.restartCount()
	}
	return out
}

// Request is one resource, as a driver is told about it.
type Request struct {
	Service  ServiceEnv
	RID      string
	Type     string
	Keywords map[string]string
	Siblings map[string]map[string]string
}

// ServiceEnv is what a driver learns of the service.
type ServiceEnv struct {
	Name     string
	Keywords map[string]string
	RunDir   string
	VarDir   string
}

// FieldError is one problem a plugin found validating a resource.
type FieldError struct {
	Keyword string
	Message string
}

// StatusResult is a driver's evaluation of one resource.
type StatusResult struct {
	Status status.Status
	Log    []string
	Label  string
}

// Driver is a resource driver of one type, served by a plugin.
type Driver interface {
	Validate(ctx context.Context, r Request) ([]FieldError, error)
	Start(ctx context.Context, r Request) ([]string, error)
	Stop(ctx context.Context, r Request) ([]string, error)
	// Status never fails: a call that could not be made reads undef with
	// the reason in Log.
	Status(ctx context.Context, r Request) StatusResult
}

func (h *Host) pluginDir() string { return h.cfg.Dir }

// DefaultDir is where plugins are found by default: ../lib/vigil/plugins
// from the running executable when it exists (the Debian package's
// /usr/sbin/vigild and /usr/bin/svcmgr find /usr/lib/vigil/plugins, and
// so does a copy unpacked anywhere), else the executable's own directory
// (bin/ of a build, where plugins ship next to svcmgr and vigild).
func DefaultDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "."
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	dir := filepath.Dir(exe)
	if fi, err := os.Stat(filepath.Join(dir, "..", "lib", "vigil", "plugins")); err == nil && fi.IsDir() {
		return filepath.Clean(filepath.Join(dir, "..", "lib", "vigil", "plugins"))
	}
	return dir
}
