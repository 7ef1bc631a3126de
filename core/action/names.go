package action

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/core/config"
)

// UnknownService is the one error for a service name with no config file,
// wherever it is met (svcmgr alone, vigild, print status): it names the
// files looked for and the closest configured names.
func UnknownService(dir, name string) error {
	names, _ := ListServices(dir)
	msg := fmt.Sprintf("service %s: no %s.conf or %s.env in %s", name, name, name, dir)
	var near []string
	for _, n := range names {
		if d := distance(n, name); d <= max(2, len(name)/4) {
			near = append(near, n)
		}
	}
	switch {
	case len(near) > 0:
		msg += "; did you mean " + strings.Join(near, " or ") + "?"
	case len(names) > 0:
		msg += " (services: " + strings.Join(names, ", ") + ")"
	default:
		msg += " (no service configured there)"
	}
	return fmt.Errorf("%s: %w", msg, ErrNoService)
}

// distance is the Levenshtein distance of a and b, bytewise.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ErrNotANode: the service's nodes do not list this node.
var ErrNotANode = errors.New("this node is not one of the service's nodes")

// CheckNode refuses to start svc on local when its nodes keyword does not
// list it: nodes are the nodes that may run it (an empty list is this node
// alone, as a service file without a cluster is).
func CheckNode(svc *config.Service, local string) error {
	nodes := strings.Fields(svc.Keywords["nodes"])
	if len(nodes) == 0 || slices.Contains(nodes, local) {
		return nil
	}
	return fmt.Errorf("service %s may run on %s only (its nodes), and this node is %s: start it there, or add %s to nodes (svcmgr -s %s set nodes=\"%s %s\"): %w",
		svc.Name, strings.Join(nodes, ", "), local, local, svc.Name, strings.Join(nodes, " "), local, ErrNotANode)
}
