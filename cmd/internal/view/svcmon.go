package view

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
)

// ContainerHosted is the container type of a service running on the node's
// own operating system, the only kind Vigil runs (the seed's "hosted").
const ContainerHosted = "hosted"

// MonitorOptions says what svcmon's tables show.
type MonitorOptions struct {
	// Services lists the services to show, in this order (the seed's
	// `svcmon --service=registry.opensvc.com,busybox.opensvc.com` lists
	// registry first). Empty means every service, sorted by name.
	Services []string
	// ServiceType returns an instance's service_type keyword (PRD, DEV, ...);
	// nil, or an empty answer, shows "-".
	ServiceType func(*cluster.ServiceInstance) string
}

// MonitorRow is one line of svcmon's table: one service as one node runs it.
type MonitorRow struct {
	Service string
	// ServiceType is the service_type keyword, "-" when unknown.
	ServiceType   string
	ContainerType string
	Status        status.Service
	Frozen        bool
}

// monitorGroups are the group columns of the seed's svcmon table, in its
// order (the container group first, after the container type).
var monitorGroups = []string{
	status.GroupContainer, status.GroupIP, status.GroupDisk, status.GroupFS,
	status.GroupShare, status.GroupApp, status.GroupHB, status.GroupSync,
}

// MonitorRows returns the rows of node's table, one per service of
// o.Services the node has an instance of (every service when empty).
func MonitorRows(cs *api.ClusterStatus, node string, o MonitorOptions) []MonitorRow {
	ns := cs.Node[node]
	if ns == nil {
		return nil
	}
	var rows []MonitorRow
	for _, name := range o.names(slices.Sorted(maps.Keys(ns.Services))) {
		inst := ns.Services[name]
		if inst == nil {
			continue
		}
		rows = append(rows, MonitorRow{
			Service:       name,
			ServiceType:   o.serviceType(inst),
			ContainerType: ContainerHosted,
			Status:        inst.Status,
			Frozen:        inst.Frozen,
		})
	}
	return rows
}

// WriteMonitor writes the seed's svcmon table:
//
//	service              service container container ip        ...  avail      overall
//	name                 type    type      status    status    ...  status     status     frozen
//	-------              ------- --------- --------- ------    ...  ------     -------    ------
//	registry.opensvc.com DEV     hosted    up        up        ...  up         up         False
//
// Columns are as wide as the seed's, wider when a value needs it.
func WriteMonitor(w io.Writer, rows []MonitorRow) error {
	t := &table{}
	add := func(head1, head2 string, min int, cell func(MonitorRow) string) {
		t.span(head1, 1)
		c := t.column(head2, min)
		for _, r := range rows {
			c.cells = append(c.cells, cell(r))
		}
	}
	// The minimum widths reproduce the seed's columns, whose padding is
	// uneven: that table is the reference operators know.
	add("service", "name", 20, func(r MonitorRow) string { return r.Service })
	add("service", "type", 7, func(r MonitorRow) string { return r.ServiceType })
	add("container", "type", 9, func(r MonitorRow) string { return r.ContainerType })
	mins := map[string]int{"container": 9, "ip": 9, "disk": 10, "fs": 10, "share": 10, "app": 10, "hb": 9, "sync": 9}
	for _, g := range monitorGroups {
		add(g, "status", mins[g], func(r MonitorRow) string { return r.Status.Group(g).String() })
	}
	add("avail", "status", 10, func(r MonitorRow) string { return r.Status.Avail.String() })
	add("overall", "status", 10, func(r MonitorRow) string { return r.Status.Overall.String() })
	add("", "frozen", 0, func(r MonitorRow) string { return pyBool(r.Frozen) })
	out := t.String()
	var failed []string
	for _, r := range rows {
		if r.Status.Failed() {
			failed = append(failed, failedLine(r.Service, "", r.Status))
		}
	}
	if len(failed) > 0 {
		out += "\nfailed:\n" + strings.Join(failed, "\n") + "\n"
	}
	_, err := io.WriteString(w, out)
	return err
}

// failedLine is one entry of the failed list under svcmon's tables, as
// pcs status lists failed actions: where, the state and why.
func failedLine(svc, node string, st status.Service) string {
	where := svc
	if node != "" {
		where += " on " + node
	}
	return fmt.Sprintf("  %s: %s: %s", where, st.State, st.Reason)
}

