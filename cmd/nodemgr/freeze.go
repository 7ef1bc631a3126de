package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/core/api"
)

func init() {
	subcommands = append(subcommands, newFreezeCmd, newThawCmd, newDrainCmd)
}

// nodeAction asks the local vigild for a node operation and prints its
// lines.
func nodeAction(cmd *cobra.Command, verb string, req api.NodeRequest) error {
	c, err := api.Dial(filepath.Join(runDir(cmd), api.SocketName))
	if err != nil {
		return fmt.Errorf("%w: nodemgr %s needs the node's vigild running", err, verb)
	}
	return c.NodeAction(cmd.Context(), verb, req, func(line string) { fmt.Fprintln(cmd.OutOrStdout(), line) })
}

func newFreezeCmd() *cobra.Command {
	var whole bool
	c := &cobra.Command{
		Use:   "freeze",
		Short: "Leave this node's services as they are (none started, stopped, restarted or failed over here) until thawed; kept across restarts",
		Example: `  nodemgr freeze
  nodemgr freeze --cluster     # every node of the cluster`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return nodeAction(cmd, "freeze", api.NodeRequest{Cluster: whole})
		},
	}
	c.Flags().BoolVar(&whole, "cluster", false, "freeze the whole cluster (propagated to every node)")
	return c
}

func newThawCmd() *cobra.Command {
	var whole bool
	c := &cobra.Command{
		Use:   "thaw",
		Short: "Let the orchestrator act on this node's services again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return nodeAction(cmd, "thaw", api.NodeRequest{Cluster: whole})
		},
	}
	c.Flags().BoolVar(&whole, "cluster", false, "end the cluster-wide freeze")
	return c
}

func newDrainCmd() *cobra.Command {
	var wait bool
	c := &cobra.Command{
		Use:   "drain",
		Short: "Move every service running here to its next node, then freeze this node (refused when a service has nowhere to go)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return nodeAction(cmd, "drain", api.NodeRequest{Wait: wait})
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "return once nothing runs here and the node is frozen")
	return c
}
