package ip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// arpInterface returns the interface of link when it speaks ARP (an
// Ethernet-like link: a 6-byte hardware address and no NOARP flag).
func arpInterface(link netlink.Link) (*net.Interface, bool) {
	a := link.Attrs()
	if len(a.HardwareAddr) != 6 || a.RawFlags&unix.IFF_NOARP != 0 {
		return nil, false
	}
	return &net.Interface{Index: a.Index, MTU: a.MTU, Name: a.Name, HardwareAddr: a.HardwareAddr, Flags: a.Flags}, true
}

// listenARP opens a raw ARP socket on ifi: the probe's, then the
// announcements'.
//
// mdlayher/arp's Client is not used for the socket because it insists on
// the interface already having an IPv4 address, which a dedicated service
// interface may not have.
func listenARP(ifi *net.Interface) (*packet.Conn, error) {
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return nil, fmt.Errorf("open raw socket on %s: %w", ifi.Name, err)
	}
	return conn, nil
}

// closeLater closes conn off the start path. Closing a packet socket waits
// for an RCU grace period in the kernel (packet_release calls
// synchronize_net): 5 to 20 ms on a busy host, each of them outage in a
// failover if Start waited for it.
func (d *Driver) closeLater(conn *packet.Conn) {
	d.announcers.Add(1)
	go func() {
		defer d.announcers.Done()
		conn.Close()
	}()
}

// probe sends RFC 5227 ARP probes (sender address 0.0.0.0, so that no
// neighbour cache is polluted) for addr on conn and returns the hardware
// address of the first host that claims addr, or nil when none does within
// the probe's length. A host claims addr when it answers, announces
// it, or probes for it at the same time.
//
// The probeCount probes go out over the first half of length, the second
// half waits for the last one's answer: every probe's answer has at least
// half the length to come back, and a burst of loss shorter than the
// spacing spares one of them.
func (d *Driver) probe(ctx context.Context, conn *packet.Conn, ifi *net.Interface, addr netip.Addr, length time.Duration) (net.HardwareAddr, error) {
	frame, err := arpFrame(ifi.HardwareAddr, netip.IPv4Unspecified(), addr)
	if err != nil {
		return nil, fmt.Errorf("arp probe on %s: %w", ifi.Name, err)
	}

	interval := length / (2 * (probeCount - 1))
	start := time.Now()
	end := start.Add(length)
	// A probe cut short proves nothing: rather fail than plumb an
	// address nobody had time to defend.
	truncated := false
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
		end, truncated = dl, true
	}
	sent := 0
	next := start
	buf := make([]byte, 1500)
	for {
		now := time.Now()
		if sent < probeCount && !now.Before(next) {
			if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
				return nil, fmt.Errorf("arp probe on %s: send: %w", ifi.Name, err)
			}
			sent++
			next = next.Add(interval)
		}
		if !now.Before(end) {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("arp probe on %s: %w", ifi.Name, err)
			}
			if truncated {
				return nil, fmt.Errorf("arp probe on %s: %w before the probe ended (it takes %v); give the start more time",
					ifi.Name, context.DeadlineExceeded, length)
			}
			return nil, nil
		}
		wake := end
		if sent < probeCount && next.Before(wake) {
			wake = next
		}
		if err := conn.SetReadDeadline(wake); err != nil {
			return nil, fmt.Errorf("arp probe on %s: %w", ifi.Name, err)
		}
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return nil, fmt.Errorf("arp probe on %s: receive: %w", ifi.Name, err)
		}
		if hw := claimant(buf[:n], ifi.HardwareAddr, addr); hw != nil {
			return hw, nil
		}
	}
}

// claimant returns the sender of an ARP frame that claims addr, ignoring
// our own frames.
func claimant(b []byte, self net.HardwareAddr, addr netip.Addr) net.HardwareAddr {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil
	}
	if bytes.Equal(p.SenderHardwareAddr, self) {
		return nil
	}
	switch {
	case p.SenderIP == addr:
		// A reply to our probe, or the owner's own announcement.
		return p.SenderHardwareAddr
	case p.Operation == arp.OperationRequest && p.SenderIP == netip.IPv4Unspecified() && p.TargetIP == addr:
		// Someone else probing for it right now: back off too.
		return p.SenderHardwareAddr
	}
	return nil
}

// arpFrame builds a broadcast ARP request from (hw, sender) for target.
func arpFrame(hw net.HardwareAddr, sender, target netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, hw, sender, zeroMAC, target)
	if err != nil {
		return nil, fmt.Errorf("build arp packet: %w", err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("build arp packet: %w", err)
	}
	f := ethernet.Frame{Destination: ethernet.Broadcast, Source: hw, EtherType: ethernet.EtherTypeARP, Payload: pb}
	return f.MarshalBinary()
}

// announce sends AnnounceCount gratuitous ARPs (requests with sender and
// target both addr, as RFC 5227 announcements) on conn, which it owns from
// then on: the first before returning, the others in the background so
// that Start is not held up, conn closed after the last.
func (d *Driver) announce(conn *packet.Conn, ifi *net.Interface, addr netip.Addr) error {
	frame, err := arpFrame(ifi.HardwareAddr, addr, addr)
	if err != nil {
		d.closeLater(conn)
		return err
	}
	dst := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	if _, err := conn.WriteTo(frame, dst); err != nil {
		d.closeLater(conn)
		return fmt.Errorf("send on %s: %w", ifi.Name, err)
	}
	// The socket was opened by the calling thread, so it stays in the
	// caller's network namespace whatever thread runs this goroutine.
	d.announcers.Add(1)
	go func() {
		defer d.announcers.Done()
		defer conn.Close()
		for i := 1; i < d.cfg.AnnounceCount; i++ {
			time.Sleep(d.cfg.AnnounceInterval)
			if _, err := conn.WriteTo(frame, dst); err != nil {
				d.log.Warn("gratuitous arp failed", "addr", addr, "dev", ifi.Name, "error", err)
				return
			}
		}
	}()
	return nil
}
