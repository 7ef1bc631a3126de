package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/journal"
)

// renderOps adds what svcmon's table does not hold: frozen nodes, the
// cluster-wide freeze, a drain in progress, the fencing methods' last
// check, failed alert runs. Nothing when all is plain.
func renderOps(ctx context.Context, c *api.Client, w io.Writer) error {
	st, err := c.Ops(ctx)
	if err != nil {
		return nil // an older daemon: the table alone
	}
	var frozen []string
	for n, f := range st.Frozen {
		if f {
			frozen = append(frozen, n)
		}
	}
	slices.Sort(frozen)
	switch {
	case st.ClusterFrozen:
		fmt.Fprintln(w, "\nthe cluster is frozen (nodemgr thaw --cluster)")
	case len(frozen) > 0:
		fmt.Fprintf(w, "\nfrozen: %s (nodemgr thaw)\n", strings.Join(frozen, ", "))
	}
	if st.Draining {
		fmt.Fprintf(w, "%s is draining: its services are moving away\n", st.Local)
	}
	if len(st.FenceChecks) > 0 {
		fmt.Fprintln(w, "\nfencing")
		for _, fc := range st.FenceChecks {
			state := "ok, power " + fc.Power
			if !fc.OK {
				state = "FAILED: " + fc.Error
			}
			fmt.Fprintf(w, "  %-10s %-18s level %d  %-12s %s ago  %s\n", fc.Node, fc.Method, fc.Level, fc.Type,
				time.Since(fc.At).Round(time.Second), state)
		}
	}
	for a, n := range st.AlertFailures {
		fmt.Fprintf(w, "alert %s failed %d time(s): see vigild's log\n", a, n)
	}
	return nil
}

func newEventsCmd(o *options) *cobra.Command {
	var since, service, kinds string
	var follow bool
	c := &cobra.Command{
		Use:   "events",
		Short: "Print this node's event journal: peers, fences, claims, starts, stops, failovers, monitor verdicts, operator actions",
		Example: `  svcmon events --since 1h
  svcmon events --follow --service registry.opensvc.com
  svcmon events --kind failover,fence --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.dial()
			if err != nil {
				return err
			}
			q := url.Values{}
			if since != "" {
				q.Set("since", since)
			}
			if service != "" {
				q.Set("service", service)
			}
			if kinds != "" {
				q.Set("kind", kinds)
			}
			if follow {
				q.Set("follow", "1")
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			return c.Journal(cmd.Context(), q, func(e journal.Entry) {
				if o.format == "json" {
					enc.Encode(e)
					return
				}
				fmt.Fprintln(out, formatEntry(e))
			})
		},
	}
	f := c.Flags()
	f.StringVar(&since, "since", "", "only events since this long ago (10m, 2h) or this RFC 3339 time")
	f.StringVar(&service, "service", "", "only this service's events")
	f.StringVar(&kinds, "kind", "", "only these kinds, comma separated (lost, fence, failover, operator...)")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing events as they happen, until Ctrl-C")
	f.StringVar(&o.format, "format", "text", "output format: text or json (one entry a line)")
	return c
}

// formatEntry is one journal line: time, kind, node, service, message.
func formatEntry(e journal.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-13s", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Kind)
	if e.Node != "" {
		fmt.Fprintf(&b, " node=%s", e.Node)
	}
	if e.Service != "" {
		fmt.Fprintf(&b, " service=%s", e.Service)
	}
	if e.UID != nil {
		fmt.Fprintf(&b, " uid=%d", *e.UID)
	}
	if e.Message != "" {
		b.WriteString("  " + e.Message)
	}
	return b.String()
}
