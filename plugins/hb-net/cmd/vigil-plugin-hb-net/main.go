// Command vigil-plugin-hb-net serves the network heartbeat to vigild.
package main

import (
	hbnet "github.com/vigil-ha/vigil/plugins/hb-net"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func main() {
	sdk.ServeHeartbeat(hbnet.New(hbnet.Config{}))
}
