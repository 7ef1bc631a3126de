package daemon

import (
	"fmt"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/status"
)

// noteFailure records why the local instance is about to enter a failed
// state (start failed, stop failed, failed): print status, svcmon and the
// JSON show it beside the state, as pcs status lists failed actions. The
// setState that follows persists it.
func (d *Daemon) noteFailure(name, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.svcs[name]; s != nil {
		s.persist.Reason = reason
	}
}

// withState adds the instance's state to an evaluation and, for a
// failure, its reason and what clears it.
func withState(st status.Service, name string, p persisted) status.Service {
	st.State, st.Reason = p.State, ""
	if st.Failed() {
		reason := p.Reason
		if reason == "" {
			reason = "no reason recorded"
		}
		st.Reason = fmt.Sprintf("%s; the orchestrator leaves it here until an operator acts (svcmgr -s %s start)", reason, name)
	}
	return st
}

// sayFailure tells, once when vigild first reads a service, that its
// instance is still failed from before: with orchestrate = start nothing
// starts it, and a restart of vigild must not pass over that in silence.
func (d *Daemon) sayFailure(s *service) {
	st := withState(status.Service{}, s.name, s.persist)
	if !st.Failed() {
		return
	}
	d.log.Warn("service left failed by a former run: nothing starts it until an operator does", "service", s.name, "state", st.State, "reason", s.persist.Reason, "fix", "svcmgr -s "+s.name+" start")
	go d.emit(api.Event{Kind: "warn", Service: s.name, Node: d.node.Local, Message: st.State + ": " + st.Reason})
}

// refuseInvalid refuses an operator's action on a service whose file on
// disk does not validate, naming the file and the lines: acting on the
// last valid version without a word would hide the edit. A stop goes on
// (stopping must never wait on a typo), saying which version it uses.
func refuseInvalid(name, path string, conf *config.Service, loadErr error, verb string, progress func(string)) error {
	if loadErr == nil {
		return nil
	}
	if conf == nil {
		return fmt.Errorf("service %s: %s does not validate, and no valid version was ever loaded:\n%w", name, path, loadErr)
	}
	if verb == "stop" {
		progress(fmt.Sprintf("%s: %s does not validate; stopping with the last valid version:\n%v", name, path, loadErr))
		return nil
	}
	return fmt.Errorf("service %s: refused, %s does not validate (the last valid version stays in force; fix the file, or svcmgr -s %s validate to see it again):\n%w", name, path, name, loadErr)
}
