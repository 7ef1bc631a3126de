// Command vigil-plugin-hb-disk serves the disk heartbeat (hb.disk) to vigild.
package main

import (
	hbdisk "github.com/vigil-ha/vigil/plugins/hb-disk"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func main() {
	sdk.ServeHeartbeat(hbdisk.New(hbdisk.Config{}))
}
