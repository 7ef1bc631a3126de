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
// confirmation; a peer never heard since this daemon started may run
// anything, so a service whose nodes include it waits until it is heard or
// fenced (startup fencing); an instance whose status cannot be read may be
// running; in a two-node split the side running the services wins the
// fence race (FenceDelay); no automatic failback; no orchestration without
// quorum.
package orchestrator

import (
	"fmt"
	"maps"
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
	// Interrupted: a start or stop was in flight when the daemon died; a
	// plugin call may still finish it. Active until its node has stopped
	// what it may have left.
	Interrupted InstanceState = "interrupted"
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
	// FenceDelay is the node's static fence delay (its stonith section's
	// fence_delay): how long a fence of this node waits, so that an
	// operator can make one side of a split win.
	FenceDelay time.Duration
	// HeardAt is when a beat of the node last arrived (zero: never).
	HeardAt time.Time
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
	// Unreadable: a non-optional resource's status could not be read (a
	// plugin missing or crashed, a handshake mismatch): what cannot be
	// read may be running, whatever the state and the merged avail say.
	Unreadable bool
}

// active reports whether the instance runs, may run, or is on its way up
// or down: nobody else may start the service then.
func (i Instance) active() bool { return i.activeWith(Disabled{}) }

func (i Instance) activeWith(off Disabled) bool {
	if i.Unknown {
		return true
	}
	if !off.UndefIsActive && (i.Unreadable || i.Avail == status.Undef) {
		return true
	}
	switch i.State {
	case Ready, Starting, Stopping, Interrupted:
		return true
	case Started, StopFailed:
		if i.Avail == status.Undef {
			return true
		}
	}
	return i.Avail == status.Up || i.Avail == status.Warn
}

// partial reports whether the instance is partly up (some resources up,
// others down) while nobody runs an action on it and no start is meant to
// finish it: left alone it would block the service everywhere for good.
func (i Instance) partial() bool {
	if i.Unknown || i.Unreadable || i.Avail != status.Warn {
		return false
	}
	switch i.State {
	case Idle, Stopped, StartFailed, Failed:
		return true
	}
	return false
}

// Disabled switches safety guards off. Only the simulation sets it, to
// show that each guard is needed (a violation is found without it); the
// daemon never does.
type Disabled struct {
	// FenceConfirmation: take over from a lost owner without its fence.
	FenceConfirmation bool
	// UnheardPeer: treat a peer never heard since start as idle.
	UnheardPeer bool
	// UndefIsActive: treat an unreadable instance by its merged avail.
	UndefIsActive bool
	// StaleReport: trust a lost node's last report that it did not run
	// the service.
	StaleReport bool
	// SelfStopWait: take over from a lost node that cannot be fenced as
	// soon as it is lost.
	SelfStopWait bool
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
	// Priority orders the starts on one node (priority keyword, 0 the
	// highest): a start waits while one of a higher priority starts here.
	Priority int
	Expect   Expectation
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
	// PriorityFenceDelay is added to a fence of a node that runs more
	// services than this one (or as many, and comes first in the
	// cluster's order): in a split where both sides can fence, the side
	// running the services fences first and wins.
	PriorityFenceDelay time.Duration
	// Order is the cluster's node order (cluster.conf's nodes).
	Order []string
	// Resumed: this daemon went unheard for longer than the heartbeat
	// timeout (frozen, stalled) and has heard the cluster again since: it
	// stops what a peer took over meanwhile.
	Resumed bool
	// SelfStopWait, when non-zero, is how long a lost node that cannot be
	// fenced is given, from when it was last heard, to find it lost its
	// quorum and stop what it runs (split_action = stop) before this side
	// starts its services: the longest heartbeat timeout for it to judge
	// this side lost, as much again for this side's last report that saw
	// it, and its stop. The daemon sets it where quorum is a majority
	// (three nodes or more, or arbitrators); two nodes without an
	// arbitrator both keep quorum in a split, and waiting would change
	// nothing.
	SelfStopWait time.Duration
	Services     []Service
	// Off switches guards off (the simulation only).
	Off Disabled
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
	// Delay (Fence) is how long to wait before the power-off, unless the
	// target's BMC already reports it off; see View.PriorityFenceDelay.
	Delay  time.Duration
	Reason string
}

func (a Action) String() string {
	s := string(a.Kind) + " " + a.Service
	if a.Node != "" {
		s += " node " + a.Node
	}
	return s + ": " + a.Reason
}

// Decide returns what the local node must do now, service by service,
// then the fences of lost peers that threaten what runs here.
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
	out = byPriority(v, out)
	return append(out, defensiveFences(v, local, out)...)
}

