package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/plugin"
)

// options holds the flags every subcommand shares.
type options struct {
	service   string
	configDir string
	pluginDir string
	runDir    string
	stateDir  string
	format    string
	rids      []string
	wait      bool
	debug     bool
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
		Use:           "svcmgr",
		Short:         "Start, stop and show the services of this node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&o.service, "service", "s", "", "service name (its config is <config-dir>/NAME.conf or NAME.env)")
	pf.StringVar(&o.configDir, "config-dir", envOr("VIGIL_CONFIG_DIR", "/etc/vigil"), "service config directory (env VIGIL_CONFIG_DIR)")
	pf.StringVar(&o.pluginDir, "plugin-dir", envOr("VIGIL_PLUGIN_DIR", plugin.DefaultDir()), "plugin directory (env VIGIL_PLUGIN_DIR)")
	pf.StringVar(&o.runDir, "run-dir", envOr("VIGIL_RUN_DIR", "/var/run/vigil"), "runtime directory (env VIGIL_RUN_DIR)")
	pf.StringVar(&o.stateDir, "state-dir", envOr("VIGIL_STATE_DIR", "/var/lib/vigil"), "state directory (env VIGIL_STATE_DIR)")
	pf.StringVar(&o.format, "format", "text", "output format: text or json")
	pf.BoolVar(&o.debug, "debug", false, "log debug lines, plugins' included, on stderr")
	root.RegisterFlagCompletionFunc("service", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		names, _ := action.ListServices(o.configDir)
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	root.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if o.format != "text" && o.format != "json" {
			return fmt.Errorf("--format %q: use text or json", o.format)
		}
		return checkRoot(cmd)
	}
	root.AddCommand(
		newActionCmd(o, "start", "Start the service's resources in order"),
		newActionCmd(o, "stop", "Stop the service's resources in reverse order"),
		newPrintCmd(o),
		newValidateCmd(o),
		newDockerCmd(o),
		newPluginsCmd(o),
		newDocCmd(o),
		newSetCmd(o),
		newGetCmd(o),
		newConfigCmd(o),
		newOrchestrateCmd(o, "switch", "Move the service to another node (--to NODE): stopped where it runs, started there"),
		newOrchestrateCmd(o, "takeover", "Move the service to this node"),
		newOrchestrateCmd(o, "giveback", "Move the service back to its first node (no automatic failback does it)"),
		newOrchestrateCmd(o, "freeze", "Leave the service alone cluster-wide: no orchestration until thawed"),
		newOrchestrateCmd(o, "thaw", "Let the orchestrators act on the service again"),
		newClearCmd(o),
	)
	cli.Setup(root)
	return root
}

// env is what a subcommand works with: the engine and its plugin host.
type env struct {
	host   *plugin.Host
	engine *action.Engine
}

func (o *options) env(progress func(action.Step)) *env {
	level := hclog.Warn
	if o.debug {
		level = hclog.Debug
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "svcmgr", Level: level, Output: os.Stderr})
	host := plugin.New(plugin.Config{Dir: o.pluginDir, Logger: log})
	eng := action.New(action.Config{
		Plugins: host, RunDir: o.runDir, StateDir: o.stateDir, Logger: log, Progress: progress,
	})
	return &env{host: host, engine: eng}
}

func (e *env) close() { e.host.Close() }

// loadService finds and validates the service named by -s.
func (o *options) loadService(ctx context.Context, e *env) (*config.Service, error) {
	if o.service == "" {
		return nil, fmt.Errorf("no service given: use -s NAME (services in %s: %s)", o.configDir, o.serviceList())
	}
	path, err := action.FindService(o.configDir, o.service)
	if err != nil {
		return nil, err
	}
	return e.engine.Load(ctx, path)
}

func (o *options) serviceList() string {
	names, err := action.ListServices(o.configDir)
	if err != nil || len(names) == 0 {
		return "none"
	}
	out := names[0]
	for _, n := range names[1:] {
		out += ", " + n
	}
	return out
}
