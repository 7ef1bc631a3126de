// Command vigil-plugin-app serves the app resource group (forking and
// simple apps, OCF resource agents) to vigild.
package main

import (
	"github.com/vigil-ha/vigil/plugins/app"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func main() {
	sdk.Serve(app.New(app.Config{}))
}
