package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/e2e/lab"
)

func newRootCmd() *cobra.Command {
	var name string
	root := &cobra.Command{
		Use:           "vigil-lab",
		Short:         "Build and drive a lab of Vigil cluster nodes on this host (root)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&name, "name", "lab", "lab name (1-8 lower-case letters or digits); every host-wide name derives from it")
	load := func() (*lab.Lab, error) { return lab.Load(name) }

	root.AddCommand(
		newUpCmd(&name),
		newChaosCmd(&name),
		&cobra.Command{
			Use:   "down",
			Short: "Remove everything the lab made (safe to run twice, and after a crash)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return lab.Down(cmd.Context(), name, cmd.OutOrStdout())
			},
		},
		newStatusCmd(load),
		newExecCmd(load),
		newPowerCmd(load, false),
		newPowerCmd(load, true),
		newCutCmd(load),
		newBMCCmd(load),
		&cobra.Command{
			Use:   "heal NODE",
			Short: "Restore every link of a node",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				l, err := load()
				if err != nil {
					return err
				}
				return l.SetCut(cmd.Context(), args[0], lab.Cut{})
			},
		},
		// Hidden: the lab's own processes.
		&cobra.Command{
			Use: "node-init", Hidden: true, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := load()
				if err != nil {
					return err
				}
				node, _ := cmd.Flags().GetString("node")
				return lab.RunNodeInit(l, node)
			},
		},
		&cobra.Command{
			Use: "supervise", Hidden: true, Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				l, err := load()
				if err != nil {
					return err
				}
				return lab.RunSupervisor(l)
			},
		},
		&cobra.Command{
			Use: "bmc-control", Hidden: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				l, err := load()
				if err != nil {
					return err
				}
				node, _ := cmd.Flags().GetString("node")
				return lab.RunBMCControl(cmd.Context(), l, node, args)
			},
		},
	)
	for _, c := range root.Commands() {
		if c.Name() == "node-init" || c.Name() == "bmc-control" {
			c.Flags().String("node", "", "node name")
		}
	}
	cli.Setup(root)
	return root
}

func newUpCmd(name *string) *cobra.Command {
	cfg := lab.Config{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build a lab: nodes, network, shared disks, BMCs, images, services",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Name = *name
			t0 := time.Now()
			_, err := lab.Up(cmd.Context(), cfg, cmd.OutOrStdout())
			if err != nil {
				return fmt.Errorf("%w\n(what was made is recorded: `vigil-lab down --name %s` removes it)", err, *name)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "up in %.1fs\n", time.Since(t0).Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Nodes, "nodes", 2, "number of nodes (n1 … nN)")
	f.DurationVar(&cfg.HBInterval, "hb-interval", 500*time.Millisecond, "heartbeat interval written in cluster.conf")
	f.DurationVar(&cfg.HBTimeout, "hb-timeout", 2*time.Second, "heartbeat timeout written in cluster.conf")
	f.BoolVar(&cfg.Images, "images", true, "build the lab images and load them into the services' data roots")
	f.BoolVar(&cfg.Services, "services", true, "install the seed's two services in every node's /etc/vigil")
	f.StringVar(&cfg.Stonith, "stonith", lab.StonithIPMI, "how the nodes fence each other through the BMCs: ipmi (stonith-ipmi) or fence_agent (fence_ipmilan through stonith-fence-agent)")
	f.StringVar(&cfg.SplitAction, "split-action", "", "cluster.conf's split_action: none or stop (what a partition side without quorum does with its services; unset: the daemon's default)")
	f.StringVar(&cfg.FromPackage, "from-package", "", "a vigil .deb (make package: dist/vigil_*.deb): the nodes run its binaries, plugin directory and unit command line")
	return cmd
}

func newPowerCmd(load func() (*lab.Lab, error), on bool) *cobra.Command {
	use, short := "poweroff NODE", "Power a node off through its BMC (ipmitool): everything on it dies"
	if on {
		use, short = "poweron NODE", "Power a node on through its BMC (ipmitool): fresh namespaces, vigild started"
	}
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := load()
			if err != nil {
				return err
			}
			k, err := l.NodeIndex(args[0])
			if err != nil {
				return err
			}
			d, err := l.Power(cmd.Context(), k, on)
			if err != nil {
				return err
			}
			state := "off"
			if on {
				state = "on"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s powered %s through its BMC %s in %s\n", args[0], state, l.BMCAddr(k), d.Round(time.Millisecond))
			return nil
		},
	}
}

