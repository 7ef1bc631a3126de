package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/core/config"
)

// ConfSum is the checksum every node publishes of its cluster.conf, so
// that `nodemgr cluster check` finds a node whose file differs. It hashes
// what the file says, not how it is written: sections and keywords in
// order of name, values trimmed, comments and blank lines left out, and
// [cluster] node (the one keyword that names the node itself) skipped.
// Two files that load the same on their nodes have the same sum.
func ConfSum(f *config.File) string {
	secs := slices.Clone(f.Sections)
	slices.SortFunc(secs, func(a, b *config.Section) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	for _, sec := range secs {
		entries := slices.Clone(sec.Entries)
		slices.SortFunc(entries, func(a, b *config.Entry) int { return strings.Compare(a.Key, b.Key) })
		fmt.Fprintf(h, "[%s]\n", sec.Name)
		for _, e := range entries {
			if sec.Name == "cluster" && e.Key == "node" {
				continue
			}
			fmt.Fprintf(h, "%s=%q\n", e.Key, strings.TrimSpace(e.Value))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
