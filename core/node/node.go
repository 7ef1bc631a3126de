// Package node holds the decisions a node daemon takes around the
// orchestrator, as pure functions of what the daemon knows: how the
// orchestrator's view is built from the cluster view and the local
// services, how a persisted instance state is read back after a restart or
// a reboot, whether the daemon has been unheard too long to trust its own
// view, and whether a fence still has its reason. It starts no goroutine,
// reads no clock and does no I/O: core/daemon feeds it and carries out what
// it says, and the simulation (core/sim) runs the same code on a simulated
// clock.
package node

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/orchestrator"
	"github.com/vigil-ha/vigil/core/status"
)

// Service is what the daemon holds of one local service.
type Service struct {
	Name string
	// Keywords are the service's DEFAULT keywords (orchestrate, nodes,
	// stonith...).
	Keywords map[string]string
	// State is the local instance's persisted orchestration state.
	State string
	// Expect is the operator's expectation known here.
	Expect cluster.Expectation
	// Status is the last evaluation; Evaluated is false before the first.
	Status    status.Service
	Evaluated bool
	// Since is when State was entered.
	Since time.Time
}

// ViewInput is everything the orchestrator's view is built from.
type ViewInput struct {
	Local string
	Now   time.Time
	// LocalState is this daemon's own state (joining, ready).
	LocalState cluster.NodeState
	Peers      map[string]*cluster.Peer
	// Stonith: the nodes with a fencing method, and their static delays.
	Stonith map[string]time.Duration
	// Fenced: the peers whose power-off was confirmed since last heard.
	Fenced             map[string]bool
	Frozen             bool
	Quorum             bool
	ReadyWindow        time.Duration
	PriorityFenceDelay time.Duration
	Order              []string
	Resumed            bool
	// SelfStopWait: orchestrator.View.SelfStopWait.
	SelfStopWait time.Duration
	Services     []Service
}

// SelfStopWait is orchestrator.View.SelfStopWait for a cluster of nodes
// nodes and arbitrators arbitrators whose longest heartbeat timeout is
// timeout: three timeouts (for the lost node to judge this side lost, for
// this side's last report that still saw it, and for its stop) where
// quorum is a majority; none where a node alone keeps quorum (two nodes
// without an arbitrator, which both keep it in a split).
func SelfStopWait(nodes, arbitrators int, timeout time.Duration) time.Duration {
	if HasQuorum(nodes, arbitrators, 1, 0) {
		return 0
	}
	return 3 * timeout
}

// NodeState maps a cluster view's node state to the orchestrator's.
func NodeState(s cluster.NodeState) orchestrator.NodeState {
	switch s {
	case cluster.Ready:
		return orchestrator.NodeReady
	case cluster.Joining:
		return orchestrator.NodeJoining
	case cluster.Lost:
		return orchestrator.NodeLost
	}
	return orchestrator.NodeUnknown
}

// Side is the local side of the cluster, sorted: this node and every peer
// ready or joining whose own last dataset sees this node too. A peer heard
// over a link that carries only one way counts on neither side, so two
// sides can never both count it (and a quorum counted twice).
func Side(local string, peers map[string]*cluster.Peer) []string {
	side := []string{local}
	for name, p := range peers {
		if (p.State == cluster.Ready || p.State == cluster.Joining) && p.Dataset != nil && slices.Contains(p.Dataset.Sees, local) {
			side = append(side, name)
		}
	}
	slices.Sort(side)
	return side
}

