package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func tree() *cobra.Command {
	root := &cobra.Command{Use: "svcmgr", SilenceErrors: true, SilenceUsage: true}
	print := &cobra.Command{Use: "print"}
	print.AddCommand(&cobra.Command{Use: "status", RunE: func(*cobra.Command, []string) error { return nil }})
	config := &cobra.Command{Use: "config"}
	config.AddCommand(&cobra.Command{Use: "commit", RunE: func(*cobra.Command, []string) error { return nil }})
	get := &cobra.Command{Use: "get KEY", Args: ExactArgs(1, "the keyword to print (e.g. orchestrate or fs#1.mnt_opt)"),
		RunE: func(*cobra.Command, []string) error { return nil }}
	root.AddCommand(print, config, get)
	Setup(root)
	return root
}

func TestSetup_UnknownNestedCommandIsAnErrorWithASuggestion(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // "" for success
	}{
		{"typo under print", []string{"print", "stauts"}, `unknown command "stauts" for "svcmgr print"; did you mean status?`},
		{"typo under config", []string{"config", "comit"}, `unknown command "comit" for "svcmgr config"; did you mean commit?`},
		{"typo at the root", []string{"prnt"}, `unknown command "prnt" for "svcmgr"; did you mean print?`},
		{"nothing like it", []string{"print", "zzzzzz"}, `(commands: status)`},
		{"get without a key", []string{"get"}, "give the keyword to print"},
		{"a good one", []string{"print", "status"}, ""},
		{"a group alone prints its help", []string{"print"}, ""},
		{"version", []string{"--version"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tc.args)
			err := root.Execute()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
