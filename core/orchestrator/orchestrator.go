// Package orchestrator decides where services run. It is a pure function:
// given the cluster view as this node sees it (which already holds the
// latest events: a peer lost, a fence confirmed, an operator's action, a
// monitor verdict), Decide returns what this node must do now. It touches
// no process, file or socket; the daemon executes the actions and feeds
// their results back into the next view.
//
// Every node computes the same placement leader from the same merged view
// (the service's nodes order, skipping nodes that cannot take it); only the
// leader acts, after a short ready window in which a peer can still claim
// the start. The safety rules of DESIGN.md are here: never start what a
// live peer reports up, starting, ready or stopping; a service up on two
// nodes is warn and nothing is done about it automatically; before taking
// over from a lost peer that ran it, fence that peer and require the
// confirmation; no automatic failback; no orchestration without quorum.
package orchestrator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/status"
)

// InstanceState is where a service's instance on one node stands.
type InstanceState string

// Instance states.
const (
	Idle        InstanceState = "idle"
	Ready       InstanceState = "ready" // claimed by its node: about to start
	Starting    InstanceState = "starting"
	Started     InstanceState = "started"
	StartFailed InstanceState = "start failed"
	Stopping    InstanceState = "stopping"
	Stopped     InstanceState = "stopped"
	StopFailed  InstanceState = "stop failed"
	// Failed: a monitored resource stayed down past its restarts; the
	// node is out of the candidates until an operator starts it again.
	Failed InstanceState = "failed"
)

// NodeState is a node's state as this node sees it.
type NodeState string

// Node states (the cluster view's).
const (
	NodeReady   NodeState = "ready"
	NodeJoining NodeState = "joining"
	NodeLost    NodeState = "lost"
	NodeUnknown NodeState = "unknown"
)

// Node is one node of the cluster.
type Node struct {
	Name  string
	State NodeState
	// Frozen: the operator froze the whole node.
	Frozen bool
	// Fenced: this lost node's power-off was confirmed since it was lost.
	Fenced bool
	// Stonith: a fencing method is configured for the node.
	Stonith bool
}

// Instance is a service on one node, as that node last reported it.
type Instance struct {
	State InstanceState
	Avail status.Status
	// Since is when State was entered (meaningful for the local node).
	Since time.Time
	// Unknown: its node has not evaluated it yet (a daemon just started):
	// it may well run, so nobody may start it elsewhere meanwhile.
	Unknown bool
}

// active reports whether the instance runs or is on its way up or down:
// nobody else may start the service then.
func (i Instance) active() bool {
	if i.Unknown {
		return true
	}
	switch i.State {
	case Ready, Starting, Stopping:
		return true
	case Started, StopFailed:
		// A status that could not be read (a plugin down) proves
		// nothing: the instance may still run.
		if i.Avail == status.Undef {
			return true
		}
	}
	return i.Avail == status.Up || i.Avail == status.Warn
}

// Expectation is the operator's cluster-wide wish for a service.
type Expectation string

// Expectations.
const (
	// ExpectAuto: the orchestrator places the service (the default).
	ExpectAuto Expectation = ""
	// ExpectStopped: stopped everywhere and left alone until started.
	ExpectStopped Expectation = "stopped"
	// ExpectFrozen: left alone as it is.
	ExpectFrozen Expectation = "frozen"
)

// Service is one service as the orchestrator sees it.
type Service struct {
	Name string
	// Orchestrate is no, start or ha.
	Orchestrate string
	// Nodes is the placement order.
	Nodes []string
	// Stonith is false when the service opts out of fencing.
	Stonith bool
	Expect  Expectation
	// Target, when set, is the node an operator asked for (switch,
	// takeover, giveback); the service moves there and stays.
	Target    string
	Instances map[string]Instance
}

// View is what Decide needs.
type View struct {
	Local string
	Now   time.Time
	Nodes map[string]Node
	// Quorum: this node's partition may orchestrate.
	Quorum bool
	// ReadyWindow is how long a claim waits before the start, so that a
	// peer with another view can still be seen claiming.
	ReadyWindow time.Duration
	Services    []Service
}

// Kind says what an action does.
type Kind string

// Action kinds.
const (
	// Fence Node (a lost peer that ran the service) before the takeover.
	Fence Kind = "fence"
	// Claim: publish the local instance as ready (about to start).
	Claim Kind = "claim"
	// Start the service here.
	Start Kind = "start"
	// Stop the service here.
	Stop Kind = "stop"
	// Release: drop a claim this node may no longer act on.
	Release Kind = "release"
	// Warn: report a situation nothing automatic may fix.
	Warn Kind = "warn"
)

// Action is one thing this node must do.
type Action struct {
	Kind    Kind
	Service string
	Node    string // Fence: the node to fence
	Reason  string
}

func (a Action) String() string {
	s := string(a.Kind) + " " + a.Service
	if a.Node != "" {
		s += " node " + a.Node
	}
	return s + ": " + a.Reason
}

// Decide returns what the local node must do now, service by service.
func Decide(v View) []Action {
	var out []Action
	local, ok := v.Nodes[v.Local]
	if !ok || local.State != NodeReady {
		return nil // joining (or confused): never act on a partial view
	}
	if !v.Quorum {
		return nil
	}
	for _, s := range v.Services {
		out = append(out, decideService(v, local, s)...)
	}
	return out
}

