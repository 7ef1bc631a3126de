// Command vigil-lab builds and drives a lab of N cluster nodes on this
// host: per node a set of namespaces with its own hostname, address,
// /etc/vigil and vigild, shared loop-device disks, and a simulated BMC
// (ipmi_sim) that powers the node off by killing its pid namespace. Run
// as root; `vigil-lab up`, then status, exec, poweroff/poweron, cut/heal,
// bmc --fail (a BMC that ignores power changes), and `vigil-lab down`.
// The lab itself is e2e/lab: this command is its flags and output.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// LVM complains about every inherited descriptor otherwise.
	os.Setenv("LVM_SUPPRESS_FD_WARNINGS", "1")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd()
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "vigil-lab: "+err.Error())
	os.Exit(1)
}
