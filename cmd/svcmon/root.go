package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/cmd/internal/view"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
)

// Watch timing: a redraw every redrawEvery even without events (heartbeat
// staleness produces none), and a pause before resubscribing when the event
// stream breaks (vigild restarting).
const (
	redrawEvery     = 5 * time.Second
	resubscribeWait = time.Second
)

// clearScreen moves the cursor home and clears the terminal.
const clearScreen = "\x1b[H\x1b[2J"

type options struct {
	runDir   string
	services []string
	cluster  bool
	watch    bool
	format   string
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newRootCmd() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "svcmon",
		Short: "Show the services of this node, or of every node, as vigild sees them",
		Example: `  svcmon
  svcmon --service=registry.opensvc.com,busybox.opensvc.com
  svcmon --cluster --watch`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	root.AddCommand(newEventsCmd(o))
	f := root.Flags()
	f.StringVar(&o.runDir, "run-dir", envOr("VIGIL_RUN_DIR", "/var/run/vigil"), "runtime directory holding vigild's socket (env VIGIL_RUN_DIR)")
	f.StringSliceVarP(&o.services, "service", "s", nil, "services to show, comma separated, in this order (default: all, by name)")
	f.BoolVarP(&o.cluster, "cluster", "c", false, "show every node side by side, with node states and heartbeats")
	f.BoolVarP(&o.watch, "watch", "w", false, "redraw on each vigild event and every 5s, until Ctrl-C")
	f.StringVar(&o.format, "format", "text", "output format: text or json")
	root.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.RegisterFlagCompletionFunc("service", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		c, err := o.dial()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cs, err := c.Status(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return knownServices(cs), cobra.ShellCompDirectiveNoFileComp
	})
	cli.Setup(root)
	return root
}

func (o *options) run(ctx context.Context, out, errOut io.Writer) error {
	switch {
	case o.format != "text" && o.format != "json":
		return fmt.Errorf("--format %q: use text or json", o.format)
	case o.watch && o.format == "json":
		return errors.New("--watch redraws the table: drop --format json")
	}
	c, err := o.dial()
	if err != nil {
		return err
	}
	if o.watch {
		return o.watchLoop(ctx, c, out)
	}
	cs, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if err := o.checkServices(cs, errOut); err != nil {
		return err
	}
	if o.format == "json" {
		return view.WriteJSON(out, filter(cs, o.services))
	}
	if err := o.render(out, cs); err != nil {
		return err
	}
	return renderOps(ctx, c, out)
}

func (o *options) dial() (*api.Client, error) {
	socket := filepath.Join(o.runDir, api.SocketName)
	c, err := api.Dial(socket)
	if errors.Is(err, api.ErrNotRoot) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w on %s: start vigild, or use svcmgr -s NAME print status", api.ErrNoDaemon, socket)
	}
	return c, nil
}

func (o *options) viewOptions() view.MonitorOptions {
	return view.MonitorOptions{Services: o.services, ServiceType: serviceType}
}

// render draws the table the flags ask for.
func (o *options) render(w io.Writer, cs *api.ClusterStatus) error {
	if o.cluster {
		return view.WriteClusterMonitor(w, cs, o.viewOptions())
	}
	return view.WriteMonitor(w, view.MonitorRows(cs, cs.Local, o.viewOptions()))
}

// checkServices refuses --service names no node knows (a typo), and says
// which ones only peers run when the table shows this node alone.
func (o *options) checkServices(cs *api.ClusterStatus, errOut io.Writer) error {
	known := knownServices(cs)
	var unknown, elsewhere []string
	for _, s := range o.services {
		switch {
		case !slices.Contains(known, s):
			unknown = append(unknown, s)
		case !o.cluster && (cs.Node[cs.Local] == nil || cs.Node[cs.Local].Services[s] == nil):
			elsewhere = append(elsewhere, s)
		}
	}
	if len(unknown) > 0 {
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return fmt.Errorf("no node of the cluster has service %s (services: %s)", strings.Join(unknown, ", "), list)
	}
	if len(elsewhere) > 0 && o.format == "text" {
		fmt.Fprintf(errOut, "svcmon: %s not on %s: see svcmon --cluster\n", strings.Join(elsewhere, ", "), cs.Local)
	}
	return nil
}

// watchLoop redraws the table on each event and every redrawEvery until
// ctx ends. A daemon that stops answering is shown on screen and retried,
// not fatal: the operator watching is the one who will restart it.
func (o *options) watchLoop(ctx context.Context, c *api.Client, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	redraw := make(chan struct{}, 1)
	wg.Go(func() {
		poke := func(api.Event) {
			select {
			case redraw <- struct{}{}:
			default: // a redraw is already due
			}
		}
		for ctx.Err() == nil {
			c.Events(ctx, poke)
			select {
			case <-ctx.Done():
			case <-time.After(resubscribeWait):
			}
		}
	})

	tick := time.NewTicker(redrawEvery)
	defer tick.Stop()
	for {
		var frame bytes.Buffer
		frame.WriteString(clearScreen)
		cs, err := c.Status(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			fmt.Fprintf(&frame, "%v\nretrying every %s\n", err, redrawEvery)
		default:
			if err := o.render(&frame, cs); err != nil {
				return err
			}
		}
		fmt.Fprintf(&frame, "\n%s  redrawn on each event and every %s; Ctrl-C quits\n", time.Now().Format("15:04:05"), redrawEvery)
		if _, err := out.Write(frame.Bytes()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-redraw:
		}
	}
}

// serviceType reads an instance's service_type keyword (PRD, DEV, ...).
func serviceType(inst *cluster.ServiceInstance) string { return inst.Type }

// knownServices lists every service any node has, by name.
func knownServices(cs *api.ClusterStatus) []string {
	all := map[string]bool{}
	for _, ns := range cs.Node {
		if ns == nil {
			continue
		}
		for s := range ns.Services {
			all[s] = true
		}
	}
	return slices.Sorted(maps.Keys(all))
}

// filter returns cs with only services left on each node (all when
// services is empty). cs is not modified.
func filter(cs *api.ClusterStatus, services []string) *api.ClusterStatus {
	if len(services) == 0 {
		return cs
	}
	out := *cs
	out.Node = make(map[string]*api.NodeStatus, len(cs.Node))
	for n, ns := range cs.Node {
		if ns == nil {
			out.Node[n] = nil
			continue
		}
		cp := *ns
		cp.Services = map[string]*cluster.ServiceInstance{}
		for _, s := range services {
			if inst, ok := ns.Services[s]; ok {
				cp.Services[s] = inst
			}
		}
		out.Node[n] = &cp
	}
	return &out
}