func decideService(v View, local Node, s Service) []Action {
	if s.Orchestrate != "start" && s.Orchestrate != "ha" {
		return nil
	}
	act := func(k Kind, node, format string, args ...any) []Action {
		return []Action{{Kind: k, Service: s.Name, Node: node, Reason: fmt.Sprintf(format, args...)}}
	}
	mine := s.Instances[v.Local]
	if mine.Unknown {
		return nil // not evaluated here yet: nothing to decide on
	}
	// Live nodes that report the service up (any of them, listed or not).
	var up, busy []string
	for _, n := range sortedKeys(s.Instances) {
		inst := s.Instances[n]
		if n != v.Local {
			node, known := v.Nodes[n]
			if known && node.State == NodeLost {
				continue // judged below: fenced before a takeover
			}
			if (!known || node.State == NodeUnknown) && inst.active() {
				// A report from a node we cannot judge: wait, never
				// start beside it.
				busy = append(busy, n)
				continue
			}
		}
		if inst.Avail == status.Up || inst.Avail == status.Warn {
			up = append(up, n)
		}
		if inst.active() {
			busy = append(busy, n)
		}
	}
	if len(up) > 1 {
		return act(Warn, "", "up on %s: a service must run on one node only; stop it where it must not run", strings.Join(up, ", "))
	}
	switch s.Expect {
	case ExpectFrozen:
		return nil
	case ExpectStopped:
		if mine.active() && mine.State != Stopping {
			return act(Stop, "", "stopped by the operator")
		}
		return nil
	}
	if local.Frozen {
		if mine.State == Ready {
			return act(Release, "", "this node is frozen")
		}
		return nil
	}
	// An operator's move: the owner stops when the target is another node.
	if s.Target != "" && s.Target != v.Local && mine.active() && mine.State != Stopping && mine.State != Ready {
		// Only for a target that can take it: never stop for nothing.
		if eligible(v, s, s.Target) {
			return act(Stop, "", "moving to %s", s.Target)
		}
	}
	others := slices.DeleteFunc(slices.Clone(busy), func(n string) bool { return n == v.Local })
	if mine.State == Ready && len(others) > 0 {
		return act(Release, "", "%s has it (%s)", others[0], s.Instances[others[0]].State)
	}
	if len(busy) > 0 && !(len(busy) == 1 && busy[0] == v.Local && mine.State == Ready) {
		return nil // it runs, or is on its way up or down, somewhere live
	}
	// Lost nodes whose last report had it running: a takeover needs them
	// fenced first. With orchestrate = start there is no failover.
	var owners []string
	for _, n := range sortedKeys(s.Instances) {
		if n != v.Local && v.Nodes[n].State == NodeLost && s.Instances[n].active() {
			owners = append(owners, n)
		}
	}
	if len(owners) > 0 && s.Orchestrate != "ha" {
		return nil
	}
	leader := leaderOf(v, s)
	if leader != v.Local {
		if mine.State == Ready {
			return act(Release, "", "%s leads its placement now", leader)
		}
		return nil
	}
	for _, o := range owners {
		n := v.Nodes[o]
		if !s.Stonith || !n.Stonith {
			continue // nothing to fence with: the takeover goes on, with a warning from the daemon
		}
		if !n.Fenced {
			return act(Fence, o, "%s was running it when it was lost: fence before taking over", o)
		}
	}
	if mine.State != Ready {
		reason := "placement leader"
		if len(owners) > 0 {
			reason = "taking over from lost " + strings.Join(owners, ", ")
		}
		claim := act(Claim, "", "%s", reason)
		if othersMayClaim(v) {
			return claim
		}
		// Nobody else can claim it: no window to wait, start at once.
		return append(claim, act(Start, "", "no other node can claim it")...)
	}
	if v.Now.Sub(mine.Since) < v.ReadyWindow && othersMayClaim(v) {
		return nil // a peer may still claim it
	}
	return act(Start, "", "claimed %s ago and nobody else has it", v.Now.Sub(mine.Since).Round(time.Millisecond))
}

// leaderOf is the first candidate in the service's nodes order (or its
// operator target): a node that is ready, not frozen, and whose instance
// has not failed there. Every node computes the same one from the same
// view.
func leaderOf(v View, s Service) string {
	order := s.Nodes
	if s.Target != "" && eligible(v, s, s.Target) {
		// An operator's target leads while it can take the service; when
		// it cannot (lost, frozen...), the usual order decides, so a
		// switch never disables failover.
		return s.Target
	}
	for _, n := range order {
		if eligible(v, s, n) {
			return n
		}
	}
	return ""
}

// eligible reports whether node n can take service s.
func eligible(v View, s Service, n string) bool {
	node, ok := v.Nodes[n]
	if !ok || node.State != NodeReady || node.Frozen {
		return false
	}
	switch s.Instances[n].State {
	case StartFailed, Failed, StopFailed:
		return false
	}
	return true
}

// othersMayClaim reports whether another node could be claiming too (it is
// ready or joining): only then is the ready window worth waiting. With every
// other node lost, and fenced where it ran the service, nobody can.
func othersMayClaim(v View) bool {
	for name, n := range v.Nodes {
		if name != v.Local && (n.State == NodeReady || n.State == NodeJoining) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]Instance) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
