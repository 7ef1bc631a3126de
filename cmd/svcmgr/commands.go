package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/cmd/internal/view"
	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/version"
	"github.com/vigil-ha/vigil/plugins/docker"
)

func newActionCmd(o *options, verb, short string) *cobra.Command {
	c := &cobra.Command{
		Use:   verb,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			begin := time.Now()
			var steps []string
			printLine := func(line string) {
				if line == "" {
					return
				}
				// One step per line, whether vigild sent them one by one
				// or joined.
				steps = append(steps, strings.Split(line, "\n")...)
				if o.format == "text" {
					fmt.Fprintln(out, line)
				}
			}
			name := o.service
			err := func() error {
				if c := o.daemon(); c != nil {
					// The daemon runs the action, under the same lock.
					if name == "" {
						return fmt.Errorf("no service given: use -s NAME")
					}
					return c.Action(ctx, name, api.ActionRequest{Action: verb, RIDs: o.rids, Wait: o.wait}, printLine)
				}
				e := o.env(func(s action.Step) { printLine(action.FormatStep(s)) })
				defer e.close()
				svc, err := o.loadService(ctx, e)
				if err != nil {
					return err
				}
				name = svc.Name
				if verb == "start" {
					if err := action.CheckNode(svc, o.localNode()); err != nil {
						return err
					}
				}
				unlock, err := e.engine.Lock(ctx, svc.Name, verb, o.wait)
				if err != nil {
					return err
				}
				defer unlock()
				opts := action.Options{RIDs: o.rids}
				if verb == "start" {
					return e.engine.Start(ctx, svc, opts)
				}
				return e.engine.Stop(ctx, svc, opts)
			}()
			if o.format == "json" {
				return writeResult(out, name, verb, steps, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: %s done in %s\n", name, verb, time.Since(begin).Round(time.Millisecond))
			return nil
		},
	}
	c.Flags().StringSliceVar(&o.rids, "rid", nil, "act on these resources only (e.g. --rid fs#1,ip#1)")
	c.RegisterFlagCompletionFunc("rid", o.completeRIDs)
	// One meaning per flag: --wait-lock waits for the lock, --wait-up (on
	// switch, takeover, giveback) for the service to be up.
	c.Flags().BoolVar(&o.wait, "wait-lock", false, "wait for another action on the service to end instead of failing")
	c.Flags().BoolVar(&o.wait, "wait", false, "")
	c.Flags().MarkDeprecated("wait", "use --wait-lock (it waits for another action on the service to end)")
	return c
}

func newPrintCmd(o *options) *cobra.Command {
	p := &cobra.Command{Use: "print", Short: "Print service information"}
	p.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Print the status tree of the service's resources",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := o.serviceStatus(ctx)
			if err != nil {
				return err
			}
			if o.format == "json" {
				return view.WriteJSON(cmd.OutOrStdout(), view.TreeOrder(st))
			}
			if err := view.WriteTree(cmd.OutOrStdout(), st); err != nil {
				return err
			}
			o.printRestarts(cmd)
			return nil
		},
	})
	p.AddCommand(newPrintFailoversCmd(o))
	return p
}

func newValidateCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE...]",
		Short: "Check service config files (or the service given with -s); non-zero exit on any error",
		RunE: func(cmd *cobra.Command, files []string) error {
			ctx := cmd.Context()
			if len(files) == 0 {
				if o.service == "" {
					return errors.New("validate: give config files or -s NAME")
				}
				path, err := action.FindService(o.configDir, o.service)
				if err != nil {
					return err
				}
				files = []string{path}
			}
			e := o.env(nil)
			defer e.close()
			type result struct {
				File   string   `json:"file"`
				OK     bool     `json:"ok"`
				Errors []string `json:"errors,omitempty"`
			}
			var results []result
			failed := false
			// With a cluster.conf, a service is checked against it too
			// (orchestrate = ha needs fencing for every node).
			var nodeConf *cluster.NodeConfig
			var nodeErr error
			if cpath := filepath.Join(o.configDir, "cluster.conf"); fileExists(cpath) {
				infos, _, err := e.host.Plugins(ctx)
				if err == nil {
					nodeConf, err = cluster.LoadNodeConfig(cpath, cluster.KeywordsOf(infos))
				}
				nodeErr = err
			}
			for _, f := range files {
				r := result{File: f, OK: true}
				svc, err := e.engine.Load(ctx, f)
				if err == nil && nodeConf != nil {
					err = nodeConf.CheckFencing(svc)
				} else if err == nil && nodeErr != nil {
					err = fmt.Errorf("cannot check it against cluster.conf: %w", nodeErr)
				}
				if err != nil {
					failed, r.OK = true, false
					var errs config.Errors
					if errors.As(err, &errs) {
						for _, ce := range errs {
							r.Errors = append(r.Errors, ce.Error())
						}
					} else {
						r.Errors = []string{f + ": " + err.Error()}
					}
				}
				results = append(results, r)
			}
			out := cmd.OutOrStdout()
			if o.format == "json" {
				if err := view.WriteJSON(out, results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					if r.OK {
						fmt.Fprintf(out, "%s: ok\n", r.File)
						continue
					}
					for _, l := range r.Errors {
						fmt.Fprintln(cmd.ErrOrStderr(), l)
					}
				}
			}
			if failed {
				return &cli.SaidError{Err: errors.New("validation failed")}
			}
			return nil
		},
	}
}

