// Package plugin is the plugin host: it finds plugin binaries in the plugin
// directory, starts each one on first use (one process per binary, shared by
// every service), negotiates the protocol version, restarts a plugin that
// died, and converts between the wire (core/proto) and Go types. Nothing
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
)

// rescanAfter spaces the retries of plugins that failed to start.
const rescanAfter = 5 * time.Second

// Config configures a Host. The zero value of every field but Dir is
// usable.
type Config struct {
	// Dir is the plugin directory, searched for vigil-plugin-* executables.
	Dir string
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
type Host struct {
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	plugins map[string]*instance // by binary name
	scanned bool
	// failedAt is when the last scan left a plugin out; zero when none.
	failedAt time.Time
	byType   map[string]*instance
	closed   bool
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
	return &Host{cfg: cfg, log: cfg.Logger.Named("plugin"), plugins: map[string]*instance{}}
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

// Discover lists the plugin binaries in the plugin directory, by name.
func (h *Host) Discover() ([]string, error) {
	entries, err := os.ReadDir(h.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("read plugin directory %s: %w (set --plugin-dir or VIGIL_PLUGIN_DIR)", h.cfg.Dir, err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), BinaryPrefix) || e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Mode()&0o111 == 0 {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// Plugins starts every plugin of the directory (those not running yet) and
// returns what each said of itself. A plugin that fails to start is
// reported in errs, keyed by binary name, and left out of the list.
func (h *Host) Plugins(ctx context.Context) (infos []Info, errs map[string]error, err error) {
	if err := h.scan(ctx); err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	insts := make([]*instance, 0, len(h.plugins))
	for _, inst := range h.plugins {
		insts = append(insts, inst)
	}
	h.mu.Unlock()
	errs = map[string]error{}
	for _, inst := range insts {
		info, err := inst.info(ctx)
		if err != nil {
			errs[inst.binary] = err
			continue
		}
		infos = append(infos, info)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	return infos, errs, nil
}

// scan starts the plugins found in the directory, once, concurrently, and
// indexes the types they serve. Two plugins serving one type is an error.
func (h *Host) scan(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("plugin host is closed")
	}
	if h.scanned && (h.failedAt.IsZero() || time.Since(h.failedAt) < rescanAfter) {
		return nil
	}
	names, err := h.Discover()
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, ok := h.plugins[n]; !ok {
			h.plugins[n] = newInstance(h, n)
		}
	}
	var wg sync.WaitGroup
	for _, inst := range h.plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := inst.info(ctx); err != nil {
				h.log.Error("plugin failed to start", "plugin", inst.binary, "error", err)
			}
		}()
	}
	wg.Wait()
	byType := map[string]*instance{}
	h.failedAt = time.Time{}
	for _, n := range names {
		inst := h.plugins[n]
		info, err := inst.cachedInfo()
		if err != nil {
			// Tried again on a later use: a plugin that failed once
			// (a slow start, a cancelled call) must not stay out.
			h.failedAt = time.Now()
			continue
		}
		for _, t := range info.Types {
			if other, dup := byType[t.Type]; dup {
				return fmt.Errorf("resource type %s is served by both %s and %s: remove one from %s", t.Type, other.binary, n, h.cfg.Dir)
			}
			byType[t.Type] = inst
		}
	}
	h.byType = byType
	h.scanned = true
	return nil
}

// Driver returns the driver for a resource type.
func (h *Host) Driver(ctx context.Context, typ string) (Driver, error) {
	if err := h.scan(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	inst, ok := h.byType[typ]
	h.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w (plugin directory %s)", typ, ErrUnknownType, h.cfg.Dir)
	}
	return &driver{inst: inst, typ: typ}, nil
}

// Close stops every plugin process. Long-lived things plugins started for
// services (private docker daemons) are not touched.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	insts := h.plugins
	h.plugins = map[string]*instance{}
	h.mu.Unlock()
	for _, inst := range insts {
		inst.kill()
	}
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

// DefaultDir is the directory of the running executable: plugins ship
// next to svcmgr and vigild.
func DefaultDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "."
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Dir(exe)
}
