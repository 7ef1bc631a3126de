// Command svcmon shows the services of the cluster as the local vigild
// sees them: the seed's svcmon table for this node, every node side by
// side with --cluster, redrawn as things change with --watch.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd()
	cmd.SetArgs(os.Args[1:])
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "svcmon: "+err.Error())
		os.Exit(1)
	}
}