// Sees is what a node publishes of its own view: the peers it hears,
// ready or joining.
func Sees(peers map[string]*cluster.Peer) []string {
	var out []string
	for name, p := range peers {
		if p.State == cluster.Ready || p.State == cluster.Joining {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// BuildView turns the daemon's knowledge into the orchestrator's input.
func BuildView(in ViewInput) orchestrator.View {
	v := orchestrator.View{Local: in.Local, Now: in.Now, Nodes: map[string]orchestrator.Node{},
		Quorum: in.Quorum, ReadyWindow: in.ReadyWindow, PriorityFenceDelay: in.PriorityFenceDelay,
		Order: in.Order, Resumed: in.Resumed, SelfStopWait: in.SelfStopWait}
	_, st := in.Stonith[in.Local]
	v.Nodes[in.Local] = orchestrator.Node{Name: in.Local, State: NodeState(in.LocalState), Frozen: in.Frozen, Stonith: st, FenceDelay: in.Stonith[in.Local]}
	for name, p := range in.Peers {
		delay, st := in.Stonith[name]
		var heard time.Time
		for _, hb := range p.HB {
			if hb.LastBeat.After(heard) {
				heard = hb.LastBeat
			}
		}
		frozen := p.Dataset != nil && (p.Dataset.Frozen || p.Dataset.ClusterFreeze.Value == "frozen")
		v.Nodes[name] = orchestrator.Node{Name: name, State: NodeState(p.State), Fenced: in.Fenced[name], Stonith: st, FenceDelay: delay, HeardAt: heard, Frozen: frozen}
	}
	for _, s := range in.Services {
		svc := orchestrator.Service{
			Name: s.Name, Orchestrate: s.Keywords["orchestrate"], Nodes: strings.Fields(s.Keywords["nodes"]),
			Stonith: s.Keywords["stonith"] != "false", Priority: priority(s.Keywords["priority"]), Expect: orchestrator.Expectation(s.Expect.Value),
			Target: s.Expect.Target, Instances: map[string]orchestrator.Instance{},
		}
		mine := Instance(s.Status, s.State, s.Evaluated)
		mine.Since = s.Since
		svc.Instances[in.Local] = mine
		for peer, p := range in.Peers {
			if p.Dataset == nil {
				continue
			}
			if inst := p.Dataset.Services[s.Name]; inst != nil {
				svc.Instances[peer] = Instance(inst.Status, inst.State, !inst.Updated.IsZero())
			}
		}
		v.Services = append(v.Services, svc)
	}
	slices.SortFunc(v.Services, func(a, b orchestrator.Service) int { return strings.Compare(a.Name, b.Name) })
	return v
}

// Instance is the orchestrator's reading of one instance's report.
func Instance(st status.Service, state string, evaluated bool) orchestrator.Instance {
	if state == "" {
		state = string(orchestrator.Idle)
	}
	return orchestrator.Instance{State: orchestrator.InstanceState(state), Avail: st.Avail,
		Unknown: !evaluated, Unreadable: evaluated && Unreadable(st.Resources)}
}

// Unreadable reports whether a resource that weighs on avail (enabled,
// not optional, of an avail group) reads undef: its status could not be
// read, so the instance may be running whatever avail says.
func Unreadable(rs []status.Resource) bool {
	return slices.ContainsFunc(rs, func(r status.Resource) bool {
		return !r.Disable && !r.Optional && status.IsAvailGroup(r.Group) && r.Status == status.Undef
	})
}

// Recover is the state a persisted instance state is read back as when the
// daemon starts. An action that was starting or stopping when the daemon
// died may still be finishing in a plugin, or have left the instance
// partly up: it reads as interrupted (active, and stopped by its node).
// After a reboot of the host (rebooted) nothing started before it runs:
// every state but a failure reads idle. After a daemon restart alone,
// started stays started.
func Recover(state string, rebooted bool) string {
	switch orchestrator.InstanceState(state) {
	case orchestrator.Ready:
		return "" // a claim is decided again once the node has joined
	case orchestrator.Starting, orchestrator.Stopping, orchestrator.Interrupted:
		if rebooted {
			return "" // a reboot left nothing half done
		}
		// A plugin call may still be finishing it: active until the
		// node has stopped what it may have left.
		return string(orchestrator.Interrupted)
	case orchestrator.Started, orchestrator.Stopped:
		if rebooted {
			return ""
		}
	}
	return state
}

// Unheard reports whether this daemon went unheard for longer than the
// heartbeat timeout: its last publication was longer ago than timeout
// (a SIGSTOP, a stalled disk, a starved process). Its view of the peers is
// then as old as the gap, and must be read again before it acts.
func Unheard(lastPublished, now time.Time, timeout time.Duration) bool {
	return !lastPublished.IsZero() && now.Sub(lastPublished) > timeout
}

// FenceStillDue reports whether a fence of target still has its reason
// right before the power-off is sent: the target is still lost, or still
// never heard.
func FenceStillDue(p *cluster.Peer) bool {
	return p != nil && (p.State == cluster.Lost || p.State == cluster.Unknown)
}

// FenceDue is FenceStillDue for a fence attempt in flight: also only while
// this side has quorum (unknown before the first decision counts as
// having it). A node that became the minority fences nothing.
func FenceDue(quorum, quorumKnown bool, p *cluster.Peer) bool {
	return (quorum || !quorumKnown) && FenceStillDue(p)
}

// priority is a service's priority keyword; the default (50) when unset
// or not a number (the config's validation refuses those).
func priority(kw string) int {
	if p, err := strconv.Atoi(strings.TrimSpace(kw)); err == nil && p >= 0 {
		return p
	}
	return 50
}
