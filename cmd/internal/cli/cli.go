// Package cli owns what every Vigil command line shares in its cobra tree:
// --version, unknown subcommands read as errors with a suggestion at every
// level (cobra does so only at the root), and argument errors that say
// what to type.
//
// It must not format statuses (that is cmd/internal/view) or talk to vigild.
package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/gendoc"
	"github.com/vigil-ha/vigil/core/version"
)

// Setup gives root --version and makes every command of its tree that only
// groups subcommands (svcmgr print, svcmgr config) refuse an unknown one:
// `svcmgr -s tour print stauts` fails, suggesting status, instead of
// printing the help and exiting 0. Call it once the tree is complete.
func Setup(root *cobra.Command) {
	root.Version = version.String()
	// The hidden gen-docs: `make package` writes the man pages from the
	// tree it ships.
	root.AddCommand(gendoc.Command(root))
	walk(root)
}

func walk(c *cobra.Command) {
	for _, sub := range c.Commands() {
		walk(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, applied only on its own root check
	}
	c.Args = Unknown
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// Unknown is the Args check of a command that only groups subcommands: any
// argument is an unknown subcommand, reported with the closest names.
func Unknown(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	} else {
		var names []string
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		msg += " (commands: " + strings.Join(names, ", ") + ")"
	}
	return fmt.Errorf("%s", msg)
}

// ExactArgs is cobra.ExactArgs saying what the arguments are: "give KEY
// (e.g. orchestrate)" rather than "accepts 1 arg(s)".
func ExactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s: give %s (got %d argument(s)); see %s --help", cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// MinimumArgs is cobra.MinimumNArgs saying what the arguments are.
func MinimumArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%s: give %s; see %s --help", cmd.CommandPath(), what, cmd.CommandPath())
		}
		return nil
	}
}

// SaidError ends a command with status 1 after its output already said why
// (a validation that printed its errors, a check that printed its
// findings): main prints nothing more for it.
type SaidError struct{ Err error }

func (e *SaidError) Error() string { return e.Err.Error() }
