package main

import (
	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/core/api"
)

func init() { subcommands = append(subcommands, newFenceCmd) }

func newFenceCmd() *cobra.Command {
	c := &cobra.Command{Use: "fence", Short: "Fencing operations: test a node's methods, confirm a node off by hand"}
	c.AddCommand(&cobra.Command{
		Use:   "test NODE",
		Short: "Ask each of NODE's fencing methods its power status, in level order (nothing is powered)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return nodeAction(cmd, "fence-test", api.NodeRequest{Node: args[0]})
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "confirm NODE",
		Short: "Tell the cluster that you checked NODE is off: a takeover blocked by a failing fence goes on, recorded as yours (refused while NODE is heard)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return nodeAction(cmd, "fence-confirm", api.NodeRequest{Node: args[0]})
		},
	})
	return c
}
