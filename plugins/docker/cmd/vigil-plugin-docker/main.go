// Command vigil-plugin-docker serves the container.docker resource driver
// to vigild. Run by a service's private dockerd with a userland proxy's
// arguments, it is that proxy (docker.RunProxy).
package main

import (
	"os"

	"github.com/vigil-ha/vigil/plugins/docker"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func main() {
	if docker.IsProxyCommand(os.Args[1:]) {
		os.Exit(docker.RunProxy(os.Args[1:]))
	}
	cfg := docker.Config{}
	if exe, err := os.Executable(); err == nil {
		cfg.ProxyPath = exe
	}
	sdk.Serve(docker.New(cfg))
}
