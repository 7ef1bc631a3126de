package main

import (
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/config"
)

// Shell completion of what names the -s service's file: its resources
// (--rid), its nodes (--to) and its keywords (get, set). It reads the file
// only: no plugin is started while the operator presses Tab.

func (o *options) serviceFile() *config.File {
	path, err := action.FindService(o.configDir, o.service)
	if err != nil {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	f, err := config.ParseINI(path, data)
	if err != nil {
		return nil
	}
	return f
}

func (o *options) completeRIDs(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	var rids []string
	if f := o.serviceFile(); f != nil {
		for _, s := range f.Sections {
			if strings.Contains(s.Name, "#") && !strings.HasPrefix(s.Name, "subset#") {
				rids = append(rids, s.Name)
			}
		}
	}
	return rids, cobra.ShellCompDirectiveNoFileComp
}

func (o *options) completeNodes(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	if f := o.serviceFile(); f != nil {
		if d := f.Section(config.DefaultSection); d != nil {
			if e := d.Entry("nodes"); e != nil {
				return strings.Fields(e.Value), cobra.ShellCompDirectiveNoFileComp
			}
		}
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// keys lists the file's keywords as get and set name them (orchestrate,
// fs#1.mnt_opt), plus the service keywords core knows when unset.
func (o *options) keys() []string {
	f := o.serviceFile()
	if f == nil {
		return nil
	}
	var keys []string
	for _, s := range f.Sections {
		for _, e := range s.Entries {
			if s.Name == config.DefaultSection {
				keys = append(keys, e.Key)
			} else {
				keys = append(keys, s.Name+"."+e.Key)
			}
		}
	}
	for _, k := range config.CoreSchema().Service {
		if !slices.Contains(keys, k.Name) {
			keys = append(keys, k.Name)
		}
	}
	slices.Sort(keys)
	return keys
}

func (o *options) completeGet(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return o.keys(), cobra.ShellCompDirectiveNoFileComp
}

func (o *options) completeSet(_ *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	var out []string
	for _, k := range o.keys() {
		out = append(out, k+"=")
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}
