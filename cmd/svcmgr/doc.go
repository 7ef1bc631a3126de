package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/view"
	"github.com/vigil-ha/vigil/core/config"
)

// newDocCmd prints the keyword reference, generated from the schema the
// plugins declare at handshake (vendors' included), as `om svc doc` and
// `pcs resource describe` do.
func newDocCmd(o *options) *cobra.Command {
	c := &cobra.Command{
		Use:   "doc [TYPE|service [KEYWORD]]",
		Short: "Print the keywords a service file takes: every type, a type's keywords, or one keyword in full",
		Example: `  svcmgr doc                         # the types, with the plugin serving each
  svcmgr doc container.docker        # its keywords (docker alone works too)
  svcmgr doc container.docker run_image
  svcmgr doc service                 # the [DEFAULT] section's keywords`,
		Args: cobra.MaximumNArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			e := o.env(nil)
			defer e.close()
			s, err := e.engine.Schema(cmd.Context())
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			if len(args) == 0 {
				return append(typeNames(s), "service"), cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			if kws, _, err := docKeywords(s, args[0]); err == nil {
				for _, k := range kws {
					names = append(names, k.Name)
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			e := o.env(nil)
			defer e.close()
			s, err := e.engine.Schema(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				return writeTypes(out, s, o.format)
			}
			kws, title, err := docKeywords(s, args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 {
				i := slices.IndexFunc(kws, func(k config.Keyword) bool { return k.Name == args[1] || slices.Contains(k.Aliases, args[1]) })
				if i < 0 {
					return fmt.Errorf("%s has no keyword %q: svcmgr doc %s lists them", title, args[1], args[0])
				}
				kws = kws[i : i+1]
			}
			if o.format == "json" {
				return view.WriteJSON(out, kws)
			}
			return writeKeywords(out, title, kws, len(args) == 2)
		},
	}
	return c
}

func typeNames(s *config.Schema) []string {
	var names []string
	for n := range s.Types {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// docKeywords finds what "svcmgr doc NAME" describes: service for
// [DEFAULT], a type by its full name or by its driver alone when only one
// type has it (docker for container.docker). A type's keywords are its
// own, then those every resource section takes.
func docKeywords(s *config.Schema, name string) ([]config.Keyword, string, error) {
	if name == "service" || name == config.DefaultSection {
		return s.Service, "service ([DEFAULT])", nil
	}
	t := s.Types[name]
	if t == nil {
		var match []*config.TypeSchema
		for _, n := range typeNames(s) {
			if _, driver, ok := strings.Cut(n, "."); ok && driver == name {
				match = append(match, s.Types[n])
			}
		}
		if len(match) == 1 {
			t = match[0]
		}
	}
	if t == nil {
		return nil, "", fmt.Errorf("no type %q: svcmgr doc lists them (%s, service)", name, strings.Join(typeNames(s), ", "))
	}
	kws := append(slices.Clone(t.Keywords), s.Common...)
	title := fmt.Sprintf("%s (plugin %s; sections [%s#<n>]", t.Type, t.Plugin, t.Group)
	for _, a := range t.SectionAliases {
		title += fmt.Sprintf(", [%s#<n>]", a)
	}
	if _, driver, ok := strings.Cut(t.Type, "."); ok {
		title += ", with type = " + driver
	}
	return kws, title + ")", nil
}

func writeTypes(w io.Writer, s *config.Schema, format string) error {
	type row struct {
		Type     string   `json:"type"`
		Plugin   string   `json:"plugin"`
		Sections []string `json:"sections"`
		Keywords int      `json:"keywords"`
	}
	rows := []row{{Type: "service", Plugin: "core", Sections: []string{"[DEFAULT]"}, Keywords: len(s.Service)}}
	for _, n := range typeNames(s) {
		t := s.Types[n]
		secs := []string{"[" + t.Group + "#<n>]"}
		for _, a := range t.SectionAliases {
			secs = append(secs, "["+a+"#<n>]")
		}
		rows = append(rows, row{n, t.Plugin, secs, len(t.Keywords)})
	}
	if format == "json" {
		return view.WriteJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tPLUGIN\tSECTIONS\tKEYWORDS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", r.Type, r.Plugin, strings.Join(r.Sections, " "), r.Keywords)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nsvcmgr doc TYPE lists a type's keywords (every resource section also takes %d common ones).\n", len(s.Common))
	return err
}

func writeKeywords(w io.Writer, title string, kws []config.Keyword, full bool) error {
	fmt.Fprintln(w, title)
	fmt.Fprintln(w)
	if full {
		k := kws[0]
		fmt.Fprintf(w, "keyword:    %s\n", k.Name)
		fmt.Fprintf(w, "type:       %s\n", keywordType(k))
		if k.Required {
			fmt.Fprintln(w, "required:   yes")
		}
		if k.Default != "" {
			fmt.Fprintf(w, "default:    %s\n", k.Default)
		}
		if len(k.Aliases) > 0 {
			fmt.Fprintf(w, "aliases:    %s\n", strings.Join(k.Aliases, ", "))
		}
		if len(k.Candidates) > 0 {
			fmt.Fprintf(w, "candidates: %s\n", strings.Join(k.Candidates, ", "))
		}
		_, err := fmt.Fprintf(w, "\n%s\n", k.Help)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEYWORD\tTYPE\tDEFAULT\tHELP")
	for _, k := range kws {
		name := k.Name
		if k.Required {
			name += " (required)"
		}
		help := k.Help
		if len(k.Candidates) > 0 {
			help += " [" + strings.Join(k.Candidates, "|") + "]"
		}
		if len(k.Aliases) > 0 {
			help += " (alias " + strings.Join(k.Aliases, ", ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, keywordType(k), k.Default, help)
	}
	return tw.Flush()
}

func keywordType(k config.Keyword) string {
	if k.Type == "" {
		return string(config.String)
	}
	return string(k.Type)
}
