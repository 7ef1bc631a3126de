// Command vigil-plugin-docker serves the container.docker resource driver
// to vigild.
package main

import (
	"github.com/vigil-ha/vigil/plugins/docker"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func main() {
	sdk.Serve(docker.New(docker.Config{}))
}
