package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/status"
)

// daemon returns a client of this node's vigild, or nil when none answers:
// svcmgr then acts alone, as the seed's does, under the same lock.
func (o *options) daemon() *api.Client {
	c, err := api.Dial(filepath.Join(o.runDir, api.SocketName))
	if err != nil {
		return nil
	}
	return c
}

// serviceStatus is the status of the -s service: the daemon's latest
// evaluation when one runs, else evaluated here and now.
func (o *options) serviceStatus(ctx context.Context) (status.Service, error) {
	if c := o.daemon(); c != nil {
		if o.service == "" {
			return status.Service{}, fmt.Errorf("no service given: use -s NAME")
		}
		cs, err := c.Status(ctx)
		if err != nil {
			return status.Service{}, err
		}
		if local := cs.Node[cs.Local]; local != nil {
			if inst := local.Services[o.service]; inst != nil {
				return inst.Status, nil
			}
		}
		// Not loaded by vigild yet (written since its last scan), or
		// no such file: evaluated here, or the one unknown-service error.
		if _, err := action.FindService(o.configDir, o.service); err != nil {
			return status.Service{}, err
		}
	}
	e := o.env(nil)
	defer e.close()
	svc, err := o.loadService(ctx, e)
	if err != nil {
		return status.Service{}, err
	}
	return e.engine.Status(ctx, svc), nil
}

func newSetCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:               "set KEY=VALUE...",
		Short:             "Change keywords of the service's config (orchestrate=ha, fs#1.mnt_opt=ro); validated, then propagated to its nodes",
		Args:              cli.MinimumArgs(1, "KEY=VALUE (e.g. orchestrate=ha or fs#1.mnt_opt=ro)"),
		ValidArgsFunction: o.completeSet,
		RunE: func(cmd *cobra.Command, kv []string) error {
			ctx := cmd.Context()
			if o.service == "" {
				return errors.New("no service given: use -s NAME")
			}
			if c := o.daemon(); c != nil {
				return c.ConfigSet(ctx, o.service, kv)
			}
			e := o.env(nil)
			defer e.close()
			path, err := action.FindService(o.configDir, o.service)
			if err != nil {
				return err
			}
			out, err := e.engine.SetKeywords(ctx, path, kv)
			if err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					return fmt.Errorf("refused, nothing changed:\n%w", err)
				}
				return err
			}
			return action.WriteFileAtomic(path, out, 0o600, time.Now())
		},
	}
}

func newGetCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:               "get KEY",
		Short:             "Print a keyword of the service's config (orchestrate, fs#1.mnt_opt)",
		Args:              cli.ExactArgs(1, "one KEY (e.g. orchestrate or fs#1.mnt_opt)"),
		ValidArgsFunction: o.completeGet,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := action.FindService(o.configDir, o.service)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			f, err := config.ParseINI(path, data)
			if err != nil {
				return err
			}
			section, key := config.DefaultSection, strings.ToLower(args[0])
			if i := strings.LastIndexByte(key, '.'); i > 0 && strings.Contains(key[:i], "#") {
				section, key = key[:i], key[i+1:]
			}
			sec := f.Section(section)
			if sec == nil || sec.Entry(key) == nil {
				return fmt.Errorf("%s: [%s] has no %s", path, section, key)
			}
			fmt.Fprintln(cmd.OutOrStdout(), sec.Entry(key).Value)
			return nil
		},
	}
}

func newConfigCmd(o *options) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Service config commands"}
	c.AddCommand(&cobra.Command{
		Use:   "commit",
		Short: "Validate a hand-edited service config and make it the version in force on every node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.service == "" {
				return errors.New("no service given: use -s NAME")
			}
			if cl := o.daemon(); cl != nil {
				if err := cl.ConfigCommit(cmd.Context(), o.service); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: config committed\n", o.service)
				return nil
			}
			e := o.env(nil)
			defer e.close()
			if _, err := o.loadService(cmd.Context(), e); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: config valid (no vigild runs: nothing to propagate)\n", o.service)
			return nil
		},
	})
	return c
}
