// Command svcmgr starts, stops and shows the services of this node. Run
// through a link named after a service (as the seed's
// `registry.opensvc.com print status`), it acts as `svcmgr -s NAME`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/cmd/internal/view"
)

func main() {
	args := os.Args[1:]
	if name := filepath.Base(os.Args[0]); name != "svcmgr" && !isGoTestBinary(name) {
		args = append([]string{"--service", name}, args...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return
	}
	var exit *cli.SaidError
	switch {
	case errors.As(err, &exit): // the output said why already
	case jsonOutput(cmd):
		// --format json: the error is JSON on stdout too, for scripts.
		view.WriteJSON(os.Stdout, map[string]string{"error": err.Error()})
	default:
		fmt.Fprintln(os.Stderr, "svcmgr: "+err.Error())
	}
	os.Exit(1)
}

// jsonOutput reports whether the command line asked for --format json.
func jsonOutput(root *cobra.Command) bool {
	f := root.PersistentFlags().Lookup("format")
	return f != nil && f.Value.String() == "json"
}

func isGoTestBinary(name string) bool { return filepath.Ext(name) == ".test" }
