package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/journal"
)

// errNeedsDaemon: the failure lifecycle and the flight recorder live in
// vigild.
var errNeedsDaemon = errors.New("no vigild answers: failures and failovers are kept by the node's vigild; start it")

func newClearCmd(o *options) *cobra.Command {
	var node string
	c := &cobra.Command{
		Use:   "clear",
		Short: "Forget the service's failed and start-failed marks on this node (--node N, or --node '*' for all), putting the node back among its candidates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.service == "" {
				return fmt.Errorf("no service given: use -s NAME")
			}
			c := o.daemon()
			if c == nil {
				return errNeedsDaemon
			}
			if err := c.Clear(cmd.Context(), o.service, api.ClearRequest{Node: node}); err != nil {
				return err
			}
			where := node
			if where == "" {
				where = "this node"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: failure marks cleared on %s\n", o.service, where)
			return nil
		},
	}
	c.Flags().StringVar(&node, "node", "", "the node whose marks are cleared (default this one; '*' for every node)")
	return c
}

func newPrintFailoversCmd(o *options) *cobra.Command {
	var last int
	c := &cobra.Command{
		Use:   "failovers",
		Short: "Draw the service's last takeovers and moves made by this node, phase by phase (--format json for the records)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.service == "" {
				return fmt.Errorf("no service given: use -s NAME")
			}
			c := o.daemon()
			if c == nil {
				return errNeedsDaemon
			}
			var flights []api.Flight
			q := url.Values{"service": {o.service}, "kind": {"failover"}, "limit": {fmt.Sprint(last)}}
			err := c.Journal(cmd.Context(), q, func(e journal.Entry) {
				var f api.Flight
				if json.Unmarshal(e.Data, &f) == nil {
					flights = append(flights, f)
				}
			})
			if err != nil {
				return err
			}
			if o.format == "json" {
				if flights == nil {
					flights = []api.Flight{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(flights)
			}
			if len(flights) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: no failover recorded on this node (they are on the node that took the service)\n", o.service)
				return nil
			}
			for _, f := range flights {
				drawFlight(cmd.OutOrStdout(), f)
			}
			return nil
		},
	}
	c.Flags().IntVar(&last, "last", 5, "how many of the last failovers to show")
	return c
}

// drawFlight draws a failover as a timeline: a bar per phase, placed and
// sized on one scale, then the resources' starts.
func drawFlight(w io.Writer, f api.Flight) {
	const width = 50
	head := f.Kind
	if len(f.From) > 0 {
		head += " from " + strings.Join(f.From, ", ")
	}
	fmt.Fprintf(w, "%s  %s on %s: %s, %.3fs\n", f.Begin.Local().Format("2006-01-02 15:04:05.000"), f.Service, f.Node, head, f.Total)
	if f.Failed != "" {
		fmt.Fprintf(w, "  failed: %s\n", f.Failed)
	}
	span := f.Total
	for _, p := range f.Phases {
		span = max(span, p.End.Sub(f.Begin).Seconds())
	}
	if span <= 0 {
		span = 1
	}
	bar := func(name string, p api.Phase) {
		from := int(p.Start.Sub(f.Begin).Seconds() / span * width)
		n := max(1, int(p.Seconds/span*width+0.5))
		from = min(max(from, 0), width-1)
		n = min(n, width-from)
		fmt.Fprintf(w, "  %-16s %s%s%s %7.3fs\n", name, strings.Repeat(" ", from), strings.Repeat("█", n), strings.Repeat(" ", width-from-n), p.Seconds)
	}
	for _, p := range f.Phases {
		bar(p.Name, p)
	}
	rs := slices.Clone(f.Resources)
	slices.SortFunc(rs, func(a, b api.Phase) int { return a.Start.Compare(b.Start) })
	for _, r := range rs {
		bar("  "+r.Name, r)
	}
	fmt.Fprintln(w)
}

// printRestarts adds the monitor's restart counts under print status.
func (o *options) printRestarts(cmd *cobra.Command) {
	c := o.daemon()
	if c == nil || o.service == "" {
		return
	}
	cs, err := c.Status(cmd.Context())
	if err != nil || cs.Node[cs.Local] == nil || cs.Node[cs.Local].Services[o.service] == nil {
		return
	}
	counts := cs.Node[cs.Local].Services[o.service].Restarts
	rids := make([]string, 0, len(counts))
	for rid := range counts {
		rids = append(rids, rid)
	}
	slices.Sort(rids)
	for _, rid := range rids {
		fmt.Fprintf(cmd.OutOrStdout(), "%s restarted %d time(s) by the monitor\n", rid, counts[rid])
	}
}
