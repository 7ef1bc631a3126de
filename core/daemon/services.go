package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk/value"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/node"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
)

// parse validates a service config as this node takes it: the schema,
// then the cluster's rules (orchestrate = ha needs fencing).
func (d *Daemon) parse(ctx context.Context, path string, data []byte) (*config.Service, error) {
	conf, err := d.engine.Parse(ctx, path, data)
	if err != nil {
		return nil, err
	}
	if err := d.node.CheckFencing(conf); err != nil {
		return nil, err
	}
	return conf, nil
}

// admit applies the orchestrator's start rule to a local start of name
// (an operator's, or the monitor's restart in place): one rule, in one
// place (orchestrator.Admit).
func (d *Daemon) admit(name string) error {
	v := d.orchestratorView(time.Now())
	for _, s := range v.Services {
		if s.Name == name {
			return orchestrator.Admit(v, s)
		}
	}
	return fmt.Errorf("service %s: %w", name, action.ErrNoService)
}

// persisted is a service's state that survives a daemon restart.
type persisted struct {
	// Expect is the cluster-wide operator expectation last known here.
	Expect cluster.Expectation `json:"expect"`
	// State is the local instance's orchestration state.
	State string `json:"state,omitempty"`
	// ConfigVersion and ConfigSum are the config version in force, so a
	// restart neither renumbers it nor misses a hand edit made meanwhile.
	ConfigVersion int64     `json:"config_version,omitempty"`
	ConfigSum     string    `json:"config_sum,omitempty"`
	LastAction    string    `json:"last_action,omitempty"`
	LastResult    string    `json:"last_result,omitempty"`
	LastAt        time.Time `json:"last_at,omitempty"`
	// Reason is why State is a failure (see noteFailure).
	Reason string `json:"reason,omitempty"`
}

func (d *Daemon) statePath(name string) string {
	return filepath.Join(d.cfg.StateDir, "services", name, "state.json")
}

func (d *Daemon) loadPersisted(name string) persisted {
	var p persisted
	if b, err := os.ReadFile(d.statePath(name)); err == nil {
		if err := json.Unmarshal(b, &p); err != nil {
			d.log.Error("unreadable service state; starting from scratch", "service", name, "error", err)
		}
	}
	return p
}

func (d *Daemon) savePersisted(name string, p persisted) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	path := d.statePath(name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return action.WriteFileAtomic(path, b, 0o600, time.Time{})
}

func (d *Daemon) scanLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.scanConfigs(ctx)
		}
	}
}

// scanConfigs picks up new, changed and removed service files. A file
// that does not validate keeps the last valid version in force (and
// published); the error is logged and shown.
func (d *Daemon) scanConfigs(ctx context.Context) {
	names, err := action.ListServices(d.cfg.ConfigDir)
	if err != nil {
		d.log.Error("list services", "dir", d.cfg.ConfigDir, "error", err)
		return
	}
	seen := map[string]bool{}
	for _, name := range names {
		seen[name] = true
		d.readIfChanged(ctx, name)
	}
	d.mu.Lock()
	for name := range d.svcs {
		if !seen[name] {
			delete(d.svcs, name)
			d.log.Info("service config removed", "service", name)
		}
	}
	d.mu.Unlock()
}

// readIfChanged loads name's file when it is new or changed since it was
// read (by path and mtime): the scan's rule, and an action's, which must
// act on the file as it is now (or be refused if it does not validate),
// not on what the last scan saw.
func (d *Daemon) readIfChanged(ctx context.Context, name string) {
	path, err := action.FindService(d.cfg.ConfigDir, name)
	if err != nil {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	d.mu.Lock()
	s, ok := d.svcs[name]
	same := ok && s.path == path && s.mtime.Equal(fi.ModTime())
	d.mu.Unlock()
	if !same {
		d.loadService(ctx, name, path, fi.ModTime(), nil)
	}
}

// loadService (re)reads a service's file. synced is the version a peer's
// copy carried, nil for a file found changed here.
func (d *Daemon) loadService(ctx context.Context, name, path string, mtime time.Time, synced *cluster.ConfigVersion) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	conf, err := d.parse(ctx, path, data)
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.svcs[name]
	if !ok {
		s = &service{name: name, persist: d.loadPersisted(name)}
		// What a former life of the daemon recorded, read back (see
		// node.Recover): an interrupted action reads as failed, a reboot
		// forgets what ran.
		if st := node.Recover(s.persist.State, d.rebooted); st != s.persist.State {
			d.log.Info("instance state read back", "service", name, "was", s.persist.State, "now", st, "host_rebooted", d.rebooted)
			if st != "" && st != s.persist.State {
				s.persist.Reason = fmt.Sprintf("%s was interrupted: vigild stopped meanwhile", s.persist.State)
			}
			s.persist.State = st
		}
		d.svcs[name] = s
		d.sayFailure(s)
	}
	s.path, s.mtime = path, mtime
	if err != nil {
		s.loadErr = err
		d.log.Error("service config does not validate; the last valid version stays in force", "service", name, "error", err)
		return
	}
	sum := sha256.Sum256(data)
	v := cluster.ConfigVersion{Sum: hex.EncodeToString(sum[:]), Content: data}
	switch {
	case synced != nil:
		v.Version = synced.Version
	case v.Sum == s.persist.ConfigSum:
		v.Version = s.persist.ConfigVersion // the version in force before a restart
	default:
		v.Version = max(s.persist.ConfigVersion, s.version.Version) + 1 // changed here
	}
	s.conf, s.loadErr, s.version = conf, nil, v
	if s.persist.ConfigVersion != v.Version || s.persist.ConfigSum != v.Sum {
		s.persist.ConfigVersion, s.persist.ConfigSum = v.Version, v.Sum
		if err := d.savePersisted(name, s.persist); err != nil {
			d.log.Error("persist service state", "service", name, "error", err)
		}
	}
	s.statusAt = time.Time{} // evaluate now
	d.log.Info("service config loaded", "service", name, "version", s.version.Version)
	go d.emit(api.Event{Kind: "config", Service: name, Node: d.node.Local})
}

