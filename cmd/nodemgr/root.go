package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/core/plugin"
)

// subcommands are nodemgr's top-level commands. Each file of this package
// that adds one appends its constructor from its init():
//
//	func init() { subcommands = append(subcommands, newXxxCmd) }
//
// so commands written by different changes never edit the same lines.
// Flags a subcommand shares with others (--config-dir, --run-dir) are
// persistent flags of the root, read through the helpers below.
var subcommands []func() *cobra.Command

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "nodemgr",
		Short:         "Manage this node and its cluster: cluster.conf, the secret, checks across nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.String("config-dir", envOr("VIGIL_CONFIG_DIR", "/etc/vigil"), "cluster.conf, the secret and service configs (env VIGIL_CONFIG_DIR)")
	pf.String("run-dir", envOr("VIGIL_RUN_DIR", "/var/run/vigil"), "runtime directory holding vigild's socket (env VIGIL_RUN_DIR)")
	pf.String("plugin-dir", envOr("VIGIL_PLUGIN_DIR", plugin.DefaultDir()), "plugin directory (env VIGIL_PLUGIN_DIR)")
	pf.Bool("debug", false, "log debug lines, plugins' included, on stderr")
	for _, newCmd := range subcommands {
		root.AddCommand(newCmd())
	}
	cli.Setup(root)
	return root
}

// configDir is the --config-dir a subcommand was run with.
func configDir(cmd *cobra.Command) string {
	v, _ := cmd.Flags().GetString("config-dir")
	return v
}

// runDir is the --run-dir a subcommand was run with.
func runDir(cmd *cobra.Command) string {
	v, _ := cmd.Flags().GetString("run-dir")
	return v
}

// pluginHost starts the plugin host of --plugin-dir: the heartbeat and
// stonith plugins declare the keywords cluster.conf's sections take, and
// answer fencing status calls. The caller closes it.
func pluginHost(cmd *cobra.Command) *plugin.Host {
	dir, _ := cmd.Flags().GetString("plugin-dir")
	debug, _ := cmd.Flags().GetBool("debug")
	level := hclog.Warn
	if debug {
		level = hclog.Debug
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "nodemgr", Level: level, Output: cmd.ErrOrStderr()})
	return plugin.New(plugin.Config{Dir: dir, Logger: log})
}
