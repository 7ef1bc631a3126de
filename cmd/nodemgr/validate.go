package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/plugin"
)

func init() { subcommands = append(subcommands, newValidateCmd) }

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check cluster.conf (default CONFIG_DIR/cluster.conf) against the plugins' keywords; file:line errors, non-zero exit on any",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(configDir(cmd), "cluster.conf")
			if len(args) == 1 {
				path = args[0]
			}
			host := pluginHost(cmd)
			defer host.Close()
			conf, err := loadClusterConf(cmd, host, path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (cluster %s, nodes %v, sum %s)\n", path, conf.Cluster, conf.Nodes, short(conf.Sum))
			return nil
		},
	}
}

// loadClusterConf loads and validates path, printing each problem as
// file:line on stderr; the error is then a cli.SaidError.
func loadClusterConf(cmd *cobra.Command, host *plugin.Host, path string) (*cluster.NodeConfig, error) {
	infos, _, err := host.Plugins(cmd.Context())
	if err != nil {
		return nil, fmt.Errorf("list the plugins (their keywords check the heartbeat and stonith sections): %w", err)
	}
	conf, err := cluster.LoadNodeConfig(path, cluster.KeywordsOf(infos))
	var errs config.Errors
	if errors.As(err, &errs) {
		fmt.Fprintln(cmd.ErrOrStderr(), errs.Error())
		return nil, &cli.SaidError{Err: fmt.Errorf("%s: %d errors", path, len(errs))}
	}
	return conf, err
}

// short is the first 12 hex digits of a checksum, as shown to operators.
func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
