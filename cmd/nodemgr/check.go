package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/cmd/internal/view"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/plugin"
)

// finding is one line of `cluster check`'s report.
type finding struct {
	Node   string `json:"node"`
	Check  string `json:"check"` // cluster.conf, hb#N, stonith
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func newClusterCheckCmd() *cobra.Command {
	var format string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "check",
		Short: "Check every node runs the same cluster.conf, hears the others on every heartbeat (the disk one: same device), and that every node's fencing answers",
		Long: `Report, per node:
  cluster.conf  the checksum each node publishes on its heartbeats against this
                node's file (and against what this node's vigild runs);
  hb#N          whether this node hears the peer on that heartbeat: on a disk
                heartbeat, beats read means both nodes write the same device;
  stonith       the node's fencing method, asked for the power status from here
                (the node that fences it is a peer: its BMC must answer).
Exit status 1 on any difference. vigild must run on this node.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: use text or json", format)
			}
			ctx := cmd.Context()
			host := pluginHost(cmd)
			defer host.Close()
			confPath := filepath.Join(configDir(cmd), clusterConfName)
			nc, err := loadClusterConf(cmd, host, confPath)
			if err != nil {
				return err
			}
			c, err := api.Dial(filepath.Join(runDir(cmd), api.SocketName))
			if err != nil {
				return fmt.Errorf("%w: the peers' cluster.conf checksums and heartbeats come from this node's vigild (systemctl start vigild)", err)
			}
			st, err := c.Status(ctx)
			if err != nil {
				return fmt.Errorf("%w: the peers' cluster.conf checksums and heartbeats come from this node's vigild (systemctl start vigild)", err)
			}
			found := checkConfs(nc, st)
			found = append(found, checkFencing(ctx, host, nc, timeout)...)
			slices.SortStableFunc(found, func(a, b finding) int {
				return slices.Index(nc.Nodes, a.Node) - slices.Index(nc.Nodes, b.Node)
			})
			out := cmd.OutOrStdout()
			bad := 0
			for _, f := range found {
				if !f.OK {
					bad++
				}
			}
			if format == "json" {
				if err := view.WriteJSON(out, found); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tCHECK\tRESULT\tDETAIL")
				for _, f := range found {
					res := "ok"
					switch {
					case f.OK:
					case f.Check == "cluster.conf":
						res = "DIFFERS"
					default:
						res = "FAIL"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Node, f.Check, res, f.Detail)
				}
				tw.Flush()
			}
			if bad > 0 {
				if format == "text" {
					fmt.Fprintf(cmd.ErrOrStderr(), "nodemgr: cluster check: %d problem(s)\n", bad)
				}
				return &cli.SaidError{Err: fmt.Errorf("%d problem(s)", bad)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "text", "output format: text or json")
	c.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "longest wait for one BMC's power status")
	return c
}

// checkConfs compares the cluster.conf checksum every node publishes with
// this node's file, and reads what each heartbeat says of every peer.
func checkConfs(nc *cluster.NodeConfig, st *api.ClusterStatus) []finding {
	var out []finding
	for _, n := range nc.Nodes {
		ns := st.Node[n]
		f := finding{Node: n, Check: "cluster.conf"}
		switch {
		case ns == nil:
			f.Detail = "not in vigild's view: vigild runs another cluster.conf than " + nc.Path + " (restart it)"
		case ns.ClusterConf == nc.Sum:
			f.OK, f.Detail = true, "same ("+short(nc.Sum)+")"
		case ns.ClusterConf == "" && n != st.Local:
			f.Detail = fmt.Sprintf("never heard (%s): the node is down, runs no vigild, or has another secret (its beats are rejected)", ns.State)
			if r := rejects(st); r != "" {
				f.Detail += "; rejected here: " + r
			}
		case n == st.Local:
			f.Detail = fmt.Sprintf("vigild runs %s, the file is %s: restart vigild to run the file", short(ns.ClusterConf), short(nc.Sum))
		default:
			f.Detail = fmt.Sprintf("%s, here %s: copy this node's file there (nodemgr cluster export | ssh %s nodemgr cluster join --force) or find which one is right", short(ns.ClusterConf), short(nc.Sum), n)
		}
		out = append(out, f)
		if n == st.Local || ns == nil {
			continue
		}
		for _, hb := range nc.Heartbeats {
			f := finding{Node: n, Check: hb.Name}
			seen := ns.HB[hb.Name]
			switch {
			case seen == nil:
				f.Detail = "vigild runs no such heartbeat: restart it to run " + nc.Path
			case !seen.Stale && !seen.LastBeat.IsZero():
				f.OK, f.Detail = true, hb.Type+": heard"
				if hb.Type == "hb.disk" {
					f.Detail += " (its beats are on this node's " + hb.Keywords["dev"] + ": the same device)"
				}
			default:
				f.Detail = hb.Type + ": not heard"
				if seen.Reason != "" {
					f.Detail += " (" + seen.Reason + ")"
				}
				if hb.Type == "hb.disk" {
					f.Detail += fmt.Sprintf(": no beats of %s on %s: not the same device there, or it cannot write it", n, hb.Keywords["dev"])
				}
			}
			out = append(out, f)
		}
	}
	return out
}

func rejects(st *api.ClusterStatus) string {
	var parts []string
	for k, v := range st.Rejects {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// checkFencing asks every node's fencing method for the node's power
// status, all at once: an unreachable BMC costs one timeout, not one per
// node.
func checkFencing(ctx context.Context, host *plugin.Host, nc *cluster.NodeConfig, timeout time.Duration) []finding {
	out := make([]finding, len(nc.Nodes))
	var wg sync.WaitGroup
	for i, n := range nc.Nodes {
		out[i] = finding{Node: n, Check: "stonith"}
		sc, ok := nc.Stonith[n]
		if !ok {
			out[i].Detail = fmt.Sprintf("no [stonith#%s] section: nothing can fence it (orchestrate = ha refuses it)", n)
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			fencer, err := host.Stonith(ctx, sc.Type)
			power := ""
			if err == nil {
				power, err = fencer.PowerStatus(ctx, n, sc.Keywords)
			}
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				out[i].Detail = fmt.Sprintf("%s: no answer within %s: check the BMC's address, network and user (%s)", sc.Type, timeout, err)
			case err != nil:
				out[i].Detail = fmt.Sprintf("%s: %v", sc.Type, err)
			default:
				out[i].OK, out[i].Detail = true, fmt.Sprintf("%s answers: power %s", sc.Type, power)
			}
		})
	}
	wg.Wait()
	return out
}
