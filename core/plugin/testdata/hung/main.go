// Command hung is a plugin binary that never completes go-plugin's
// handshake, as a plugin stuck on a dead NFS mount or a full disk would:
// the host must not let it stall lookups of the other plugins.
package main

import "time"

func main() {
	// The host kills it (parent-death signal, or its start timeout).
	time.Sleep(time.Hour)
}