// byPriority holds back the start of a service while one of a higher
// priority (a lower number) starts on this node, or is to start now: on
// two cores, a takeover of several services starts the one that matters
// first instead of sharing the node between all. A held start comes
// again at the next decision; its claim stands. Only a start under way
// holds one back: a claim still in its window does not.
func byPriority(v View, out []Action) []Action {
	prio := map[string]int{}
	best := -1 // the highest priority starting here, -1 for none
	note := func(p int) {
		if best < 0 || p < best {
			best = p
		}
	}
	for _, s := range v.Services {
		prio[s.Name] = s.Priority
		if s.Instances[v.Local].State == Starting {
			note(s.Priority)
		}
	}
	for _, a := range out {
		if a.Kind == Start {
			note(prio[a.Service])
		}
	}
	if best < 0 {
		return out
	}
	kept := out[:0:0]
	for _, a := range out {
		if a.Kind == Start && prio[a.Service] > best {
			continue
		}
		kept = append(kept, a)
	}
	return kept
}

// survey is what the other nodes' reports say of one service.
type survey struct {
	// up: nodes (local included) that report it up or warn.
	up []string
	// busy: nodes (local included) whose instance is active, or that
	// report it and cannot be judged.
	busy []string
	// owners: lost peers whose last report had it active.
	owners []string
	// unheard: nodes of the service never heard since this daemon
	// started: they may run it.
	unheard []string
	// lost: lost nodes of the service whose last report had it inactive.
	// That report is only as fresh as the partition: they may have
	// started it since, so they are fenced before a start too.
	lost []string
}

func surveyOf(v View, s Service) survey {
	var sv survey
	for _, n := range sortedKeys(s.Instances) {
		inst := s.Instances[n]
		if n != v.Local {
			node, known := v.Nodes[n]
			if known && node.State == NodeLost {
				if inst.activeWith(v.Off) {
					sv.owners = append(sv.owners, n)
				}
				continue // fenced before a takeover
			}
			if (!known || node.State == NodeUnknown) && inst.activeWith(v.Off) {
				// A report from a node we cannot judge: wait, never
				// start beside it.
				sv.busy = append(sv.busy, n)
				continue
			}
		}
		if inst.Avail == status.Up || inst.Avail == status.Warn {
			sv.up = append(sv.up, n)
		}
		if inst.activeWith(v.Off) {
			sv.busy = append(sv.busy, n)
		}
	}
	for _, n := range s.Nodes {
		node, ok := v.Nodes[n]
		if !ok || n == v.Local || node.Fenced {
			continue
		}
		switch {
		case node.State == NodeUnknown && !v.Off.UnheardPeer:
			sv.unheard = append(sv.unheard, n)
		case node.State == NodeLost && !slices.Contains(sv.owners, n) && !v.Off.StaleReport:
			sv.lost = append(sv.lost, n)
		}
	}
	return sv
}

// others is busy without the local node.
func (sv survey) others(local string) []string {
	return slices.DeleteFunc(slices.Clone(sv.busy), func(n string) bool { return n == local })
}

// mustFence reports whether a takeover needs node n fenced first: the
// service and the node have fencing, and no confirmation is in.
func mustFence(v View, s Service, n string) bool {
	node := v.Nodes[n]
	return s.Stonith && node.Stonith && !node.Fenced && !v.Off.FenceConfirmation
}

// Admit says whether the local node may start service s now, by the same
// rules the orchestrator starts by: an operator's start checks no less.
// It returns nil when it may, else why not (and what to do).
func Admit(v View, s Service) error {
	local, ok := v.Nodes[v.Local]
	switch {
	case !ok:
		return fmt.Errorf("node %s is not in the cluster view", v.Local)
	case local.State != NodeReady:
		return fmt.Errorf("node %s is %s: it starts nothing until it has heard the cluster; try again when it is ready", v.Local, local.State)
	case !v.Quorum:
		return fmt.Errorf("this side of the cluster has no quorum: it starts nothing")
	}
	sv := surveyOf(v, s)
	if others := sv.others(v.Local); len(others) > 0 {
		inst := s.Instances[others[0]]
		return fmt.Errorf("service %s is %s/%s on %s: refusing to start it here too (use switch --to %s)",
			s.Name, inst.State, inst.Avail, others[0], v.Local)
	}
	for _, o := range sv.owners {
		if mustFence(v, s, o) {
			return fmt.Errorf("service %s was running on %s when %s was lost, and %s is not fenced yet: refusing to start it here", s.Name, o, o, o)
		}
	}
	for _, u := range sv.unheard {
		if mustFence(v, s, u) || !s.Stonith || !v.Nodes[u].Stonith {
			return fmt.Errorf("node %s has not been heard since this daemon started and may run %s: refusing to start it until %s is heard or fenced", u, s.Name, u)
		}
	}
	for _, l := range sv.lost {
		if mustFence(v, s, l) {
			return fmt.Errorf("node %s is lost and not fenced yet: it may have started %s since its last report; refusing to start it here", l, s.Name)
		}
	}
	if n, left := awaitingSelfStop(v, s, sv); left > 0 {
		return fmt.Errorf("node %s is lost and cannot be fenced: it may still run %s until it finds it lost quorum and stops it; refusing to start it here for %s more",
			n, s.Name, left.Round(100*time.Millisecond))
	}
	return nil
}

