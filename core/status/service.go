package status

// Driver groups. The first six make up a service's availability; sync and hb
// are accessories that only weigh on the overall status.
const (
	GroupIP        = "ip"
	GroupDisk      = "disk"
	GroupFS        = "fs"
	GroupShare     = "share"
	GroupContainer = "container"
	GroupApp       = "app"
	GroupSync      = "sync"
	GroupHB        = "hb"
)

// Groups returns the groups every Service reports a status for: the start
// order, then hb.
func Groups() []string {
	return []string{GroupIP, GroupDisk, GroupFS, GroupShare, GroupContainer, GroupApp, GroupSync, GroupHB}
}

// IsAvailGroup reports whether resources of group count towards avail.
func IsAvailGroup(group string) bool {
	switch group {
	case GroupIP, GroupDisk, GroupFS, GroupShare, GroupContainer, GroupApp:
		return true
	}
	return false
}

// Resource is one resource's status as reported by its driver, plus the
// config flags that decide how it counts.
type Resource struct {
	// RID is the resource id from the config section, e.g. "container#1".
	RID string `json:"rid"`
	// Group is the driver group (ip, disk, fs, share, container, app, sync, hb).
	Group string `json:"group"`
	// Type is the driver type, e.g. "container.docker" or "disk.vg".
	Type string `json:"type"`
	// Status is what the driver reported.
	Status Status `json:"status"`
	// Label is the driver's one-line description, e.g. "vgregistry".
	Label string `json:"label"`
	// Log holds the reasons behind Status, one message per entry, without the
	// "# " that print status puts in front.
	Log []string `json:"log,omitempty"`
	// Monitor is the monitor keyword: a failure may trigger a restart or failover.
	Monitor bool `json:"monitor"`
	// Disable is the disable keyword: the resource is ignored by actions and statuses.
	Disable bool `json:"disable"`
	// Optional is the optional keyword: the resource weighs on overall, not avail.
	Optional bool `json:"optional"`
	// Standby is the standby keyword: the resource runs on every node.
	Standby bool `json:"standby"`
}

// Service is the status of one service instance (one node's view).
type Service struct {
	// Name is the service name.
	Name string `json:"name"`
	// Overall is Avail plus the accessory resources and warnings.
	Overall Status `json:"overall"`
	// Avail says whether the service is usable on this node.
	Avail Status `json:"avail"`
	// Groups maps each driver group (see Groups) to its merged status. The
	// hb entry is set by whoever knows the heartbeats (Summarize derives it
	// from resources of group hb); a missing entry reads as n/a.
	Groups map[string]Status `json:"groups"`
	// Resources lists every resource, heartbeats (group hb) included.
	Resources []Resource `json:"resources"`
	// Frozen is true when the orchestrator must leave the service alone.
	Frozen bool `json:"frozen"`
	// State is the instance's state as vigild keeps it (started, start
	// failed, failed, ...); empty when no daemon evaluated it.
	State string `json:"state,omitempty"`
	// Reason says why State is a failure (the failed action's error, the
	// monitor's verdict), and what clears it; empty otherwise.
	Reason string `json:"reason,omitempty"`
}

// Failed reports whether State is a failure an operator must look at.
func (s Service) Failed() bool {
	switch s.State {
	case "start failed", "stop failed", "failed":
		return true
	}
	return false
}

// Group returns the status of group, n/a when it is not set.
func (s Service) Group(group string) Status {
	if st, ok := s.Groups[group]; ok {
		return st
	}
	return NA
}

// Avail merges the statuses of the enabled, non-optional resources of the
// ip, disk, fs, share, container and app groups; n/a when there are none.
func Avail(rs []Resource) Status {
	var ss []Status
	for _, r := range rs {
		if r.Disable || r.Optional || !IsAvailGroup(r.Group) {
			continue
		}
		ss = append(ss, r.Status)
	}
	return MergeAll(ss...)
}

// Overall merges avail with every enabled resource, optional ones and
// accessories included, so a warn anywhere makes it warn. Sync and heartbeat
// resources are expected to be up on every node whatever the service does,
// so an up (or n/a, undef) one is neutral and any other status is a warn: a
// passive node with its sync and heartbeats up reads down, not warn.
func Overall(avail Status, rs []Resource) Status {
	ss := []Status{avail}
	for _, r := range rs {
		if r.Disable {
			continue
		}
		st := r.Status
		if r.Group == GroupSync || r.Group == GroupHB {
			switch st {
			case Up, NA, Undef:
				continue
			default:
				st = Warn
			}
		}
		ss = append(ss, st)
	}
	return MergeAll(ss...)
}

// GroupStatus merges the enabled resources of group, optional ones included;
// n/a when there are none.
func GroupStatus(rs []Resource, group string) Status {
	var ss []Status
	for _, r := range rs {
		if r.Disable || r.Group != group {
			continue
		}
		ss = append(ss, r.Status)
	}
	return MergeAll(ss...)
}

// Summarize builds a Service from its resources: every group of Groups (and
// any other group a resource uses) gets its status, then avail and overall.
// Frozen is left false for the caller to set. The slice rs is copied (its
// elements' Log slices are shared).
func Summarize(name string, rs []Resource) Service {
	s := Service{
		Name:      name,
		Groups:    make(map[string]Status),
		Resources: append([]Resource(nil), rs...),
	}
	for _, g := range Groups() {
		s.Groups[g] = GroupStatus(rs, g)
	}
	for _, r := range rs {
		if _, ok := s.Groups[r.Group]; !ok {
			s.Groups[r.Group] = GroupStatus(rs, r.Group)
		}
	}
	s.Avail = Avail(rs)
	s.Overall = Overall(s.Avail, rs)
	return s
}

// ClusterAvail derives a service's cluster-wide avail from each node's
// instance avail (node name → status). A service must run on exactly one
// node, so:
//
//   - up on more than one node, or warn on any → warn;
//   - up on exactly one node → up;
//   - otherwise down if any node reports down, stdby up or stdby down (the
//     service runs nowhere, whatever its standby resources do);
//   - otherwise undef if any node reports undef, else n/a (no instance).
func ClusterAvail(instances map[string]Status) Status {
	var up int
	var seen [7]bool
	for _, st := range instances {
		if !st.Valid() {
			st = Undef
		}
		seen[st] = true
		if st == Up {
			up++
		}
	}
	switch {
	case up > 1, seen[Warn]:
		return Warn
	case up == 1:
		return Up
	case seen[Down], seen[StdbyUp], seen[StdbyDown]:
		return Down
	case seen[Undef]:
		return Undef
	default:
		return NA
	}
}
