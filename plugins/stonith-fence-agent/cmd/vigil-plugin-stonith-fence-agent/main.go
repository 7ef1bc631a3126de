// Command vigil-plugin-stonith-fence-agent serves the stonith.fence_agent
// fencing driver to vigild.
package main

import (
	"github.com/vigil-ha/vigil/plugins/sdk"
	fenceagent "github.com/vigil-ha/vigil/plugins/stonith-fence-agent"
)

func main() {
	sdk.ServeStonith(fenceagent.New(fenceagent.Config{}))
}
