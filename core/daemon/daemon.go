// Package daemon is the node daemon (vigild) behind its thin command: it
// loads the node's services and cluster.conf, keeps every service's status
// fresh on a schedule (monitored resources more often), runs the
// heartbeats and publishes this node's signed dataset on them, merges what
// peers publish into the cluster view, propagates service configs to the
// nodes that run them, persists per-service state, and serves the local
// API and the metrics. Orchestration decisions belong to core/orchestrator,
// not here.
package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/plugin"
	"github.com/vigil-ha/vigil/core/status"
)

// Config configures a Daemon.
type Config struct {
	// ConfigDir holds cluster.conf and the service files. Default /etc/vigil.
	ConfigDir string
	// Ready, when set, is called once the daemon serves its API (vigild
	// tells systemd, Type=notify); Stopping when it begins to stop.
	Ready, Stopping func()
	// StateDir holds per-service state that survives restarts. Default
	// /var/lib/vigil.
	StateDir string
	// RunDir holds the API socket and runtime files. Default /var/run/vigil.
	RunDir string
	// PluginDir holds the plugin binaries. Default: next to the executable.
	PluginDir string
	// Logger receives the daemon's lines. Default: hclog on stderr.
	Logger hclog.Logger
	// AllowUID is the uid allowed on the API (default root); for tests.
	AllowUID *int
	// ScanInterval is how often service files are checked for changes.
	// Default 2s.
	ScanInterval time.Duration
}

// Daemon is one node's vigild.
type Daemon struct {
	cfg    Config
	log    hclog.Logger
	host   *plugin.Host
	engine *action.Engine
	node   *cluster.NodeConfig
	view   *cluster.View
	boot   uint64
	// rebooted: the host booted since the last daemon start.
	rebooted bool
	started  time.Time
	// pubMu serialises publications: gen and pubAt are the last one's.
	pubMu sync.Mutex
	gen   uint64
	pubAt time.Time
	// syncPending: peers whose new datasets the sync loop has to read.
	syncMu      sync.Mutex
	syncPending map[string]bool
	syncWake    chan struct{}
	// syncAddrs are where peers fetch this node's configs from.
	syncAddrs []string
	metrics   *metrics
	// ops: maintenance, failure lifecycle, fencing operations, the
	// journal, alerts and the flight recorder (ops.go).
	ops  *ops
	orch *orch
	// wake asks the orchestrator to decide now.
	wake chan struct{}
	// arbitratorVotes are the arbitrators' votes this node holds.
	arbitratorVotes arbitratorGrants

	mu      sync.Mutex
	svcs    map[string]*service
	state   cluster.NodeState
	subs    map[chan api.Event]struct{}
	hbChans []chan []byte
}

// service is the daemon's record of one local service.
type service struct {
	name    string
	path    string
	mtime   time.Time
	conf    *config.Service
	loadErr error
	version cluster.ConfigVersion

	status     status.Service
	statusAt   time.Time
	monitorAt  time.Time
	refreshing bool
	// evalBegin is when the stored status's evaluation began: an older
	// evaluation finishing later must not overwrite it.
	evalBegin time.Time
	persist   persisted
}

// New prepares a daemon: plugins found, configs read. It starts nothing.
func New(cfg Config) (*Daemon, error) {
	if cfg.ConfigDir == "" {
		cfg.ConfigDir = "/etc/vigil"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = "/var/lib/vigil"
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/var/run/vigil"
	}
	if cfg.PluginDir == "" {
		cfg.PluginDir = plugin.DefaultDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "vigild", Level: hclog.Info, Output: os.Stderr})
	}
	if cfg.ScanInterval == 0 {
		cfg.ScanInterval = 2 * time.Second
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, svcs: map[string]*service{}, subs: map[chan api.Event]struct{}{},
		started: time.Now(), orch: newOrch(), wake: make(chan struct{}, 1),
		syncPending: map[string]bool{}, syncWake: make(chan struct{}, 1)}
	d.host = plugin.New(plugin.Config{Dir: cfg.PluginDir, Logger: cfg.Logger, SocketDir: filepath.Join(cfg.RunDir, "plugins")})
	d.engine = action.New(action.Config{Plugins: d.host, RunDir: cfg.RunDir, StateDir: cfg.StateDir, Logger: cfg.Logger})
	if err := d.loadNodeConfig(); err != nil {
		d.host.Close()
		return nil, err
	}
	d.host.LogWith("node", d.node.Local) // plugins' lines say where they come from
	boot, rebooted, err := nextBoot(cfg.StateDir, cfg.RunDir)
	if err != nil {
		d.host.Close()
		return nil, err
	}
	d.boot, d.rebooted = boot, rebooted
	d.restoreSeen()
	if d.ops, err = newOps(d); err != nil {
		d.host.Close()
		return nil, err
	}
	d.metrics = newMetrics(d)
	for _, hb := range d.node.Heartbeats {
		d.metrics.rejects.WithLabelValues(hb.Name) // shown at 0 from the start
	}
	return d, nil
}

