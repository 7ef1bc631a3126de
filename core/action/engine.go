// Package action runs a service's actions (start, stop, status) over the
// resource graph through the plugin drivers: it validates a service against
// the schema the plugins declare, orders resources with core/graph, rolls
// back a failed start, and serialises actions on one service with a
// per-service lock shared by every process on the node.
//
// It decides nothing about where a service should run; the orchestrator
// does that and calls in here.
package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/plugin"
)

// Config configures an Engine.
type Config struct {
	// Plugins serves the resource drivers. Required.
	Plugins *plugin.Host
	// RunDir is the node's runtime directory; each service gets
	// RunDir/services/<name> (sockets, pid files, the action lock).
	// Default /var/run/vigil.
	RunDir string
	// StateDir is the node's persistent directory; each service gets
	// StateDir/services/<name>. Default /var/lib/vigil.
	StateDir string
	// Logger receives the engine's lines. Default: hclog at warn.
	Logger hclog.Logger
	// Progress, when set, is told of each step of an action as it
	// happens (the CLI prints these lines).
	Progress func(Step)
	// MaxConcurrent bounds the plugin calls a status evaluation makes at
	// once, across services, so a slow resource never stalls the others
	// and a daemon with many services does not flood its plugins.
	// Default 16.
	MaxConcurrent int
}

// Engine runs actions. It is safe for concurrent use; actions on one
// service are serialised by Lock.
type Engine struct {
	cfg Config
	log hclog.Logger

	schemaOnce sync.Mutex
	schema     *config.Schema
	sem        chan struct{}
}

// New returns an Engine for cfg.
func New(cfg Config) *Engine {
	if cfg.RunDir == "" {
		cfg.RunDir = "/var/run/vigil"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = "/var/lib/vigil"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "vigil", Level: hclog.Warn})
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 16
	}
	return &Engine{cfg: cfg, log: cfg.Logger.Named("action"), sem: make(chan struct{}, cfg.MaxConcurrent)}
}

// Schema returns core's keyword schema extended with what every plugin of
// the plugin directory declares. Plugins that fail to start are logged and
// left out; a service using their types then fails validation with an
// "unknown type" error naming the plugin directory.
func (e *Engine) Schema(ctx context.Context) (*config.Schema, error) {
	e.schemaOnce.Lock()
	defer e.schemaOnce.Unlock()
	if e.schema != nil {
		return e.schema, nil
	}
	infos, errs, err := e.cfg.Plugins.Plugins(ctx)
	if err != nil {
		return nil, err
	}
	for name, perr := range errs {
		e.log.Error("plugin left out of the schema", "plugin", name, "error", perr)
	}
	s := config.CoreSchema()
	for _, info := range infos {
		if err := s.AddServiceKeywords(info.Name, keywords(info.ServiceKeywords)); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", info.Name, err)
		}
		for _, t := range info.Types {
			group, _, _ := strings.Cut(t.Type, ".")
			if !slices.Contains(config.Groups, group) {
				continue // heartbeat and stonith types belong to cluster.conf
			}
			ts := &config.TypeSchema{
				Type: t.Type, Group: group, SectionAliases: t.SectionAliases,
				Keywords: keywords(t.Keywords), Plugin: info.Name,
			}
			if err := s.AddType(ts); err != nil {
				return nil, fmt.Errorf("plugin %s: %w", info.Name, err)
			}
		}
	}
	if len(errs) == 0 {
		e.schema = s // a plugin that failed is asked again next time
	}
	return s, nil
}

func keywords(in []plugin.Keyword) []config.Keyword {
	out := make([]config.Keyword, 0, len(in))
	for _, k := range in {
		out = append(out, config.Keyword{
			Name: k.Name, Type: config.KeywordType(k.Type), Default: k.Default, Required: k.Required,
			Aliases: k.Aliases, Help: k.Help, Candidates: k.Candidates,
		})
	}
	return out
}

// Load parses and validates a service file: the schema checks of
// core/config, then each resource's own checks by its plugin. All problems
// come back at once as config.Errors.
func (e *Engine) Load(ctx context.Context, path string) (*config.Service, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read service config: %w", err)
	}
	return e.Parse(ctx, path, data)
}

// Parse validates a service config held in memory, as Load does; path
// names the service and the errors.
func (e *Engine) Parse(ctx context.Context, path string, data []byte) (*config.Service, error) {
	schema, err := e.Schema(ctx)
	if err != nil {
		return nil, err
	}
	svc, err := config.Parse(path, data, schema)
	if err != nil {
		return nil, err
	}
	var errs config.Errors
	for _, r := range svc.Resources {
		d, err := e.cfg.Plugins.Driver(ctx, r.Type)
		if err != nil {
			errs = append(errs, &config.Error{File: svc.Path, Line: r.Line, Section: r.RID, Msg: err.Error()})
			continue
		}
		ferrs, err := d.Validate(ctx, e.request(svc, r))
		if err != nil {
			errs = append(errs, &config.Error{File: svc.Path, Line: r.Line, Section: r.RID, Msg: "validate: " + err.Error()})
			continue
		}
		for _, fe := range ferrs {
			errs = append(errs, &config.Error{File: svc.Path, Line: r.LineOf(fe.Keyword), Section: r.RID, Keyword: fe.Keyword, Msg: fe.Message})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return svc, nil
}

// FindService returns the path of service name in dir: <name>.conf or the
// seed's <name>.env.
func FindService(dir, name string) (string, error) {
	if err := config.CheckServiceName(name); err != nil {
		return "", err
	}
	for _, ext := range []string{".conf", ".env"} {
		p := filepath.Join(dir, name+ext)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", UnknownService(dir, name)
}

// ErrNoService: the service has no config file.
var ErrNoService = errors.New("no such service")

// ListServices returns the names of the services configured in dir.
func ListServices(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var names []string
	for _, en := range entries {
		ext := filepath.Ext(en.Name())
		if en.IsDir() || (ext != ".conf" && ext != ".env") {
			continue
		}
		n := strings.TrimSuffix(en.Name(), ext)
		if config.CheckServiceName(n) != nil || seen[n] {
			continue
		}
		seen[n] = true
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// ServiceRunDir is the runtime directory of a service.
func (e *Engine) ServiceRunDir(name string) string {
	return filepath.Join(e.cfg.RunDir, "services", name)
}

func (e *Engine) serviceStateDir(name string) string {
	return filepath.Join(e.cfg.StateDir, "services", name)
}

// request builds what a driver is told about r.
func (e *Engine) request(svc *config.Service, r *config.Resource) plugin.Request {
	sib := map[string]map[string]string{}
	for _, o := range svc.Resources {
		if o.Type == r.Type {
			sib[o.RID] = o.Keywords
		}
	}
	return plugin.Request{
		Service: plugin.ServiceEnv{
			Name: svc.Name, Keywords: svc.Keywords,
			RunDir: e.ServiceRunDir(svc.Name), VarDir: e.serviceStateDir(svc.Name),
		},
		RID: r.RID, Type: r.Type, Keywords: r.Keywords, Siblings: sib,
	}
}

// ensureDirs creates the service's private directories before any driver
// call that may use them.
func (e *Engine) ensureDirs(name string) error {
	for _, d := range []string{e.ServiceRunDir(name), e.serviceStateDir(name)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
	}
	return nil
}
