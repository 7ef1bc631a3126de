package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
)

// restarts is what the monitor remembers of one resource.
type restarts struct {
	attempts int
	last     time.Time // last restart attempt
	upSince  time.Time // up continuously since
}

// restartReset is how long a resource must stay up for its restart budget
// to be whole again.
const restartReset = time.Minute

// monitor acts on monitored resources found down in a service that runs
// here: restart in place up to the resource's `restart` budget, spaced by
// `restart_delay`; past it, the service's monitor_action (failover: stop
// here and leave the node out of the candidates; freeze_stop; none).
func (d *Daemon) monitor(ctx context.Context, name string, st status.Service) {
	d.mu.Lock()
	s := d.svcs[name]
	if s == nil || s.conf == nil || s.persist.State != string(orchestrator.Started) || s.persist.Expect.Value != "" || d.frozen() {
		d.mu.Unlock()
		return
	}
	conf := s.conf
	d.mu.Unlock()
	byRID := map[string]status.Resource{}
	for _, r := range st.Resources {
		byRID[r.RID] = r
	}
	now := time.Now()
	var restart []string
	var exhausted *config.Resource
	d.orch.mu.Lock()
	for _, r := range conf.Resources {
		if !r.Monitor || r.Disable {
			continue
		}
		key := name + "/" + r.RID
		rs := d.orch.restarts[key]
		if rs == nil {
			rs = &restarts{}
			d.orch.restarts[key] = rs
		}
		switch byRID[r.RID].Status {
		case status.Up, status.StdbyUp, status.NA:
			if rs.upSince.IsZero() {
				rs.upSince = now
			}
			if now.Sub(rs.upSince) >= restartReset {
				rs.attempts = 0
				d.noteRestart(name, r.RID, 0)
			}
			continue
		}
		rs.upSince = time.Time{}
		if rs.attempts < r.Restart {
			if now.Sub(rs.last) >= r.RestartDelay {
				rs.attempts++
				d.noteRestart(name, r.RID, rs.attempts)
				rs.last = now
				restart = append(restart, r.RID)
			}
			continue
		}
		exhausted = r
	}
	busy := d.orch.busy[name]
	if !busy && (len(restart) > 0 || exhausted != nil) {
		d.orch.busy[name] = true
	}
	d.orch.mu.Unlock()
	if busy || (len(restart) == 0 && exhausted == nil) {
		return
	}
	go func() {
		defer func() {
			d.orch.mu.Lock()
			delete(d.orch.busy, name)
			d.orch.mu.Unlock()
		}()
		log := d.log.Named("monitor").With("service", name)
		if exhausted == nil {
			// A restart in place is a start: it checks what any start
			// checks (a peer may have taken the service over meanwhile).
			if err := d.admit(name); err != nil {
				log.Error("monitored resource down, not restarted here", "rids", restart, "reason", err)
				return
			}
			log.Warn("monitored resource down: restarting it in place", "rids", restart)
			d.emit(api.Event{Kind: "monitor", Service: name, Message: fmt.Sprintf("restart %v", restart)})
			if err := d.runAction(ctx, name, "start", restart, func(string) {}); err != nil {
				log.Error("restart failed", "rids", restart, "error", err)
			}
			return
		}
		action := conf.Keywords["monitor_action"]
		msg := fmt.Sprintf("%s is down past its %d restart(s): %s", exhausted.RID, exhausted.Restart, action)
		log.Error(msg)
		d.emit(api.Event{Kind: "monitor", Service: name, Message: msg})
		switch action {
		case "none":
			return
		case "freeze_stop":
			d.runAction(ctx, name, "stop", nil, func(string) {})
			d.mu.Lock()
			e := d.svcs[name].persist.Expect
			d.mu.Unlock()
			if err := d.setExpect(name, cluster.Expectation{Value: "frozen", Version: e.Version + 1, By: d.node.Local}); err != nil {
				log.Error("freeze after the monitor's stop", "error", err)
			}
		default: // failover
			d.runAction(ctx, name, "stop", nil, func(string) {})
			d.noteFailure(name, msg)
			d.setState(name, orchestrator.Failed)
		}
	}()
}

// setExpect records a new operator expectation, persists it and publishes
// it. An operator's start (the automatic expectation) clears the failures
// that kept this node out of the candidates.
func (d *Daemon) setExpect(name string, e cluster.Expectation) error {
	d.mu.Lock()
	s := d.svcs[name]
	if s == nil {
		d.mu.Unlock()
		return fmt.Errorf("service %s: %w", name, action.ErrNoService)
	}
	s.persist.Expect = e
	d.clearFailureLocked(s, e)
	if e.Value == "" {
		switch s.persist.State {
		case string(orchestrator.StartFailed), string(orchestrator.Failed):
			s.persist.State = ""
		}
	}
	p := s.persist
	d.mu.Unlock()
	if len(d.hbChans) > 0 {
		d.publish()
	}
	return d.savePersisted(name, p)
}
