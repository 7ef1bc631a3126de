// Package app serves the app resource group: OpenSVC's app resource (a
// start, stop and check command, `type = forking` when start returns,
// `type = simple` for a foreground process the plugin keeps running) and
// Pacemaker's OCF resource agents run unchanged (`type = ocf`).
//
// The plugin is stateless, as every plugin must be: a simple app runs
// detached in its own session with a pid file (pid and start time) in the
// service's run directory, so a restarted plugin finds it again by pid and
// start time, never by name. An OCF agent keeps its own state, as under
// Pacemaker. The plugin never decides to restart anything: core's monitor
// does, through Start.
package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// The types this plugin serves. [app#1] without a type is forking, as in
// OpenSVC.
const (
	TypeForkingDefault = "app"
	TypeForking        = "app.forking"
	TypeSimple         = "app.simple"
	TypeOCF            = "app.ocf"
)

// Config configures a Driver.
type Config struct {
	// OCFRoot is where OCF agents live (resource.d/<provider>/<agent>)
	// and what agents get as OCF_ROOT. Default /usr/lib/ocf.
	OCFRoot string
	// Logger defaults to sdk.Logger().
	Logger hclog.Logger
}

// Driver serves the app types.
type Driver struct {
	cfg Config
	log hclog.Logger

	mu       sync.Mutex
	metadata map[string]cachedMeta // agent path → its meta-data
	locks    map[string]*sync.Mutex
}

var _ sdk.ResourceDriver = (*Driver)(nil)

// New returns a Driver for cfg.
func New(cfg Config) *Driver {
	if cfg.OCFRoot == "" {
		cfg.OCFRoot = "/usr/lib/ocf"
	}
	if cfg.Logger == nil {
		cfg.Logger = sdk.Logger()
	}
	return &Driver{cfg: cfg, log: cfg.Logger.Named("app"), metadata: map[string]cachedMeta{}, locks: map[string]*sync.Mutex{}}
}

// Default timeouts of the command types; an OCF agent's come from its
// meta-data.
const (
	defaultStartTimeout = 60 * time.Second
	defaultStopTimeout  = 60 * time.Second
	defaultCheckTimeout = 10 * time.Second
)

var timeoutKeywords = []sdk.Keyword{
	{Name: "start_timeout", Type: sdk.TypeDuration, Help: "Bound on start (default 60s; an OCF agent's own from its meta-data)."},
	{Name: "stop_timeout", Type: sdk.TypeDuration, Help: "Bound on stop (default 60s; an OCF agent's own from its meta-data)."},
	{Name: "check_timeout", Type: sdk.TypeDuration, Aliases: []string{"monitor_timeout"},
		Help: "Bound on check, an OCF agent's monitor (default 10s; an OCF agent's own from its meta-data)."},
}

func commandKeywords(startRequired bool) []sdk.Keyword {
	kws := []sdk.Keyword{
		{Name: "start", Required: startRequired, Help: "The command that starts the app: an argv, quoted as in a shell; no shell runs unless shell = true."},
		{Name: "stop", Help: "The command that stops the app (simple: default SIGTERM to its process group, SIGKILL after stop_timeout)."},
		{Name: "check", Aliases: []string{"status"}, Help: "The command that checks the app: exit 0 up, 1 down, anything else warn with its output."},
		{Name: "shell", Type: sdk.TypeBool, Default: "false", Help: "Run start, stop and check with /bin/sh -c."},
		{Name: "cwd", Help: "Working directory of the commands (default /)."},
		{Name: "user", Help: "User the commands run as (name or uid; default root)."},
		{Name: "environment", Type: sdk.TypeList, Help: "NAME=VALUE words added to the commands' environment."},
	}
	return append(kws, timeoutKeywords...)
}

