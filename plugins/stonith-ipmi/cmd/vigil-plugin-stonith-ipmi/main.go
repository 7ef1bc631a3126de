// Command vigil-plugin-stonith-ipmi serves the stonith.ipmi fencing driver
// to vigild.
package main

import (
	"github.com/vigil-ha/vigil/plugins/sdk"
	stonithipmi "github.com/vigil-ha/vigil/plugins/stonith-ipmi"
)

func main() {
	sdk.ServeStonith(stonithipmi.New(stonithipmi.Config{}))
}