// loadNodeConfig reads cluster.conf, or sets up a cluster of one when
// there is none.
func (d *Daemon) loadNodeConfig() error {
	path := filepath.Join(d.cfg.ConfigDir, "cluster.conf")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		host, _ := os.Hostname()
		d.node = &cluster.NodeConfig{Path: path, Cluster: "local", Local: host, Nodes: []string{host}}
		d.log.Info("no cluster.conf: running as a cluster of one", "node", host)
		d.view = cluster.NewView(d.node, time.Now())
		d.state = cluster.Ready
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	infos, _, err := d.host.Plugins(ctx)
	if err != nil {
		return err
	}
	n, err := cluster.LoadNodeConfig(path, cluster.KeywordsOf(infos))
	if err != nil {
		return err
	}
	d.node = n
	d.view = cluster.NewView(n, time.Now())
	d.state = cluster.Ready
	if len(n.Nodes) > 1 {
		d.state = cluster.Joining
	}
	d.log = d.log.With("node", n.Local)
	d.log.Info("cluster config loaded", "cluster", n.Cluster, "nodes", n.Nodes, "heartbeats", len(n.Heartbeats))
	return nil
}

// Run runs the daemon until ctx ends, then stops it cleanly: services keep
// running, plugins exit.
func (d *Daemon) Run(ctx context.Context) error {
	if err := os.MkdirAll(d.cfg.RunDir, 0o700); err != nil {
		return err
	}
	if err := checkDirs(d.cfg, d.log); err != nil {
		return err
	}
	// Services are known before the API answers: a caller never sees a
	// daemon that does not know its services yet.
	d.scanConfigs(ctx)
	srv, err := api.Listen(api.ServerConfig{Socket: filepath.Join(d.cfg.RunDir, api.SocketName), Backend: d, Logger: d.log, AllowUID: d.cfg.AllowUID})
	if err != nil {
		return err
	}
	defer d.host.Close()
	defer srv.Close()
	go func() {
		if err := srv.Serve(); err != nil {
			d.log.Error("api server", "error", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	if len(d.node.Nodes) > 1 {
		ln, addrs, err := d.listenConfigs()
		if err != nil {
			return err
		}
		d.syncAddrs = addrs
		run(func(ctx context.Context) { d.serveConfigs(ctx, ln) })
	}
	for _, hb := range d.node.Heartbeats {
		ch := make(chan []byte, 1)
		d.hbChans = append(d.hbChans, ch)
		run(func(ctx context.Context) { d.runHeartbeat(ctx, hb, ch) })
	}
	run(d.statusLoop)
	run(d.publishLoop)
	run(d.peerSyncLoop)
	run(d.seenLoop)
	run(d.tickLoop)
	run(d.scanLoop)
	run(d.orchestrateLoop)
	run(d.arbitratorLoop)
	run(d.opsLoop)
	if d.node.Metrics != "" {
		run(d.serveMetrics)
	}
	d.log.Info("vigild running", "boot", d.boot, "socket", filepath.Join(d.cfg.RunDir, api.SocketName))
	if d.cfg.Ready != nil {
		d.cfg.Ready()
	}
	<-ctx.Done()
	d.log.Info("vigild stopping: services keep running")
	if d.cfg.Stopping != nil {
		d.cfg.Stopping()
	}
	cancel()
	wg.Wait()
	return nil
}

// runHeartbeat keeps one heartbeat running, restarting it (and its plugin)
// with a capped backoff when it fails.
func (d *Daemon) runHeartbeat(ctx context.Context, hb cluster.HeartbeatConfig, ch chan []byte) {
	log := d.log.Named("hb").With("hb", hb.Name)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		runner, err := d.host.Heartbeat(ctx, hb.Type)
		if err == nil {
			err = runner.Run(ctx, hbConfig(d.node, hb), ch, func(e hbEvent) { d.onHeartbeat(hb.Name, e) })
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("heartbeat failed; restarting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// tickLoop judges peers often enough that a lost peer is seen soon after
// its timeout (see tickInterval).
func (d *Daemon) tickLoop(ctx context.Context) {
	t := time.NewTicker(d.tickInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, ev := range d.view.Tick(now) {
				d.log.Warn("peer lost: every heartbeat is stale", "peer", ev.Peer)
				d.poke()
				d.emit(api.Event{Kind: "peer", Node: ev.Peer, Message: "lost"})
			}
			d.updateJoining(now)
		}
	}
}

// updateJoining ends joining once every answering peer was heard or the
// ready period passed: a node coming back never acts on a partial view.
func (d *Daemon) updateJoining(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != cluster.Joining {
		return
	}
	ready := d.view.Heard()
	if !ready && now.Sub(d.started) >= d.node.ReadyPeriod {
		ready = true
		d.log.Warn("ready period passed with peers unheard", "period", d.node.ReadyPeriod)
	}
	if ready {
		d.state = cluster.Ready
		d.log.Info("joined the cluster")
		go d.emit(api.Event{Kind: "peer", Node: d.node.Local, Message: "ready"})
	}
}

func (d *Daemon) emit(ev api.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	d.journalEvent(ev)
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.subs {
		select {
		case ch <- ev:
		default: // a slow reader misses events, never blocks the daemon
		}
	}
}

// Subscribe implements api.Backend.
func (d *Daemon) Subscribe(ctx context.Context) <-chan api.Event {
	ch := make(chan api.Event, 64)
	d.mu.Lock()
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	go func() {
		<-ctx.Done()
		d.mu.Lock()
		delete(d.subs, ch)
		d.mu.Unlock()
		close(ch)
	}()
	return ch
}

func (d *Daemon) serviceNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.svcs))
	for n := range d.svcs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (d *Daemon) lookup(name string) (*service, error) {
	// A file written or changed since the last scan is read now, not up
	// to a scan interval later.
	d.readIfChanged(context.Background(), name)
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.svcs[name]
	if !ok {
		return nil, action.UnknownService(d.cfg.ConfigDir, name)
	}
	return s, nil
}
