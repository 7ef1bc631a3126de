// Command nodemgr manages this node and the cluster it belongs to, beside
// svcmgr (services) and svcmon (status): it writes and checks cluster.conf
// and the secret, validates the cluster config and acts on the node as a
// whole. Its subcommands live in files of their own, each registering
// itself in root.go's subcommands from its init().
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd()
	cmd.SetArgs(os.Args[1:])
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return
	}
	var exit *cli.SaidError
	if !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "nodemgr: "+err.Error())
	}
	os.Exit(1)
}