// awaitingSelfStop returns a lost node of the service that cannot be
// fenced and has not yet had the time to stop what it runs on its own
// (View.SelfStopWait), with the time it still has.
func awaitingSelfStop(v View, s Service, sv survey) (string, time.Duration) {
	if v.SelfStopWait <= 0 || v.Off.SelfStopWait {
		return "", 0
	}
	for _, n := range append(slices.Clone(sv.owners), sv.lost...) {
		node := v.Nodes[n]
		if node.Fenced || (s.Stonith && node.Stonith) {
			continue // off, or fenced before a start instead
		}
		if left := v.SelfStopWait - v.Now.Sub(node.HeardAt); left > 0 {
			return n, left
		}
	}
	return "", 0
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
	sv := surveyOf(v, s)
	others := sv.others(v.Local)
	// Back from a freeze: a peer took the service over while this node was
	// unheard; this node's instance is the stale one.
	if v.Resumed && mine.activeWith(v.Off) && mine.State != Stopping && s.Expect != ExpectFrozen && !local.Frozen {
		for _, n := range others {
			if st := s.Instances[n].State; st == Started || st == Starting {
				return act(Stop, "", "%s took it over while this node was unheard", n)
			}
		}
	}
	if len(sv.up) > 1 {
		return act(Warn, "", "up on %s: a service must run on one node only; stop it where it must not run", strings.Join(sv.up, ", "))
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
	if mine.State == Interrupted {
		return act(Stop, "", "an action was interrupted by a restart of the daemon: stopping what it may have left")
	}
	// A partial instance nobody starts or runs: stop it, so that the
	// service converges (it is then placed as any down service).
	if mine.partial() {
		return act(Stop, "", "partly up (%s) and nobody runs it: stopping what is left", mine.State)
	}
	// An operator's move: the owner stops when the target is another node.
	if s.Target != "" && s.Target != v.Local && mine.active() && mine.State != Stopping && mine.State != Ready {
		// Only for a target that can take it: never stop for nothing.
		if eligible(v, s, s.Target) {
			return act(Stop, "", "moving to %s", s.Target)
		}
	}
	if mine.State == Ready && len(others) > 0 {
		return act(Release, "", "%s has it (%s)", others[0], s.Instances[others[0]].State)
	}
	if len(sv.busy) > 0 && !(len(sv.busy) == 1 && sv.busy[0] == v.Local && mine.State == Ready) {
		return nil // it runs, or is on its way up or down, somewhere live
	}
	// Lost nodes whose last report had it running: a takeover needs them
	// fenced first. With orchestrate = start there is no failover.
	if len(sv.owners) > 0 && s.Orchestrate != "ha" {
		return nil
	}
	leader := leaderOf(v, s)
	if leader != v.Local {
		if mine.State == Ready {
			return act(Release, "", "%s leads its placement now", leader)
		}
		return nil
	}
	for _, o := range sv.owners {
		if !s.Stonith || !v.Nodes[o].Stonith {
			continue // nothing to fence with: the takeover goes on, with a warning from the daemon
		}
		if mustFence(v, s, o) {
			return fence(v, s.Name, o, "%s was running it when it was lost: fence before taking over", o)
		}
	}
	// A node never heard may run it: fence it first (startup fencing), or
	// wait for it when it cannot be fenced.
	if len(sv.unheard) > 0 {
		u := sv.unheard[0]
		if !s.Stonith || !v.Nodes[u].Stonith {
			if mine.State == Ready {
				return act(Release, "", "%s was never heard and cannot be fenced: waiting for it", u)
			}
			return nil
		}
		return fence(v, s.Name, u, "%s has not been heard since this daemon started and may run it: fence before starting (startup fencing)", u)
	}
	// A lost node's report is as old as the partition: it may have
	// started the service since. Fence it before starting here.
	for _, l := range sv.lost {
		if mustFence(v, s, l) {
			return fence(v, s.Name, l, "%s is lost and may have started it since its last report: fence before starting", l)
		}
	}
	// A lost node that cannot be fenced stops what it runs when it finds
	// it lost quorum (split_action = stop): give it the time to.
	if n, _ := awaitingSelfStop(v, s, sv); n != "" {
		return nil
	}
	if mine.State != Ready {
		reason := "placement leader"
		if len(sv.owners) > 0 {
			reason = "taking over from lost " + strings.Join(sv.owners, ", ")
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
	// Every node that could be claiming too must have been heard since
	// the claim: one cut off by a fresh partition may have claimed on its
	// side without this node seeing it (it is judged lost, then fenced).
	for _, n := range slices.Sorted(maps.Keys(v.Nodes)) {
		node := v.Nodes[n]
		if n != v.Local && (node.State == NodeReady || node.State == NodeJoining) && !node.HeardAt.After(mine.Since) {
			return nil
		}
	}
	return act(Start, "", "claimed %s ago and nobody else has it", v.Now.Sub(mine.Since).Round(time.Millisecond))
}

// fence is a Fence action of node n with its delay.
func fence(v View, svc, n, format string, args ...any) []Action {
	return []Action{{Kind: Fence, Service: svc, Node: n, Delay: FenceDelay(v, n), Reason: fmt.Sprintf(format, args...)}}
}

// FenceDelay is how long the local node waits before fencing node n: n's
// static fence_delay, plus the priority delay when n runs more services
// than the local node, or as many and comes first in the cluster's order.
// In a two-node split where both sides can fence, the side running the
// services (or the first node, on a tie) fences first and wins; a target
// its BMC already reports off is confirmed at once whatever the delay.
func FenceDelay(v View, n string) time.Duration {
	d := v.Nodes[n].FenceDelay
	mine, theirs := priority(v, v.Local), priority(v, n)
	// A peer never heard may run everything (the survivor of a fence
	// whose victim boots with its links still down): its startup fence
	// always waits the priority delay, for a heal to be heard first.
	if v.Nodes[n].State == NodeUnknown || theirs > mine || (theirs == mine && slices.Index(v.Order, n) >= 0 && slices.Index(v.Order, n) < slices.Index(v.Order, v.Local)) {
		d += v.PriorityFenceDelay
	}
	return d
}

// priority is how many services node n runs (or may run) by its last
// report.
func priority(v View, n string) int {
	p := 0
	for _, s := range v.Services {
		if inst, ok := s.Instances[n]; ok && inst.active() {
			p++
		}
	}
	return p
}

// defensiveFences fences lost peers that could take over what runs here:
// in a split where both sides can fence, a peer that sees this node lost
// fences it (after its delay) unless this node fences it first. A peer
// already asked for by a service's action is not asked again.
//
// Only in a two-node cluster: with three nodes or more, quorum decides who
// acts, and a node's view during a split can still count a majority while
// it is about to be the minority: a defensive fence from it would hit a
// healthy node of the majority.
func defensiveFences(v View, local Node, done []Action) []Action {
	if local.Frozen || len(v.Order) > 2 {
		return nil
	}
	var out []Action
	for _, n := range slices.Sorted(maps.Keys(v.Nodes)) {
		node := v.Nodes[n]
		if n == v.Local || node.State != NodeLost || !node.Stonith || node.Fenced {
			continue
		}
		if slices.ContainsFunc(done, func(a Action) bool { return a.Kind == Fence && a.Node == n }) {
			continue
		}
		for _, s := range v.Services {
			mine := s.Instances[v.Local]
			if s.Orchestrate == "ha" && s.Stonith && s.Expect != ExpectFrozen && mine.active() && slices.Contains(s.Nodes, n) {
				out = append(out, fence(v, s.Name, n, "%s is lost and could take over %s, which runs here: fence it first", n, s.Name)...)
				break
			}
		}
	}
	return out
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
	// The last resort: with every other node of the service lost, a node
	// where it failed before (a killed container past its restarts, a
	// start that failed) takes it rather than leave it down. A failure
	// keeps a node out only while another node can run the service; a
	// stop that failed may have left it half up, and stays out.
	for _, n := range order {
		if st := s.Instances[n].State; available(v, n) && (st == StartFailed || st == Failed) && othersLost(v, s, n) {
			return n
		}
	}
	return ""
}

// othersLost reports whether every node of s but n is lost.
func othersLost(v View, s Service, n string) bool {
	for _, o := range s.Nodes {
		if on, known := v.Nodes[o]; o != n && known && on.State != NodeLost {
			return false
		}
	}
	return true
}

// available reports whether node n is ready and not frozen.
func available(v View, n string) bool {
	node, ok := v.Nodes[n]
	return ok && node.State == NodeReady && !node.Frozen
}

// eligible reports whether node n can take service s.
func eligible(v View, s Service, n string) bool {
	if !available(v, n) {
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