// Info declares the app types.
func (d *Driver) Info() sdk.Info {
	forkingHelp := "An application started by a command that returns (OpenSVC's app, type = forking)."
	return sdk.Info{
		Name: "app", Version: Version,
		Types: []sdk.TypeInfo{
			{Type: TypeForkingDefault, Keywords: commandKeywords(true), Help: forkingHelp},
			{Type: TypeForking, Keywords: commandKeywords(true), Help: forkingHelp},
			{Type: TypeSimple, Keywords: commandKeywords(true),
				Help: "A foreground process that Vigil keeps running; it outlives a plugin restart."},
			{Type: TypeOCF, Keywords: append([]sdk.Keyword{
				{Name: "agent", Required: true, Help: "The OCF agent, PROVIDER:AGENT (heartbeat:nginx), from /usr/lib/ocf/resource.d."},
				{Name: "params", Help: "name=value words, given to the agent as OCF_RESKEY_name; checked against its meta-data."},
			}, timeoutKeywords...), Help: "A Pacemaker OCF resource agent, run unchanged."},
		},
	}
}

// Validate checks a resource's keywords; an OCF resource's params are
// checked against its agent's meta-data.
func (d *Driver) Validate(ctx context.Context, r sdk.Resource) []sdk.FieldError {
	if r.Type == TypeOCF {
		_, errs := d.ocfSpec(ctx, r)
		return errs
	}
	_, errs := commandSpecOf(r)
	return errs
}

// Start starts the app; starting one already up does nothing.
func (d *Driver) Start(ctx context.Context, r sdk.Resource) ([]string, error) {
	unlock := d.lock(r)
	defer unlock()
	switch r.Type {
	case TypeOCF:
		return d.ocfStart(ctx, r)
	case TypeSimple:
		return d.simpleStart(ctx, r)
	default:
		return d.forkingStart(ctx, r)
	}
}

// Stop stops the app; stopping one already down does nothing.
func (d *Driver) Stop(ctx context.Context, r sdk.Resource) ([]string, error) {
	unlock := d.lock(r)
	defer unlock()
	switch r.Type {
	case TypeOCF:
		return d.ocfStop(ctx, r)
	case TypeSimple:
		out, err := d.simpleStop(ctx, r)
		if err == nil {
			sdk.ReleaseCgroup(r.Service.Name) // gone once the service's last process is
		}
		return out, err
	default:
		return d.forkingStop(ctx, r)
	}
}

// Status reads the app's state.
func (d *Driver) Status(ctx context.Context, r sdk.Resource) sdk.ResourceStatus {
	switch r.Type {
	case TypeOCF:
		return d.ocfStatus(ctx, r)
	case TypeSimple:
		return d.simpleStatus(ctx, r)
	default:
		return d.forkingStatus(ctx, r)
	}
}

// lock serialises start and stop of one resource within this process (a
// status may run beside them).
func (d *Driver) lock(r sdk.Resource) func() {
	key := r.Service.RunDir + "/" + r.RID
	d.mu.Lock()
	m := d.locks[key]
	if m == nil {
		m = &sync.Mutex{}
		d.locks[key] = m
	}
	d.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// stateDir is where the plugin keeps a resource's files (pid file, logs,
// command output): the service's run directory, which core creates and
// which outlives the plugin.
func stateDir(r sdk.Resource) (string, error) {
	if !filepath.IsAbs(r.Service.RunDir) {
		return "", fmt.Errorf("the service's run directory %q is not absolute: core gave the service no run directory", r.Service.RunDir)
	}
	dir := filepath.Join(r.Service.RunDir, "app")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create the app state directory: %w", err)
	}
	return dir, nil
}

// fileBase names a resource's files: app#1 → app-1.
func fileBase(rid string) string { return strings.NewReplacer("#", "-", "/", "_").Replace(rid) }

// timeout reads a duration keyword, falling back to def.
func timeout(r sdk.Resource, kw string, def time.Duration) time.Duration {
	if v, err := r.Duration(kw); err == nil && v > 0 {
		return v
	}
	return def
}
