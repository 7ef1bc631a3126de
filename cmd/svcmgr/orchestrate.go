package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/core/api"
)

// newOrchestrateCmd makes the cluster-wide operator actions: they set the
// service's expectation in vigild, and every node's orchestrator acts on it.
func newOrchestrateCmd(o *options, verb, short string) *cobra.Command {
	var to string
	var wait bool
	c := &cobra.Command{
		Use:   verb,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.service == "" {
				return errors.New("no service given: use -s NAME")
			}
			cl := o.daemon()
			if cl == nil {
				return fmt.Errorf("%s needs vigild (no daemon answers under %s): it acts cluster-wide", verb, o.runDir)
			}
			out := cmd.OutOrStdout()
			var steps []string
			err := cl.Action(cmd.Context(), o.service, api.ActionRequest{Action: verb, To: to, Wait: wait}, func(l string) {
				steps = append(steps, l)
				if o.format == "text" {
					fmt.Fprintln(out, l)
				}
			})
			if o.format == "json" {
				return writeResult(out, o.service, verb, steps, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: %s done\n", o.service, verb)
			return nil
		},
	}
	if verb == "switch" {
		c.Flags().StringVar(&to, "to", "", "the node to move the service to")
		c.MarkFlagRequired("to")
		c.RegisterFlagCompletionFunc("to", o.completeNodes)
	}
	if verb == "switch" || verb == "takeover" || verb == "giveback" {
		c.Flags().BoolVar(&wait, "wait-up", false, "wait until the service is up on the target node")
		c.Flags().BoolVar(&wait, "wait", false, "")
		c.Flags().MarkDeprecated("wait", "use --wait-up (it waits until the service is up on the target node)")
	}
	return c
}
