// Command vigil-plugin-lvm serves the disk.vg resource driver to vigild.
package main

import (
	"github.com/vigil-ha/vigil/plugins/lvm"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func main() {
	sdk.Serve(lvm.New(lvm.Config{}))
}
