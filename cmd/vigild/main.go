// Command vigild is Vigil's node daemon: one per node, run as root. It
// keeps the node's services evaluated, runs the heartbeats, merges the
// cluster view and serves the local API svcmgr and svcmon use. SIGTERM
// stops it cleanly: services keep running, plugins exit.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/core/daemon"
	"github.com/vigil-ha/vigil/core/plugin"
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	var cfg daemon.Config
	var level string
	var jsonLogs bool
	cmd := &cobra.Command{
		Use:           "vigild",
		Short:         "Vigil's node daemon",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 && os.Getenv("VIGIL_ALLOW_NONROOT") == "" {
				return fmt.Errorf("vigild runs as root (it mounts, plumbs addresses and runs docker)")
			}
			cfg.Logger = hclog.New(&hclog.LoggerOptions{
				Name: "vigild", Level: hclog.LevelFromString(level), Output: os.Stderr, JSONFormat: jsonLogs,
			})
			// Type=notify: systemd counts vigild started once its API
			// answers, so units ordered after it find it serving.
			cfg.Ready = func() {
				if err := sdNotify("READY=1"); err != nil {
					cfg.Logger.Warn("could not tell systemd vigild is ready", "error", err)
				}
			}
			cfg.Stopping = func() { _ = sdNotify("STOPPING=1") }
			d, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ConfigDir, "config-dir", envOr("VIGIL_CONFIG_DIR", "/etc/vigil"), "cluster.conf and service configs (env VIGIL_CONFIG_DIR)")
	f.StringVar(&cfg.StateDir, "state-dir", envOr("VIGIL_STATE_DIR", "/var/lib/vigil"), "persistent state (env VIGIL_STATE_DIR)")
	f.StringVar(&cfg.RunDir, "run-dir", envOr("VIGIL_RUN_DIR", "/var/run/vigil"), "runtime files and the API socket (env VIGIL_RUN_DIR)")
	f.StringVar(&cfg.PluginDir, "plugin-dir", envOr("VIGIL_PLUGIN_DIR", plugin.DefaultDir()), "plugin binaries (env VIGIL_PLUGIN_DIR)")
	f.StringVar(&level, "log-level", envOr("VIGIL_LOG_LEVEL", "info"), "trace, debug, info, warn or error")
	f.BoolVar(&jsonLogs, "log-json", false, "log JSON lines (for collectors; journald takes either)")
	cli.Setup(cmd)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "vigild: "+err.Error())
		os.Exit(1)
	}
}
