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
	var exit *exitError
	if !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "svcmgr: "+err.Error())
	}
	os.Exit(1)
}

// exitError ends svcmgr with status 1 after its output already said why.
type exitError struct{ err error }

func (e *exitError) Error() string { return e.err.Error() }

func isGoTestBinary(name string) bool { return filepath.Ext(name) == ".test" }