// syncConfigs takes from a peer's dataset the service configs that are
// newer than ours, for services this node runs. A config is validated
// here before it is written; one that does not validate is refused.
func (d *Daemon) syncConfigs(peer string) {
	snap := d.view.Snapshot()
	p := snap.Peers[peer]
	if p == nil || p.Dataset == nil {
		return
	}
	for name, inst := range p.Dataset.Services {
		if !slices.Contains(inst.Nodes, d.node.Local) || inst.Config.Sum == "" {
			continue
		}
		if err := config.CheckServiceName(name); err != nil {
			d.log.Error("refused a config from a peer", "peer", peer, "error", err)
			continue
		}
		d.mu.Lock()
		s := d.svcs[name]
		newer := s == nil || inst.Config.Newer(s.version)
		path := filepath.Join(d.cfg.ConfigDir, name+".conf")
		if s != nil {
			path = s.path
		}
		d.mu.Unlock()
		if !newer {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		content, err := d.fetchConfig(ctx, peer, p.Dataset.Sync, name, inst.Config)
		var conf *config.Service
		if err == nil {
			conf, err = d.parse(ctx, path, content)
		}
		cancel()
		if err == nil && !slices.Contains(strings.Fields(conf.Keywords["nodes"]), d.node.Local) {
			err = fmt.Errorf("its nodes (%s) do not list this node %s", conf.Keywords["nodes"], d.node.Local)
		}
		if err != nil {
			d.log.Error("refused a config from a peer: it does not validate here", "service", name, "peer", peer, "error", err)
			continue
		}
		mtime := time.Now()
		if err := action.WriteFileAtomic(path, content, 0o600, mtime); err != nil {
			d.log.Error("write synced config", "service", name, "error", err)
			continue
		}
		d.log.Info("service config synced from peer", "service", name, "peer", peer, "version", inst.Config.Version)
		d.loadService(context.Background(), name, path, mtime, &inst.Config)
	}
}

func (d *Daemon) statusLoop(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, name := range d.serviceNames() {
				d.maybeRefresh(ctx, name, now)
			}
		}
	}
}

