// Package gendoc gives every Vigil command a hidden `gen-docs` subcommand
// that writes its man pages from the cobra command tree (cobra/doc), so
// that `make package` ships pages that say what the binary it ships does.
// It documents; it runs nothing of the command it is attached to.
package gendoc

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/vigil-ha/vigil/core/version"
)

// Command is `ROOT gen-docs --man DIR`: one page per command, in section
// 8 (every Vigil command is run by root).
func Command(root *cobra.Command) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:    "gen-docs --man DIR",
		Short:  "Write the man pages of " + root.Name() + " (for packaging)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", dir, err)
			}
			root.DisableAutoGenTag = true // reproducible pages: no build date
			h := &doc.GenManHeader{
				Title:   strings.ToUpper(root.Name()),
				Section: "8",
				Source:  "Vigil " + version.String(),
				Manual:  "Vigil",
			}
			if err := doc.GenManTree(root, h, dir); err != nil {
				return fmt.Errorf("write the man pages of %s in %s: %w", root.Name(), dir, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "man", "", "directory to write the pages in")
	_ = c.MarkFlagRequired("man")
	return c
}
