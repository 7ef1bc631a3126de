package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/core/config"
)

// userCommands run as any user: they read files and plugins' declarations
// only. Every other command acts on the node (mounts, addresses, docker)
// or asks vigild, whose socket is root's.
var userCommands = map[string]bool{"validate": true, "plugins": true, "doc": true, "help": true, "completion": true, "__complete": true}

// checkRoot refuses a command that needs root, run by another user,
// before it computes a view of its own that would mislead (a status
// evaluated without the rights to see the mounts or the docker socket).
func checkRoot(cmd *cobra.Command) error {
	if os.Geteuid() == 0 || os.Getenv("VIGIL_ALLOW_NONROOT") != "" {
		return nil
	}
	top := cmd
	for top.HasParent() && top.Parent().HasParent() {
		top = top.Parent()
	}
	if userCommands[top.Name()] || !top.HasParent() {
		return nil
	}
	return fmt.Errorf("%s needs root (it reads and changes mounts, addresses and docker, and vigild's socket is root's): run it as root, e.g. sudo %s", cmd.CommandPath(), cmd.CommandPath())
}

// localNode is this node's name as vigild takes it: cluster.conf's node
// keyword, else the hostname.
func (o *options) localNode() string {
	path := filepath.Join(o.configDir, "cluster.conf")
	if data, err := os.ReadFile(path); err == nil {
		if f, err := config.ParseINI(path, data); err == nil {
			if sec := f.Section("cluster"); sec != nil {
				if e := sec.Entry("node"); e != nil && e.Value != "" {
					return e.Value
				}
			}
		}
	}
	h, _ := os.Hostname()
	return h
}