// maybeRefresh starts a status evaluation of a service when one is due:
// all resources every status_schedule, the monitored ones every
// monitor_schedule. Evaluations run in the background, one at a time per
// service, so a hung resource stalls only its own service.
func (d *Daemon) maybeRefresh(ctx context.Context, name string, now time.Time) {
	d.mu.Lock()
	s := d.svcs[name]
	if s == nil || s.conf == nil || s.refreshing {
		d.mu.Unlock()
		return
	}
	full := now.Sub(s.statusAt) >= duration(s.conf.Keywords["status_schedule"], 10*time.Second)
	mon := !full && hasMonitored(s.conf) && now.Sub(s.monitorAt) >= duration(s.conf.Keywords["monitor_schedule"], time.Second)
	if !full && !mon {
		d.mu.Unlock()
		return
	}
	s.refreshing = true
	conf, prev := s.conf, s.status
	d.mu.Unlock()
	go func() {
		begin := time.Now()
		var only func(*config.Resource) bool
		if !full {
			only = func(r *config.Resource) bool { return r.Monitor }
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st := d.engine.Refresh(cctx, conf, &prev, only)
		cancel()
		d.mu.Lock()
		s.refreshing = false
		if s.conf != conf || s.evalBegin.After(begin) {
			// The config changed meanwhile, or a later evaluation (after
			// an action) already stored a fresher status.
			d.mu.Unlock()
			return
		}
		s.evalBegin = begin
		st = d.finishStatusLocked(s, st)
		changed := st.Avail != s.status.Avail || st.Overall != s.status.Overall
		s.status = st
		if full {
			s.statusAt = now
		}
		s.monitorAt = now
		d.mu.Unlock()
		d.metrics.serviceStatus(name, st)
		d.monitor(ctx, name, st)
		if changed {
			d.emit(api.Event{Kind: "status", Service: name, Node: d.node.Local, Message: st.Avail.String()})
		}
	}()
}

// finishStatusLocked adds what only the daemon knows to an evaluation:
// the config sync and heartbeat branches, and the frozen flag.
func (d *Daemon) finishStatusLocked(s *service, st status.Service) status.Service {
	rs := slices.DeleteFunc(slices.Clone(st.Resources), func(r status.Resource) bool { return r.Group == status.GroupSync || r.Group == status.GroupHB })
	rs = append(rs, d.syncStatusLocked(s))
	rs = append(rs, d.hbStatus()...)
	out := status.Summarize(st.Name, rs)
	out.Frozen = s.persist.Expect.Value == "frozen"
	return out
}

// syncStatusLocked compares this node's config of s with what its other
// nodes publish.
func (d *Daemon) syncStatusLocked(s *service) status.Resource {
	r := status.Resource{RID: action.SyncRID, Group: status.GroupSync, Type: "sync.config", Label: "svc config sync to nodes", Status: status.NA}
	nodes := strings.Fields(s.conf.Keywords["nodes"])
	snap := d.view.Snapshot()
	var others, differ []string
	for _, n := range nodes {
		if n == d.node.Local {
			continue
		}
		p := snap.Peers[n]
		if p == nil || p.Dataset == nil || p.State == cluster.Lost {
			continue
		}
		others = append(others, n)
		if inst := p.Dataset.Services[s.name]; inst == nil || inst.Config.Sum != s.version.Sum {
			differ = append(differ, n)
		}
	}
	switch {
	case len(others) == 0:
	case len(differ) > 0:
		r.Status = status.Warn
		r.Log = []string{"config differs on " + strings.Join(differ, ", ")}
	default:
		r.Status = status.Up
	}
	if s.loadErr != nil {
		r.Status = status.Warn
		r.Log = append(r.Log, "local file does not validate; the last valid version is in force")
	}
	return r
}

// hbStatus draws the heartbeats under the hb branch.
func (d *Daemon) hbStatus() []status.Resource {
	snap := d.view.Snapshot()
	var out []status.Resource
	for _, hb := range d.node.Heartbeats {
		r := status.Resource{RID: hb.Name, Group: status.GroupHB, Type: hb.Type, Status: status.Up}
		var parts []string
		stale := 0
		for _, n := range d.node.Nodes {
			p := snap.Peers[n]
			if p == nil {
				continue
			}
			seen := p.HB[hb.Name]
			if seen == nil || seen.Stale || seen.LastBeat.IsZero() {
				stale++
				parts = append(parts, n+" stale")
			} else {
				parts = append(parts, n+" up")
			}
		}
		if stale > 0 {
			r.Status = status.Warn
		}
		r.Label = strings.TrimPrefix(hb.Type, "hb.") + ": " + strings.Join(parts, ", ")
		out = append(out, r)
	}
	return out
}

func hasMonitored(c *config.Service) bool {
	return slices.ContainsFunc(c.Resources, func(r *config.Resource) bool { return r.Monitor })
}

func duration(s string, def time.Duration) time.Duration {
	if d, err := value.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}

// Status implements api.Backend.
func (d *Daemon) Status(context.Context) *api.ClusterStatus {
	snap := d.view.Snapshot()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &api.ClusterStatus{Cluster: d.node.Cluster, Local: d.node.Local, Nodes: d.node.Nodes,
		Node: map[string]*api.NodeStatus{}, Rejects: snap.Rejects}
	local := &api.NodeStatus{State: d.state, Since: d.started, Services: map[string]*cluster.ServiceInstance{}, ClusterConf: d.node.Sum}
	for name, s := range d.svcs {
		local.Services[name] = d.instanceLocked(s)
	}
	st.Node[d.node.Local] = local
	for name, p := range snap.Peers {
		ns := &api.NodeStatus{State: p.State, Since: p.Since, HB: p.HB, Services: map[string]*cluster.ServiceInstance{}}
		if p.Dataset != nil {
			ns.ClusterConf = p.Dataset.ClusterConf
			for svc, inst := range p.Dataset.Services {
				ns.Services[svc] = inst
			}
		}
		st.Node[name] = ns
	}
	return st
}

// Action implements api.Backend: start and stop run here, under the same
// per-service lock svcmgr takes when it runs alone; the others set the
// operator's cluster-wide expectation, which the orchestrators of every
// node act on.
func (d *Daemon) Action(ctx context.Context, name string, req api.ActionRequest, progress func(string)) error {
	s, err := d.lookup(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	conf, loadErr, expect, state := s.conf, s.loadErr, s.persist.Expect, d.state
	d.mu.Unlock()
	if err := refuseInvalid(name, s.path, conf, loadErr, req.Action, progress); err != nil {
		return err
	}
	nodes := strings.Fields(conf.Keywords["nodes"])
	snap := d.view.Snapshot()
	setExpect := func(e cluster.Expectation) error {
		e.Version, e.By = expect.Version+1, d.node.Local
		return d.setExpect(name, e)
	}
	switch req.Action {
	case "start":
		if err := action.CheckNode(conf, d.node.Local); err != nil {
			return err
		}
		if err := d.admit(name); err != nil {
			return err
		}
		if err := setExpect(cluster.Expectation{}); err != nil {
			return err
		}
		return d.runAction(ctx, name, "start", req.RIDs, progress)
	case "stop":
		if len(req.RIDs) == 0 {
			if err := setExpect(cluster.Expectation{Value: "stopped"}); err != nil {
				return err
			}
		}
		return d.runAction(ctx, name, "stop", req.RIDs, progress)
	case "freeze":
		return setExpect(cluster.Expectation{Value: "frozen", Target: expect.Target})
	case "thaw":
		return setExpect(cluster.Expectation{Target: expect.Target})
	case "switch", "takeover", "giveback":
		if expect.Value == "frozen" {
			return fmt.Errorf("service %s is frozen: thaw it first", name)
		}
		to := req.To
		switch req.Action {
		case "takeover":
			to = d.node.Local
		case "giveback":
			if len(nodes) == 0 {
				return fmt.Errorf("service %s has no nodes", name)
			}
			to = nodes[0]
		}
		if !slices.Contains(nodes, to) {
			return fmt.Errorf("switch: %q is not one of the service's nodes %v (use --to NODE)", to, nodes)
		}
		if to == d.node.Local {
			if state != cluster.Ready {
				return fmt.Errorf("node %s is %s: try again when it is ready", to, state)
			}
		} else if p := snap.Peers[to]; p == nil || p.State != cluster.Ready {
			st := cluster.Unknown
			if p != nil {
				st = p.State
			}
			return fmt.Errorf("node %s is %s: it cannot take the service now", to, st)
		}
		if err := setExpect(cluster.Expectation{Target: to}); err != nil {
			return err
		}
		progress(fmt.Sprintf("%s: %s to %s asked", name, req.Action, to))
		if !req.Wait {
			return nil
		}
		return d.waitUp(ctx, name, to, progress)
	}
	return fmt.Errorf("unknown action %q: use start, stop, switch, takeover, giveback, freeze or thaw", req.Action)
}

// waitUp waits until the service is up on node (for --wait).
func (d *Daemon) waitUp(ctx context.Context, name, node string, progress func(string)) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		st := d.Status(ctx)
		if ns := st.Node[node]; ns != nil {
			if inst := ns.Services[name]; inst != nil && inst.Status.Avail == status.Up {
				progress(fmt.Sprintf("%s: up on %s", name, node))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to be up on %s: %w", name, node, ctx.Err())
		case <-t.C:
		}
	}
}

// ConfigGet implements api.Backend.
func (d *Daemon) ConfigGet(_ context.Context, name string) ([]byte, error) {
	s, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(s.path)
}

// ConfigSet implements api.Backend: the change is validated whole before
// it is written; the new version then reaches the service's nodes.
func (d *Daemon) ConfigSet(ctx context.Context, name string, kv []string) error {
	s, err := d.lookup(name)
	if err != nil {
		return err
	}
	out, err := d.engine.SetKeywords(ctx, s.path, kv)
	if err == nil {
		_, err = d.parse(ctx, s.path, out)
	}
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) || errors.Is(err, cluster.ErrNoFencing) {
			return fmt.Errorf("refused, nothing changed:\n%w", err)
		}
		return err
	}
	now := time.Now()
	if err := action.WriteFileAtomic(s.path, out, 0o600, now); err != nil {
		return err
	}
	d.loadService(ctx, name, s.path, now, nil)
	d.publish()
	return nil
}

// ConfigCommit implements api.Backend: a hand-edited file is validated
// and, when valid, becomes the version in force and is propagated.
func (d *Daemon) ConfigCommit(ctx context.Context, name string) error {
	s, err := d.lookup(name)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	if _, err := d.parse(ctx, s.path, data); err != nil {
		return fmt.Errorf("refused, the version in force stays:\n%w", err)
	}
	now := time.Now()
	if err := os.Chtimes(s.path, now, now); err != nil {
		return err
	}
	d.loadService(ctx, name, s.path, now, nil)
	d.publish()
	return nil
}
