package lab

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// SetCut brings a node's links to the state c, and records it: a node
// powered on later boots with the same links cut, as a pulled cable
// stays pulled.
//
//   - net: the node's port on the lab switch (the switch end of its veth)
//     goes down; the node keeps its addresses and sees no carrier. Its BMC
//     is on the switch, not the node, so peers can still fence it.
//   - disk: the node reaches the heartbeat disk through a loop device of
//     its own (bound over the shared device's path in the node); the cut
//     moves that loop device's window past the end of the file, so the
//     node sees an empty disk: reads return nothing, writes fail, on
//     descriptors opened before the cut too. The peers' loops are intact.
//     The state lives in the loop device, so it outlasts a power cycle.
func (l *Lab) SetCut(ctx context.Context, node string, c Cut) error {
	if _, err := l.NodeIndex(node); err != nil {
		return err
	}
	was := l.Cut[node]
	if c.Net != was.Net {
		state := "up"
		if c.Net {
			state = "down"
		}
		// A node off, or going off, has no switch port: its next boot
		// makes it in the recorded state.
		if err := run(ctx, "ip", "-n", l.SwitchNS(), "link", "set", node, state); err != nil &&
			run(ctx, "ip", "-n", l.SwitchNS(), "link", "show", node) == nil {
			return fmt.Errorf("%s: %w", node, err)
		}
	}
	if c.Disk != was.Disk {
		if err := setLoopWindow(l.LoopDev("hb-"+node), l.loop("hb").File, c.Disk); err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
	}
	l.Cut[node] = c
	return l.save()
}

// setLoopWindow shrinks a loop device to nothing (cut) or gives it its
// whole file back.
func setLoopWindow(dev, file string, cut bool) error {
	if dev == "" {
		return fmt.Errorf("the lab has no per-node heartbeat loop device")
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	info, err := unix.IoctlLoopGetStatus64(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	info.Offset, info.Sizelimit = 0, 0
	if cut {
		fi, err := os.Stat(file)
		if err != nil {
			return fmt.Errorf("%s: its backing file: %w", dev, err)
		}
		info.Offset = uint64(fi.Size())
	}
	// EAGAIN while the device still has cached pages: retry.
	for range 50 {
		if err = unix.IoctlLoopSetStatus64(fd, info); err != unix.EAGAIN {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("%s: set its window: %w", dev, err)
	}
	return nil
}
