// Package version owns the build's version string: set at link time from
// `git describe` (the Makefile's and `make package`'s -ldflags), read by
// every command's --version and by `svcmgr plugins`. It must not import
// anything of Vigil's: every binary links it.
package version

import (
	"runtime/debug"
	"strings"
)

// Version is `git describe --tags --always --dirty` of the tree the binary
// was built from, set with
// -ldflags "-X github.com/vigil-ha/vigil/core/version.Version=…".
// Empty in a plain `go build`; String then falls back to the VCS stamp.
var Version string

// String is the version to show: Version, or "devel" with the commit Go
// stamped into the binary when it was built without the Makefile.
func String() string {
	if Version != "" {
		return strings.TrimPrefix(Version, "v")
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel+" + rev
}