// WriteClusterMonitor writes every node's view of the services side by
// side: the nodes with their state and heartbeats, then one row per
// service with its cluster-wide avail and, per node, the instance's avail,
// overall and frozen, then warnings. For example:
//
//	cluster demo, seen from deb1.opensvc.com
//	  deb1.opensvc.com  ready  local
//	  deb2.opensvc.com  lost   hb#1 stale (no heartbeat for 10s)
//
//	service              service cluster  deb1.opensvc.com (ready)  deb2.opensvc.com (lost)
//	name                 type    avail    avail overall frozen      avail overall frozen
//	-------              ------- -------  ----- ------- ------      ----- ------- ------
//	registry.opensvc.com DEV     up       up    up      False       up    up      False
//
//	deb2.opensvc.com is lost: its columns show the last statuses it sent.
//
// A lost or unknown node's statuses are old news, so they do not count in
// the cluster avail; a service up on more than one of the others reads
// warn there and gets a warning line.
func WriteClusterMonitor(w io.Writer, cs *api.ClusterStatus, o MonitorOptions) error {
	nodes := clusterNodes(cs)
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %s, seen from %s\n", orDash(cs.Cluster), orDash(cs.Local))
	nt := &table{indent: 2, gap: 2}
	name, state, hbs := nt.column("", 0), nt.column("", 0), nt.column("", 0)
	for _, n := range nodes {
		name.cells = append(name.cells, n)
		state.cells = append(state.cells, string(nodeState(cs, n)))
		hbs.cells = append(hbs.cells, heartbeats(cs, n))
	}
	nt.noHeader = true
	b.WriteString(nt.String())
	if len(cs.Rejects) > 0 {
		var rj []string
		for _, k := range slices.Sorted(maps.Keys(cs.Rejects)) {
			rj = append(rj, fmt.Sprintf("%s %d", k, cs.Rejects[k]))
		}
		fmt.Fprintf(&b, "  rejected messages: %s\n", strings.Join(rj, ", "))
	}
	b.WriteByte('\n')

	all := map[string]bool{}
	for _, n := range nodes {
		if ns := cs.Node[n]; ns != nil {
			for s := range ns.Services {
				all[s] = true
			}
		}
	}
	services := o.names(slices.Sorted(maps.Keys(all)))

	t := &table{}
	t.span("service", 1)
	svcCol := t.column("name", 20)
	t.span("service", 1)
	typeCol := t.column("type", 7)
	t.span("cluster", 1)
	availCol := t.column("avail", 7)
	type block struct{ avail, overall, frozen *column }
	blocks := make([]block, len(nodes))
	for i, n := range nodes {
		t.span(fmt.Sprintf("%s (%s)", n, nodeState(cs, n)), 3)
		c := t.column("avail", 0)
		c.gap = 1
		blocks[i] = block{c, t.column("overall", 0), t.column("frozen", 0)}
	}
	var warnings, failed []string
	for _, s := range services {
		typ, instances, upOn := "", map[string]status.Status{}, []string(nil)
		for i, n := range nodes {
			inst := instance(cs, n, s)
			bl := blocks[i]
			if inst == nil {
				bl.avail.cells = append(bl.avail.cells, "-")
				bl.overall.cells = append(bl.overall.cells, "-")
				bl.frozen.cells = append(bl.frozen.cells, "-")
				continue
			}
			if typ == "" && o.ServiceType != nil {
				typ = o.ServiceType(inst)
			}
			bl.avail.cells = append(bl.avail.cells, inst.Status.Avail.String())
			bl.overall.cells = append(bl.overall.cells, inst.Status.Overall.String())
			bl.frozen.cells = append(bl.frozen.cells, pyBool(inst.Frozen))
			if inst.Status.Failed() {
				failed = append(failed, failedLine(s, n, inst.Status))
			}
			if st := nodeState(cs, n); st == cluster.Lost || st == cluster.Unknown {
				continue
			}
			instances[n] = inst.Status.Avail
			if inst.Status.Avail == status.Up {
				upOn = append(upOn, n)
			}
		}
		svcCol.cells = append(svcCol.cells, s)
		typeCol.cells = append(typeCol.cells, orDash(typ))
		availCol.cells = append(availCol.cells, status.ClusterAvail(instances).String())
		if len(upOn) > 1 {
			warnings = append(warnings, fmt.Sprintf("!! %s is up on %d nodes (%s): it must run on one only; stop it on the others",
				s, len(upOn), strings.Join(upOn, ", ")))
		}
	}
	b.WriteString(t.String())
	var notes []string
	for _, n := range nodes {
		switch nodeState(cs, n) {
		case cluster.Lost:
			notes = append(notes, n+" is lost: its columns show the last statuses it sent.")
		case cluster.Unknown:
			notes = append(notes, n+" has not been heard since vigild started.")
		}
	}
	if len(warnings)+len(notes) > 0 {
		b.WriteByte('\n')
		for _, l := range append(warnings, notes...) {
			b.WriteString(l + "\n")
		}
	}
	if len(failed) > 0 {
		b.WriteString("\nfailed:\n" + strings.Join(failed, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// names returns o.Services when set, else all.
func (o MonitorOptions) names(all []string) []string {
	if len(o.Services) > 0 {
		return o.Services
	}
	return all
}

func (o MonitorOptions) serviceType(inst *cluster.ServiceInstance) string {
	if o.ServiceType == nil {
		return "-"
	}
	return orDash(o.ServiceType(inst))
}

// clusterNodes returns the nodes in config order, then any other node the
// status mentions, by name.
func clusterNodes(cs *api.ClusterStatus) []string {
	nodes := slices.Clone(cs.Nodes)
	for _, n := range slices.Sorted(maps.Keys(cs.Node)) {
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

func nodeState(cs *api.ClusterStatus, node string) cluster.NodeState {
	if ns := cs.Node[node]; ns != nil && ns.State != "" {
		return ns.State
	}
	return cluster.Unknown
}

func instance(cs *api.ClusterStatus, node, svc string) *cluster.ServiceInstance {
	if ns := cs.Node[node]; ns != nil {
		return ns.Services[svc]
	}
	return nil
}

// heartbeats says what each heartbeat sees of node: "hb#1 ok, hb#2 stale
// (no heartbeat for 10s)".
func heartbeats(cs *api.ClusterStatus, node string) string {
	if node == cs.Local {
		return "local"
	}
	ns := cs.Node[node]
	if ns == nil || len(ns.HB) == 0 {
		return "no heartbeat"
	}
	var parts []string
	for _, hb := range slices.Sorted(maps.Keys(ns.HB)) {
		seen := ns.HB[hb]
		switch {
		case seen == nil || !seen.Stale:
			parts = append(parts, hb+" ok")
		case seen.Reason != "":
			parts = append(parts, fmt.Sprintf("%s stale (%s)", hb, seen.Reason))
		default:
			parts = append(parts, hb+" stale")
		}
	}
	return strings.Join(parts, ", ")
}

// pyBool writes a boolean as the seed's svcmon does.
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// table lays out left-aligned columns under a two-line header: the first
// line holds spans that may cover several columns, the second one word per
// column, then a line of dashes as long as each column's header words.
type table struct {
	indent   int  // spaces before each line
	gap      int  // spaces between columns (default 1)
	noHeader bool // draw the cells only
	spans    []span
	cols     []*column
}

type span struct {
	text        string
	first, last int // column indexes
}

type column struct {
	head  string
	min   int
	gap   int // extra spaces before the column
	cells []string
}

// span starts a first-line header over the next n columns.
func (t *table) span(text string, n int) {
	first := len(t.cols)
	for _, s := range t.spans {
		first = max(first, s.last+1)
	}
	t.spans = append(t.spans, span{text: text, first: first, last: first + n - 1})
}

func (t *table) column(head string, min int) *column {
	c := &column{head: head, min: min}
	t.cols = append(t.cols, c)
	return c
}

func (t *table) sep(i int) int {
	if i == 0 {
		return 0
	}
	return max(t.gap, 1) + t.cols[i].gap
}

func (t *table) String() string {
	widths := make([]int, len(t.cols))
	for i, c := range t.cols {
		widths[i] = max(c.min, len(c.head))
		for _, v := range c.cells {
			widths[i] = max(widths[i], len(v))
		}
	}
	// A span wider than its columns widens the last of them.
	for _, s := range t.spans {
		w := 0
		for i := s.first; i <= s.last; i++ {
			w += widths[i]
			if i > s.first {
				w += t.sep(i)
			}
		}
		if extra := len(s.text) - w; extra > 0 {
			widths[s.last] += extra
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		l.WriteString(strings.Repeat(" ", t.indent))
		for i, v := range cells {
			l.WriteString(strings.Repeat(" ", t.sep(i)))
			fmt.Fprintf(&l, "%-*s", widths[i], v)
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	if !t.noHeader {
		heads := make([]string, len(t.cols))
		dashes := make([]string, len(t.cols))
		for i, c := range t.cols {
			heads[i] = c.head
			dashes[i] = strings.Repeat("-", len(c.head))
		}
		for _, s := range t.spans {
			if s.first == s.last && len(s.text) > len(dashes[s.first]) {
				dashes[s.first] = strings.Repeat("-", len(s.text))
			}
		}
		// The first line is drawn span by span, each padded to its columns.
		var l strings.Builder
		l.WriteString(strings.Repeat(" ", t.indent))
		for _, s := range t.spans {
			w := 0
			for i := s.first; i <= s.last; i++ {
				w += widths[i] + t.sep(i)
			}
			fmt.Fprintf(&l, "%s%-*s", strings.Repeat(" ", t.sep(s.first)), w-t.sep(s.first), s.text)
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
		line(heads)
		line(dashes)
	}
	rows := 0
	for _, c := range t.cols {
		rows = max(rows, len(c.cells))
	}
	for r := 0; r < rows; r++ {
		cells := make([]string, len(t.cols))
		for i, c := range t.cols {
			if r < len(c.cells) {
				cells[i] = c.cells[r]
			}
		}
		line(cells)
	}
	return b.String()
}
