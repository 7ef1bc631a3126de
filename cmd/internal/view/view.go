// Package view renders status data as the text the command-line tools print:
// the print status tree of the seed tutorial, svcmon's tables, and indented
// JSON.
//
// It only formats what it is given: it must not compute statuses (that is
// core/status), call the daemon or read configs.
package view

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/core/graph"
	"github.com/vigil-ha/vigil/core/status"
)

// Column layout of the seed's print status: the tree prefix and name fill
// nameWidth, then a space, the flags, a space, the status padded to
// statusWidth, a space and the label, which starts at labelCol. Reason lines
// start their text at labelCol too and wrap before lineWidth.
const (
	nameWidth   = 20
	flagsWidth  = 4
	statusWidth = 8
	labelCol    = nameWidth + 1 + flagsWidth + 1 + statusWidth + 1
	lineWidth   = 78
)

// availOrder is the order of the avail branch in the seed: containers first,
// then the storage stack, then the addresses. Other groups follow, by name.
var availOrder = []string{
	status.GroupContainer, status.GroupDisk, status.GroupFS,
	status.GroupShare, status.GroupApp, status.GroupIP,
}

// node is one line of the tree and the lines hanging under it.
type node struct {
	name     string
	flags    string
	status   status.Status
	label    string
	log      []string
	children []node
}

// WriteTree writes the print status tree of s:
//
//	NAME
//	overall                   STATUS
//	|- avail                  STATUS
//	|  |- RID            MDOS STATUS   LABEL
//	|  |  |                            # reason
//	|- sync                   STATUS
//	|  '- RID            MDOS STATUS   LABEL
//	'- hb                     STATUS
//
// The avail branch holds every resource that is neither sync nor hb, ordered
// container, disk, fs, share, app, ip (other groups after, by name), then by
// the number in the rid. The sync and hb branches hold the resources of those
// groups and are drawn even when empty; their statuses come from s.Groups.
// Flags are M (monitor), D (disable), O (optional), S (standby), '.' when
// off. Disabled resources are drawn: filtering is the caller's choice.
func WriteTree(w io.Writer, s status.Service) error {
	var avail, sync, hb []status.Resource
	for _, r := range s.Resources {
		switch r.Group {
		case status.GroupSync:
			sync = append(sync, r)
		case status.GroupHB:
			hb = append(hb, r)
		default:
			avail = append(avail, r)
		}
	}
	root := node{
		name:   "overall",
		status: s.Overall,
		log:    stateLog(s),
		children: []node{
			{name: "avail", status: s.Avail, children: resourceNodes(avail)},
			{name: status.GroupSync, status: s.Group(status.GroupSync), children: resourceNodes(sync)},
			{name: status.GroupHB, status: s.Group(status.GroupHB), children: resourceNodes(hb)},
		},
	}
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteByte('\n')
	writeNode(&b, root, "", "")
	_, err := io.WriteString(w, b.String())
	return err
}

// stateLog is the overall line's reason when the instance is failed: the
// state and why, so a down service says it is down because its start
// failed.
func stateLog(s status.Service) []string {
	if !s.Failed() {
		return nil
	}
	return []string{s.State + ": " + s.Reason}
}

// TreeOrder returns s with its resources in the order WriteTree draws
// them (avail: containers, disks, filesystems, shares, apps, addresses;
// then sync, then hb), so the JSON and the tree list them alike.
func TreeOrder(s status.Service) status.Service {
	rs := slices.Clone(s.Resources)
	branch := func(r status.Resource) int {
		switch r.Group {
		case status.GroupSync:
			return 1
		case status.GroupHB:
			return 2
		}
		return 0
	}
	slices.SortStableFunc(rs, func(a, b status.Resource) int {
		return cmp.Or(
			cmp.Compare(branch(a), branch(b)),
			cmp.Compare(groupRank(a.Group), groupRank(b.Group)),
			cmp.Compare(a.Group, b.Group),
			graph.CompareRID(a.RID, b.RID),
		)
	})
	s.Resources = rs
	return s
}

// WriteJSON writes v as indented JSON followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func resourceNodes(rs []status.Resource) []node {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b status.Resource) int {
		return cmp.Or(
			cmp.Compare(groupRank(a.Group), groupRank(b.Group)),
			cmp.Compare(a.Group, b.Group),
			graph.CompareRID(a.RID, b.RID),
		)
	})
	nodes := make([]node, 0, len(rs))
	for _, r := range rs {
		nodes = append(nodes, node{
			name:   r.RID,
			flags:  flags(r),
			status: r.Status,
			label:  r.Label,
			log:    r.Log,
		})
	}
	return nodes
}

func flags(r status.Resource) string {
	f := []byte("....")
	for i, on := range []bool{r.Monitor, r.Disable, r.Optional, r.Standby} {
		if on {
			f[i] = "MDOS"[i]
		}
	}
	return string(f)
}

// writeNode draws n on a line starting with prefix, its reasons and its
// children under it with childPrefix, the continuation of n's branch.
func writeNode(b *strings.Builder, n node, prefix, childPrefix string) {
	line := fmt.Sprintf("%-*s %-*s %-*s %s", nameWidth, prefix+n.name, flagsWidth, n.flags, statusWidth, n.status, n.label)
	b.WriteString(strings.TrimRight(line, " "))
	b.WriteByte('\n')
	// Reasons hang from the node's own branch, so they read as its children.
	reasonPrefix := fmt.Sprintf("%-*s", labelCol, childPrefix+"|")
	for _, msg := range n.log {
		for _, text := range wrap(msg, lineWidth-labelCol-len("# ")) {
			b.WriteString(reasonPrefix + "# " + text + "\n")
		}
	}
	for i, c := range n.children {
		if i == len(n.children)-1 {
			writeNode(b, c, childPrefix+"'- ", childPrefix+"   ")
		} else {
			writeNode(b, c, childPrefix+"|- ", childPrefix+"|  ")
		}
	}
}

// wrap splits msg into lines of at most width bytes at spaces; a word longer
// than width gets a line of its own. Embedded newlines are kept as breaks and
// blank lines dropped.
func wrap(msg string, width int) []string {
	var lines []string
	for _, para := range strings.Split(msg, "\n") {
		var cur string
		for _, word := range strings.Fields(para) {
			switch {
			case cur == "":
				cur = word
			case len(cur)+1+len(word) <= width:
				cur += " " + word
			default:
				lines = append(lines, cur)
				cur = word
			}
		}
		if cur != "" {
			lines = append(lines, cur)
		}
	}
	return lines
}

func groupRank(group string) int {
	if i := slices.Index(availOrder, group); i >= 0 {
		return i
	}
	return len(availOrder)
}
