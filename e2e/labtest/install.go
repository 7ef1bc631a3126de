package labtest

import (
	"os"
	"path/filepath"
	"time"
)

// InstallService writes a service file into node's config directory
// (vigild loads it and config sync carries it to the peers) and waits
// until every node has it.
func (l *Lab) InstallService(node, name, text string) {
	l.T.Helper()
	if err := os.WriteFile(filepath.Join(l.NodeDir(node), "etc", name+".conf"), []byte(text), 0o600); err != nil {
		l.T.Fatalf("install %s on %s: %v", name, node, err)
	}
	l.WaitFor(name+".conf on every node", 60*time.Second, func() (bool, string) {
		for _, n := range l.Nodes {
			if _, err := os.Stat(filepath.Join(l.NodeDir(n), "etc", name+".conf")); err != nil {
				return false, "not on " + n + " yet"
			}
		}
		return true, ""
	})
}

// LoopDev is the host's loop device of one of the lab's shared disks
// (e2e/lab's roles: registry-data, busybox-data, ...).
func (l *Lab) LoopDev(role string) string { return l.lab.LoopDev(role) }

// Subnet is the lab's network, "10.x.y" without the host part.
func (l *Lab) Subnet() string { return l.lab.Subnet }