func newCutCmd(load func() (*lab.Lab, error)) *cobra.Command {
	var link string
	cmd := &cobra.Command{
		Use:   "cut NODE",
		Short: "Cut a node's links: net (its switch port down), disk (heartbeat disk unreadable in the node), all",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := load()
			if err != nil {
				return err
			}
			c := l.Cut[args[0]]
			switch link {
			case "net":
				c.Net = true
			case "disk":
				c.Disk = true
			case "all":
				c.Net, c.Disk = true, true
			default:
				return fmt.Errorf("--link %q: use net, disk or all", link)
			}
			return l.SetCut(cmd.Context(), args[0], c)
		},
	}
	cmd.Flags().StringVar(&link, "link", "all", "net, disk or all")
	return cmd
}

func newBMCCmd(load func() (*lab.Lab, error)) *cobra.Command {
	var fail string
	cmd := &cobra.Command{
		Use:   "bmc NODE --fail on|off",
		Short: "Make a node's BMC fail (it acknowledges power changes and ignores them: a fence is never confirmed) or work again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := load()
			if err != nil {
				return err
			}
			switch fail {
			case "on", "off":
			default:
				return fmt.Errorf("--fail %q: use on or off", fail)
			}
			if err := l.SetBMCFail(args[0], fail == "on"); err != nil {
				return err
			}
			if fail == "on" {
				fmt.Fprintf(cmd.OutOrStdout(), "BMC of %s failing: power changes are ignored until `vigil-lab bmc %s --fail off`\n", args[0], args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "BMC of %s works again\n", args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&fail, "fail", "", "on (ignore power changes) or off")
	_ = cmd.MarkFlagRequired("fail")
	return cmd
}

func newExecCmd(load func() (*lab.Lab, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NODE -- CMD [ARG...]",
		Short: "Run a command in a node (its namespaces); stdio attached, exit code passed through",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := load()
			if err != nil {
				return err
			}
			nsenter, argv, env, err := l.ExecArgv(args[0], args[1:])
			if err != nil {
				return err
			}
			// Replaces vigil-lab: stdio, signals and the exit code are the
			// command's own.
			return syscall.Exec(nsenter, argv, env)
		},
	}
}

func newStatusCmd(load func() (*lab.Lab, error)) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the lab: nodes, power (asked of the BMCs), addresses, vigild, disks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := load()
			if err != nil {
				return err
			}
			st := l.Status(cmd.Context())
			w := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(w, "lab %s  %s.0/24 (switch netns %s, client %s in netns %s)  %s\n\n", st.Name, st.Subnet, st.Switch, st.Client, st.ClientNS, st.Dir)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tPOWER\tADDRESS\tBMC\tINIT\tVIGILD\tCUT")
			for _, n := range st.Nodes {
				cut := "-"
				switch {
				case n.CutNet && n.CutDisk:
					cut = "net,disk"
				case n.CutNet:
					cut = "net"
				case n.CutDisk:
					cut = "disk"
				}
				bmc := n.BMC
				if n.BMCFail {
					bmc += " (failing)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Power, n.Address, bmc, pidOr(n.InitPid), pidOr(n.VigildPid), cut)
			}
			tw.Flush()
			for _, n := range st.Nodes {
				if n.PowerError != "" {
					fmt.Fprintf(w, "%s: power unknown: %s\n", n.Name, n.PowerError)
				}
			}
			fmt.Fprintf(w, "\nservices: registry.opensvc.com %s, busybox.opensvc.com %s\nheartbeat disk: %s   volume groups: %s\n",
				st.Services["registry.opensvc.com"], st.Services["busybox.opensvc.com"], st.HBDev, strings.Join(st.VGs, " "))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "DISK\tDEVICE\tFILE")
			for _, d := range st.Disks {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Role, d.Dev, d.File)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

func pidOr(pid int) string {
	if pid == 0 {
		return "-"
	}
	return fmt.Sprint(pid)
}
