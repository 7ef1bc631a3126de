// Command vigil-plugin-ip serves the ip resource driver to vigild.
package main

import (
	"github.com/vigil-ha/vigil/plugins/ip"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func main() {
	sdk.Serve(ip.New(ip.Config{}))
}