func newDockerCmd(o *options) *cobra.Command {
	c := &cobra.Command{
		Use:   "docker [--] ARGS...",
		Short: "Run the docker CLI against the service's docker daemon (its private one when docker_data_dir is set)",
		Long: "Run the docker CLI against the service's docker daemon. Everything from the first\n" +
			"docker word on goes to docker (svcmgr -s NAME docker ps -a); put -- before docker's own\n" +
			"global flags (svcmgr -s NAME docker -- --debug ps).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e := o.env(nil)
			svc, err := o.loadService(ctx, e)
			e.close()
			if err != nil {
				return err
			}
			bin, err := exec.LookPath("docker")
			if err != nil {
				return fmt.Errorf("docker CLI not found in PATH: %w", err)
			}
			envv := os.Environ()
			if svc.Keywords["docker_data_dir"] != "" {
				sock := docker.SocketPath(e.engine.ServiceRunDir(svc.Name))
				envv = append(envv, "DOCKER_HOST=unix://"+sock)
			}
			return syscall.Exec(bin, append([]string{"docker"}, args...), envv)
		},
	}
	// svcmgr's flags end at docker's first word.
	c.Flags().SetInterspersed(false)
	return c
}

func newPluginsCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "plugins",
		Short: "List the plugin binaries with their version, protocol version and the types they serve",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := o.env(nil)
			defer e.close()
			infos, errs, err := e.host.Plugins(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if o.format == "json" {
				type broken struct {
					Binary string `json:"binary"`
					Error  string `json:"error"`
				}
				var bad []broken
				for b, err := range errs {
					bad = append(bad, broken{b, err.Error()})
				}
				return view.WriteJSON(out, map[string]any{"version": version.String(), "plugins": infos, "failed": bad})
			}
			// svcmgr's own version first: the built-in plugins ship with
			// it (make package), each also carrying its own.
			fmt.Fprintf(out, "svcmgr %s, plugins in %s\n", version.String(), o.pluginDir)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PLUGIN\tVERSION\tPROTOCOL\tTYPES\tPATH")
			for _, in := range infos {
				var types []string
				for _, t := range in.Types {
					types = append(types, t.Type)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", in.Name, in.Version, in.Protocol, strings.Join(types, ","), in.Path)
			}
			tw.Flush()
			var names []string
			for b := range errs {
				names = append(names, b)
			}
			sort.Strings(names)
			for _, b := range names {
				fmt.Fprintf(cmd.ErrOrStderr(), "svcmgr: plugin %s: %v\n", b, errs[b])
			}
			if len(errs) > 0 {
				return &cli.SaidError{Err: errors.New("some plugins failed")}
			}
			return nil
		},
	}
}

// actionResult is what an action prints with --format json: the lines
// the text output shows, as steps, and the error when it failed.
type actionResult struct {
	Service string   `json:"service"`
	Action  string   `json:"action"`
	Result  string   `json:"result"` // ok or error
	Error   string   `json:"error,omitempty"`
	Steps   []string `json:"steps"`
}

// writeResult writes an action's JSON result; a failed action exits 1
// with its error in the JSON, not as text on stderr.
func writeResult(w io.Writer, svc, verb string, steps []string, err error) error {
	r := actionResult{Service: svc, Action: verb, Result: "ok", Steps: steps}
	if r.Steps == nil {
		r.Steps = []string{}
	}
	if err != nil {
		r.Result, r.Error = "error", err.Error()
	}
	if werr := view.WriteJSON(w, r); werr != nil {
		return werr
	}
	if err != nil {
		return &cli.SaidError{Err: err}
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
