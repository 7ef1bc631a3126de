package lab

import (
	"context"
	"fmt"
)

// The lab's wiring: a switch is a bridge in a network namespace of its
// own (so the host's iptables, FORWARD DROP once dockerd has run, never
// see the traffic), and each node, or the client, is a network namespace
// plugged into it by a veth pair. e2e/clusterlab wires its bare vigild
// nodes the same way.

// AddSwitch makes the network namespace ns holding a bridge, br0, up,
// with the address mac when given (a bridge that picks its own takes its
// lowest port's, and changes it as ports come and go).
func AddSwitch(ctx context.Context, ns, mac string) error {
	bridge := []string{"-n", ns, "link", "add", "br0", "type", "bridge"}
	if mac != "" {
		bridge = []string{"-n", ns, "link", "add", "br0", "address", mac, "type", "bridge"}
	}
	for _, s := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		bridge,
		{"-n", ns, "link", "set", "br0", "up"},
	} {
		if err := run(ctx, "ip", s...); err != nil {
			return fmt.Errorf("switch %s: %w", ns, err)
		}
	}
	return nil
}

// Port is a network namespace plugged into a switch.
type Port struct {
	Switch string // the switch's namespace
	Name   string // the veth's end in the switch's namespace, on br0
	NS     string // the namespace plugged in (made by Plug); its end is eth0
	Addr   string // eth0's address, CIDR ("10.1.2.3/24")
	MAC    string // eth0's hardware address ("": the kernel's pick)
	// Down leaves the switch's end down: a cable that stays pulled.
	Down bool
}

// Plug makes p.NS and plugs it into the switch: the veth pair, eth0's
// address, both ends and the loopback up.
func Plug(ctx context.Context, p Port) error {
	veth := []string{"-n", p.Switch, "link", "add", p.Name, "type", "veth", "peer", "name", "eth0"}
	if p.MAC != "" {
		veth = append(veth, "address", p.MAC)
	}
	steps := [][]string{
		{"netns", "add", p.NS},
		append(veth, "netns", p.NS),
		{"-n", p.Switch, "link", "set", p.Name, "master", "br0"},
		{"-n", p.NS, "addr", "add", p.Addr, "dev", "eth0"},
		{"-n", p.NS, "link", "set", "eth0", "up"},
		{"-n", p.NS, "link", "set", "lo", "up"},
	}
	if !p.Down {
		steps = append(steps, []string{"-n", p.Switch, "link", "set", p.Name, "up"})
	}
	for _, s := range steps {
		if err := run(ctx, "ip", s...); err != nil {
			return fmt.Errorf("plug %s into %s: %w", p.NS, p.Switch, err)
		}
	}
	return nil
}
