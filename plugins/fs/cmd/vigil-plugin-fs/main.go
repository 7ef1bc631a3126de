// Command vigil-plugin-fs serves the fs resource driver to vigild.
package main

import (
	"github.com/vigil-ha/vigil/plugins/fs"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func main() {
	sdk.Serve(fs.New(fs.Config{}))
}
