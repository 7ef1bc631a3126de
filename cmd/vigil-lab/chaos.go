package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/e2e/lab"
)

func newChaosCmd(name *string) *cobra.Command {
	cfg := lab.ChaosConfig{}
	var only string
	var list bool
	cmd := &cobra.Command{
		Use:   "chaos --faults N [--seed S]",
		Short: "Run N randomized faults against a lab (its own unless --name is given) and check that the services stay safe",
		Long: `chaos builds a two-node lab (or uses the one --name names) and runs
randomized faults against it: power-offs, daemon kills and stops, plugin,
docker daemon and container kills, cuts (net, disk, both, one-way), failing
and unreachable BMCs, and combinations. After each it repairs what it broke,
waits for every service to be up on exactly one node, and pulls every image
pushed to the registry back by digest. Witnesses on the host record a device
of the services mounted in two nodes' mount namespaces at once, or a
floating address held by two nodes at once. One line per fault, then the
summary; exit status 1 on any violation, whose fault's logs are kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if list {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				for _, f := range lab.ChaosFaults() {
					fmt.Fprintf(tw, "%s\t%s\n", f[0], f[1])
				}
				return tw.Flush()
			}
			if cfg.Faults < 1 {
				return fmt.Errorf("--faults %d: run at least one", cfg.Faults)
			}
			if !cmd.Flags().Changed("seed") {
				var b [8]byte
				_, _ = rand.Read(b[:])
				cfg.Seed = binary.LittleEndian.Uint64(b[:]) >> 1
			}
			if cmd.Flags().Changed("name") {
				cfg.Name = *name
			}
			if only != "" {
				cfg.Only = strings.Split(only, ",")
			}
			t0 := time.Now()
			sum, err := lab.Chaos(cmd.Context(), cfg, w)
			if sum.Faults > 0 || err == nil {
				fmt.Fprintf(w, "chaos: %s for %d faults (%.1fs a fault)\n", time.Since(t0).Round(time.Second), sum.Faults, time.Since(t0).Seconds()/float64(max(1, sum.Faults)))
				if len(sum.KeptLogs) > 0 {
					fmt.Fprintf(w, "chaos: the faulty faults' logs are in %s\n", strings.Join(sum.KeptLogs, " "))
				}
				fmt.Fprintln(w, sum.String())
			}
			if err != nil {
				return fmt.Errorf("chaos (seed %d): %w", cfg.Seed, err)
			}
			if sum.Violations > 0 {
				return fmt.Errorf("chaos (seed %d): %d violation(s)", cfg.Seed, sum.Violations)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Faults, "faults", 10, "number of faults")
	f.Uint64Var(&cfg.Seed, "seed", 0, "seed of the fault generator (random when unset; printed either way)")
	f.StringVar(&only, "only", "", "comma-separated faults to draw from (see --list); all when empty")
	f.BoolVar(&list, "list", false, "list the fault catalogue and exit")
	f.DurationVar(&cfg.Converge, "converge", 60*time.Second, "how long the services may take to converge after a fault is repaired")
	f.StringVar(&cfg.KeepDir, "keep-dir", "", "where the logs of faults with violations are kept (default: the temporary directory)")
	return cmd
}
