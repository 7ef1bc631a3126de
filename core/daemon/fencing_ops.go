package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/journal"
)

// fenceLevels powers target off through each of its fencing methods in
// level order (IPMI, then a PDU...), until one confirms. It returns the
// confirming method's lines, or every method's error.
func (d *Daemon) fenceLevels(ctx context.Context, target string) ([]string, error) {
	levels := d.node.FenceLevels[target]
	if len(levels) == 0 {
		if st, ok := d.node.Stonith[target]; ok {
			levels = []cluster.StonithConfig{st}
		}
	}
	var errs []error
	for _, lv := range levels {
		fencer, err := d.host.Stonith(ctx, lv.Type)
		var lines []string
		if err == nil {
			lines, err = fencer.Fence(ctx, target, lv.Keywords)
		}
		d.metrics.fenceAttempt(target, lv.Name, err == nil)
		if err == nil {
			if len(levels) > 1 {
				lines = append(lines, "confirmed by "+lv.Name)
			}
			return lines, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("%s (level %d): %w", lv.Name, lv.Level, err))
		if len(levels) > 1 {
			d.log.Named("stonith").Warn("fence level failed: trying the next one", "target", target, "method", lv.Name, "error", err)
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("no fencing method for %s", target)
	}
	return nil, errors.Join(errs...)
}

// operatorConfirmed reports whether an operator confirmed target off
// (nodemgr fence confirm) since it was lost: a fence in flight stops.
func (d *Daemon) operatorConfirmed(target string) bool {
	if d.ops == nil {
		return false
	}
	d.ops.mu.Lock()
	defer d.ops.mu.Unlock()
	return d.ops.confirmed[target]
}

// confirmFence records an operator's word that a lost node is off: the
// takeover goes on as after a fence, recorded as the operator's. Refused
// for a node that is heard (it runs: confirming it off would start its
// services twice).
func (d *Daemon) confirmFence(target string, uid int, progress func(string)) error {
	if target == "" {
		return errors.New("fence confirm: name the node (nodemgr fence confirm NODE)")
	}
	if target == d.node.Local {
		return fmt.Errorf("fence confirm refused: %s is this node, which is running", target)
	}
	p := d.view.Snapshot().Peers[target]
	if p == nil {
		return fmt.Errorf("fence confirm refused: %s is not a node of the cluster %v", target, d.node.Nodes)
	}
	if p.State == cluster.Ready || p.State == cluster.Joining {
		return fmt.Errorf("fence confirm refused: %s is heard (%s, last beat %s ago): it is not off; nothing to confirm",
			target, p.State, time.Since(lastBeat(p)).Round(time.Millisecond))
	}
	d.ops.mu.Lock()
	d.ops.confirmed[target] = true
	d.ops.mu.Unlock()
	d.orch.mu.Lock()
	d.orch.fenced[target] = true
	d.orch.mu.Unlock()
	d.poke()
	d.log.Warn("node confirmed off by the operator: takeovers go on", "target", target, "uid", uid)
	d.metrics.fenceAttempt(target, "operator", true)
	d.record(journal.Entry{Kind: "fence_confirm", Node: target, UID: &uid, Message: "confirmed off by the operator"})
	d.ops.flight.fenced(target, time.Now())
	progress(fmt.Sprintf("%s confirmed off by uid %d: takeovers go on", target, uid))
	return nil
}

// forgetConfirmations drops the operator's confirmation of nodes heard
// again: lost again, they must be fenced or confirmed again.
func (d *Daemon) forgetConfirmations() {
	snap := d.view.Snapshot()
	d.ops.mu.Lock()
	defer d.ops.mu.Unlock()
	for n := range d.ops.confirmed {
		if p := snap.Peers[n]; p == nil || p.State == cluster.Ready || p.State == cluster.Joining {
			delete(d.ops.confirmed, n)
		}
	}
}

func lastBeat(p *cluster.Peer) time.Time {
	var t time.Time
	for _, hb := range p.HB {
		if hb.LastBeat.After(t) {
			t = hb.LastBeat
		}
	}
	return t
}

// checkFencing asks every fencing method of node (every node for "") its
// power status: nothing is powered. The results are kept for svcmon and
// the metrics; a method that stops answering is an event.
func (d *Daemon) checkFencing(ctx context.Context, only string) []api.FenceCheck {
	var out []api.FenceCheck
	for _, n := range d.node.Nodes {
		if only != "" && n != only {
			continue
		}
		for _, lv := range d.node.FenceLevels[n] {
			c := api.FenceCheck{Node: n, Method: lv.Name, Type: strings.TrimPrefix(lv.Type, "stonith."), Level: lv.Level}
			begin := time.Now()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			fencer, err := d.host.Stonith(cctx, lv.Type)
			if err == nil {
				c.Power, err = fencer.PowerStatus(cctx, n, lv.Keywords)
			}
			cancel()
			if ctx.Err() != nil {
				return out
			}
			c.At, c.Took, c.OK = time.Now(), time.Since(begin), err == nil
			if err != nil {
				c.Error = err.Error()
			}
			d.ops.mu.Lock()
			prev, seen := d.ops.checks[lv.Name]
			d.ops.checks[lv.Name] = c
			d.ops.mu.Unlock()
			d.metrics.fenceCheck(c)
			switch {
			case !c.OK && (!seen || prev.OK):
				d.log.Error("fencing method check failed: fencing this node would fail now", "target", n, "method", lv.Name, "error", err)
				d.record(journal.Entry{Kind: "fence_check", Node: n, Message: lv.Name + " failed: " + c.Error})
			case c.OK && seen && !prev.OK:
				d.log.Info("fencing method answers again", "target", n, "method", lv.Name, "power", c.Power)
				d.record(journal.Entry{Kind: "fence_check", Node: n, Message: lv.Name + " answers again (power " + c.Power + ")"})
			}
			out = append(out, c)
		}
	}
	return out
}

// fenceCheckLoop runs checkFencing every fence_check_interval.
func (d *Daemon) fenceCheckLoop(ctx context.Context) {
	every := d.node.FenceCheckInterval
	if every <= 0 || len(d.node.FenceLevels) == 0 {
		return
	}
	// The first check soon after start: a broken BMC is known at once.
	timer := time.NewTimer(min(every, 2*time.Second))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			d.checkFencing(ctx, "")
			timer.Reset(every)
		}
	}
}

// testFence is nodemgr fence test: a status call to each of the node's
// methods, now, nothing powered.
func (d *Daemon) testFence(ctx context.Context, target string, progress func(string)) error {
	if _, ok := d.node.FenceLevels[target]; !ok {
		return fmt.Errorf("fence test: %s has no fencing method in %s (add a [stonith#%s] section)", target, d.node.Path, target)
	}
	var failed []string
	for _, c := range d.checkFencing(ctx, target) {
		if c.OK {
			progress(fmt.Sprintf("%s level %d (%s): ok, power %s, %s", c.Method, c.Level, c.Type, c.Power, c.Took.Round(time.Millisecond)))
		} else {
			progress(fmt.Sprintf("%s level %d (%s): FAILED: %s", c.Method, c.Level, c.Type, c.Error))
			failed = append(failed, c.Method)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("fence test of %s: %s failed: fencing %s would fail there", target, strings.Join(failed, ", "), target)
	}
	return nil
}
