package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/core/config"
	hbdisk "github.com/vigil-ha/vigil/plugins/hb-disk"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func init() { subcommands = append(subcommands, newHbDiskCmd) }

func newHbDiskCmd() *cobra.Command {
	c := &cobra.Command{Use: "hb-disk", Short: "Disk heartbeat devices"}
	var o hbdisk.InitOptions
	var offset string
	initCmd := &cobra.Command{
		Use:   "init --dev DEV",
		Short: "Label a shared device for this cluster's disk heartbeat, once, from one node (as sbd create)",
		Long: `Write the disk heartbeat's label on DEV: the cluster's name, which the hb.disk
plugin checks before it writes a slot. A device without a label, or with another
cluster's, is refused, so a typo in dev never overwrites someone's data.

The cluster's name and, when a [hb#n] section names DEV, its offset come from
cluster.conf. A device already labelled for this cluster is left as is; one
labelled for another cluster, or holding data, is refused unless --force.`,
		Example: `  nodemgr hb-disk init --dev /dev/disk/by-id/wwn-0x600a0b80001`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := fromClusterConf(configDir(cmd), &o, &offset); err != nil {
				return err
			}
			if offset != "" {
				n, err := sdk.ParseSize(offset)
				if err != nil {
					return fmt.Errorf("--offset %q: %w", offset, err)
				}
				o.Offset = n
			}
			written, err := hbdisk.InitDevice(o)
			if err != nil {
				return err
			}
			if written {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: labelled for cluster %s (offset %d)\n", o.Dev, o.Cluster, o.Offset)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: already labelled for cluster %s, left as is\n", o.Dev, o.Cluster)
			}
			return nil
		},
	}
	f := initCmd.Flags()
	f.StringVar(&o.Dev, "dev", "", "the shared device, as [hb#n] dev names it")
	f.StringVar(&o.Cluster, "cluster", "", "the cluster's name (default: cluster.conf's)")
	f.StringVar(&offset, "offset", "", "where the label goes (default: the [hb#n] section's offset, else 0)")
	f.BoolVar(&o.Force, "force", false, "overwrite a device that holds data or another cluster's label")
	initCmd.MarkFlagRequired("dev")
	c.AddCommand(initCmd)
	return c
}

// fromClusterConf fills what the flags left unset from cluster.conf: the
// cluster's name, and the offset of the disk heartbeat on o.Dev.
func fromClusterConf(dir string, o *hbdisk.InitOptions, offset *string) error {
	path := filepath.Join(dir, "cluster.conf")
	data, err := os.ReadFile(path)
	if err != nil {
		if o.Cluster == "" {
			return fmt.Errorf("read %s for the cluster's name: %w (or give --cluster)", path, err)
		}
		return nil
	}
	f, err := config.ParseINI(path, data)
	if err != nil {
		return err
	}
	if sec := f.Section("cluster"); sec != nil && o.Cluster == "" {
		if e := sec.Entry("name"); e != nil {
			o.Cluster = e.Value
		}
	}
	if o.Cluster == "" {
		return fmt.Errorf("%s has no [cluster] name: give --cluster", path)
	}
	for _, sec := range f.Sections {
		if !strings.HasPrefix(sec.Name, "hb#") {
			continue
		}
		dev, off := sec.Entry("dev"), sec.Entry("offset")
		if dev != nil && dev.Value == o.Dev && off != nil && *offset == "" {
			*offset = off.Value
		}
	}
	return nil
}
