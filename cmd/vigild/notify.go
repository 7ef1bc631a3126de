package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// sdNotify sends state ("READY=1", "STOPPING=1") to the service manager
// as sd_notify(3) does: one datagram to the unix socket in $NOTIFY_SOCKET
// ('@' for the abstract namespace). Without the variable (not run by
// systemd, or Type=simple) it does nothing; an error is returned for the
// log, never fatal.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify the service manager on %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify the service manager: %w", err)
	}
	return nil
}
