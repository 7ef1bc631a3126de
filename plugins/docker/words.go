package docker

import "github.com/vigil-ha/vigil/plugins/sdk/value"

// splitWords is the SDK's shell-like word splitter (no expansion), the
// one the app and docker plugins share.
var splitWords = value.SplitWords
