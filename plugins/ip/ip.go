// Package ip is the resource driver for service IP addresses (type "ip"): it
// adds an address to a network interface and removes it. Before adding an
// IPv4 address it probes the link with ARP and refuses to plumb an address
// that another host answers for; after adding it, it announces the address
// with gratuitous ARP so that peers and switches forget the previous owner.
//
// The driver works in the network namespace of the calling thread.
package ip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// Keyword names.
const (
	KwIPName   = "ipname"
	KwIPDev    = "ipdev"
	KwNetmask  = "netmask"
	KwARPProbe = "arp_probe"
)

// The duplicate-address probe: probeCount ARP probes over the first half
// of the resource's arp_probe, the second half left for the last one's
// answer. RFC 5227 spaces its 3 probes 1 to 2 s apart and waits 2 s more,
// for links where a host may take that long; a failover cannot wait that
// long, and on a LAN a holder's kernel answers from its receive path.
// Measured on a bridge between network namespaces on a 2-core host
// (BenchmarkProbeHolder, 3000 probes a case): the answer is back within
// 0.1 ms at the median and 0.3 to 2.7 ms at the 99th percentile, idle or
// under load; with every CPU busy and a UDP flood at the holder, 99.9 %
// within 4 to 30 ms and the slowest at 5 to 95 ms (the prober starved
// too, on the same two CPUs). 40 and 50 ms probes found every holder
// there (9000 and 12000 probes), a 30 ms one missed 1 in 3000. The
// default gives the last probe 25 ms and the first 50 ms; each 10 ms of
// it is 10 ms of outage in a failover.
const (
	probeCount      = 3
	DefaultARPProbe = 50 * time.Millisecond
	maxARPProbe     = 10 * time.Second // longer only delays a failover
)

// Errors callers may branch on.
var (
	// ErrAddressInUse: another host answered the ARP probe for the address.
	ErrAddressInUse = errors.New("duplicate address")
	// ErrNoInterface: ipdev does not exist on this node.
	ErrNoInterface = errors.New("interface not found")
)

// Config configures a Driver. The zero value is the production setup.
type Config struct {
	// LookupIP resolves ipname when it is not a literal address. Default:
	// net.DefaultResolver (which reads /etc/hosts, then DNS).
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)
	// AnnounceCount is how many gratuitous ARPs announce a new address.
	// The first is sent before Start returns, the others in the
	// background. Default 3.
	AnnounceCount int
	// AnnounceInterval separates announcements. Default 200ms.
	AnnounceInterval time.Duration
	// Logger defaults to sdk.Logger().
	Logger hclog.Logger
}

// Driver plumbs and unplumbs service addresses.
type Driver struct {
	cfg Config
	log hclog.Logger
	// announcers counts the background gratuitous-ARP senders; each ends
	// by itself after AnnounceCount*AnnounceInterval.
	announcers sync.WaitGroup
}

var _ sdk.ResourceDriver = (*Driver)(nil)

// New returns a Driver with cfg's defaults applied.
func New(cfg Config) *Driver {
	if cfg.LookupIP == nil {
		cfg.LookupIP = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if cfg.AnnounceCount <= 0 {
		cfg.AnnounceCount = 3
	}
	if cfg.AnnounceInterval <= 0 {
		cfg.AnnounceInterval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = sdk.Logger()
	}
	return &Driver{cfg: cfg, log: cfg.Logger.Named("ip")}
}

// Wait blocks until the background gratuitous ARPs are all sent.
func (d *Driver) Wait() { d.announcers.Wait() }

// Info declares the ip type.
func (d *Driver) Info() sdk.Info {
	return sdk.Info{
		Name:    "ip",
		Version: Version,
		Types: []sdk.TypeInfo{{
			Type: "ip",
			Help: "A service IP address, plumbed on a network interface of the node running the service.",
			Keywords: []sdk.Keyword{
				{Name: KwIPName, Required: true, Aliases: []string{"name"},
					Help: "The address: a literal IPv4/IPv6 address or a host name resolved by /etc/hosts or DNS (the first IPv4 address is used, else the first IPv6)."},
				{Name: KwIPDev, Required: true, Aliases: []string{"dev"},
					Help: "The network interface to plumb the address on, e.g. eth0."},
				{Name: KwNetmask,
					Help: "The prefix length (24) or dotted netmask (255.255.255.0). Default: the prefix of an address of ipdev in the same subnet, else /32 (IPv4) or /128 (IPv6)."},
				{Name: KwARPProbe, Type: sdk.TypeDuration, Default: DefaultARPProbe.String(),
					Help: "How long to probe with ARP (3 probes over its first half, RFC 5227's probe on a LAN's timescale) for another host holding an IPv4 address before plumbing it; the start fails if one answers. 0 skips the probe: a failover is that much faster, but an address still held by a partitioned peer is plumbed twice."},
			},
		}},
	}
}

// spec is a resource's keywords, checked.
type spec struct {
	name, dev string
	prefix    int // -1: not set
	literal   netip.Addr
	probe     time.Duration // arp_probe
}

func parseSpec(r sdk.Resource) (spec, []sdk.FieldError) {
	var errs []sdk.FieldError
	s := spec{name: strings.TrimSpace(r.Get(KwIPName)), dev: strings.TrimSpace(r.Get(KwIPDev)), prefix: -1, probe: DefaultARPProbe}
	if s.name == "" {
		errs = append(errs, sdk.FieldError{Keyword: KwIPName, Message: "required: an IP address or a host name"})
	} else if a, err := netip.ParseAddr(s.name); err == nil {
		s.literal = a.Unmap()
		if s.literal.Zone() != "" {
			errs = append(errs, sdk.FieldError{Keyword: KwIPName, Message: "an address with a zone (%) cannot be a service address"})
		}
	}
	if s.dev == "" {
		errs = append(errs, sdk.FieldError{Keyword: KwIPDev, Message: "required: the network interface, e.g. eth0"})
	}
	if nm := strings.TrimSpace(r.Get(KwNetmask)); nm != "" {
		p, err := parseNetmask(nm)
		if err != nil {
			errs = append(errs, sdk.FieldError{Keyword: KwNetmask, Message: err.Error()})
		}
		s.prefix = p
		if s.literal.IsValid() && err == nil && p > s.literal.BitLen() {
			errs = append(errs, sdk.FieldError{Keyword: KwNetmask, Message: fmt.Sprintf("prefix /%d is too long for %s", p, s.literal)})
		}
	}
	if v := strings.TrimSpace(r.Get(KwARPProbe)); v != "" {
		d, err := sdk.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, sdk.FieldError{Keyword: KwARPProbe, Message: err.Error()})
		case d < 0 || d > maxARPProbe:
			errs = append(errs, sdk.FieldError{Keyword: KwARPProbe, Message: fmt.Sprintf("%v is out of range (0 to %v)", d, maxARPProbe)})
		default:
			s.probe = d
		}
	}
	return s, errs
}

// parseNetmask reads "24" or "255.255.255.0".
func parseNetmask(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 128 {
			return -1, fmt.Errorf("prefix length %d is out of range (0-32 for IPv4, 0-128 for IPv6)", n)
		}
		return n, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return -1, fmt.Errorf("%q is neither a prefix length (24) nor a dotted netmask (255.255.255.0)", s)
	}
	b := a.As4()
	ones, bits := net.IPMask(b[:]).Size()
	if bits == 0 {
		return -1, fmt.Errorf("netmask %s is not contiguous", s)
	}
	return ones, nil
}

func (s spec) label() string { return s.name + "@" + s.dev }

// Validate checks the keywords without touching the system (host names
// are resolved at start, when the resolver matters).
func (d *Driver) Validate(_ context.Context, r sdk.Resource) []sdk.FieldError {
	_, errs := parseSpec(r)
	return errs
}

// resolve returns the service address: ipname itself, or its first IPv4
// address, or its first IPv6 address.
func (d *Driver) resolve(ctx context.Context, s spec) (netip.Addr, error) {
	if s.literal.IsValid() {
		return s.literal, nil
	}
	addrs, err := d.cfg.LookupIP(ctx, s.name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w; check /etc/hosts or DNS, or set ipname to a literal address", s.name, err)
	}
	var v6 netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			return a, nil
		}
		if !v6.IsValid() {
			v6 = a.WithZone("")
		}
	}
	if v6.IsValid() {
		return v6, nil
	}
	return netip.Addr{}, fmt.Errorf("resolve %s: no address; check /etc/hosts or DNS", s.name)
}

// target is a resource resolved against the node.
type target struct {
	addr  netip.Addr
	link  netlink.Link
	addrs []netlink.Addr // the addresses of link in addr's family
	have  *netlink.Addr  // addr as plumbed on link, when it is
}

func (d *Driver) lookup(ctx context.Context, s spec) (target, error) {
	var t target
	a, err := d.resolve(ctx, s)
	if err != nil {
		return t, err
	}
	t.addr = a
	link, err := netlink.LinkByName(s.dev)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return t, fmt.Errorf("%w: %s does not exist on this node; check ipdev", ErrNoInterface, s.dev)
		}
		return t, fmt.Errorf("look up interface %s: %w", s.dev, err)
	}
	t.link = link
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	t.addrs, err = netlink.AddrList(link, family)
	if err != nil {
		return t, fmt.Errorf("list addresses of %s: %w", s.dev, err)
	}
	for i := range t.addrs {
		if ip, ok := netip.AddrFromSlice(t.addrs[i].IP); ok && ip.Unmap() == a {
			t.have = &t.addrs[i]
			break
		}
	}
	return t, nil
}

// prefixFor is the prefix length to plumb addr with: netmask when set,
// else that of an address of the interface whose subnet holds addr (so
// that the kernel treats the service address as a secondary of that
// subnet), else a host prefix.
func prefixFor(s spec, addr netip.Addr, existing []netlink.Addr) int {
	if s.prefix >= 0 {
		return s.prefix
	}
	for _, e := range existing {
		if e.IPNet != nil && e.Contains(net.IP(addr.AsSlice())) {
			ones, _ := e.Mask.Size()
			return ones
		}
	}
	return addr.BitLen()
}

// Start plumbs the address on ipdev, after checking no other host uses it.
func (d *Driver) Start(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, errs := parseSpec(r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("ip", errs)
	}
	t, err := d.lookup(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.label(), err)
	}
	if t.have != nil {
		return []string{fmt.Sprintf("%s is already plumbed on %s", t.have.IPNet, s.dev)}, nil
	}
	prefix := prefixFor(s, t.addr, t.addrs)
	if prefix > t.addr.BitLen() {
		return nil, fmt.Errorf("start %s: prefix /%d is too long for %s; fix netmask", s.label(), prefix, t.addr)
	}
	log := d.log.With("rid", r.RID, "service", r.Service.Name, "addr", t.addr, "dev", s.dev)
	var out []string
	ifi, arpable := arpInterface(t.link)
	// One ARP socket for the probe and the announcements: every socket
	// opened costs the failover its close (see closeLater).
	var conn *packet.Conn
	if t.addr.Is4() && arpable {
		if t.link.Attrs().OperState == netlink.OperDown || t.link.Attrs().Flags&net.FlagUp == 0 {
			return nil, fmt.Errorf("start %s: interface %s is down; bring it up (ip link set %s up) and start again", s.label(), s.dev, s.dev)
		}
		var lerr error
		conn, lerr = listenARP(ifi)
		switch {
		case s.probe > 0 && lerr != nil:
			return nil, fmt.Errorf("start %s: arp probe: %w", s.label(), lerr)
		case s.probe > 0:
			hw, err := d.probe(ctx, conn, ifi, t.addr, s.probe)
			if err == nil && hw != nil {
				err = fmt.Errorf("%w: address %s is already in use by %s on %s; find that host and remove the address there, or change ipname",
					ErrAddressInUse, t.addr, hw, s.dev)
			}
			if err != nil {
				d.closeLater(conn)
				return nil, fmt.Errorf("start %s: %w", s.label(), err)
			}
		default:
			log.Warn("address plumbed without an ARP probe (arp_probe = 0)")
			out = append(out, fmt.Sprintf("arp_probe = 0: %s plumbed without checking that no other host holds it", t.addr))
			if lerr != nil {
				// Only the announcements needed it.
				log.Warn("gratuitous arp failed", "error", lerr)
				out = append(out, fmt.Sprintf("gratuitous ARP for %s on %s failed: %v; peers may take a while to reach the new owner", t.addr, s.dev, lerr))
			}
		}
	} else if t.addr.Is4() {
		out = append(out, fmt.Sprintf("%s does not use ARP: no duplicate-address probe", s.dev))
	}
	// IPv6: the kernel runs duplicate address detection itself once the
	// address is added (IFA_F_NODAD is not set); Status reports a failure.

	nladdr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(t.addr.AsSlice()), Mask: net.CIDRMask(prefix, t.addr.BitLen())}}
	if err := netlink.AddrAdd(t.link, nladdr); err != nil && !errors.Is(err, unix.EEXIST) {
		if conn != nil {
			d.closeLater(conn)
		}
		return nil, fmt.Errorf("start %s: add %s to %s: %w", s.label(), nladdr.IPNet, s.dev, err)
	}
	out = append(out, fmt.Sprintf("added %s to %s", nladdr.IPNet, s.dev))

	// The announcement first, the log line after: a peer still sending
	// to the old owner's MAC waits for nothing else.
	if conn != nil {
		if err := d.announce(conn, ifi, t.addr); err != nil {
			// The address is up; a missed announcement only delays
			// peers that cached the old owner's MAC.
			log.Warn("gratuitous arp failed", "error", err)
			out = append(out, fmt.Sprintf("gratuitous ARP for %s on %s failed: %v; peers may take a while to reach the new owner", t.addr, s.dev, err))
		}
	}
	log.Info("address added", "prefix", prefix)
	return out, nil
}

// Stop removes the address from ipdev.
func (d *Driver) Stop(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, errs := parseSpec(r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("ip", errs)
	}
	t, err := d.lookup(ctx, s)
	if errors.Is(err, ErrNoInterface) {
		return []string{fmt.Sprintf("%s does not exist: no address to remove", s.dev)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stop %s: %w", s.label(), err)
	}
	if t.have == nil {
		return []string{fmt.Sprintf("%s is not plumbed on %s", t.addr, s.dev)}, nil
	}
	if err := netlink.AddrDel(t.link, t.have); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return nil, fmt.Errorf("stop %s: remove %s from %s: %w", s.label(), t.have.IPNet, s.dev, err)
	}
	d.log.Info("address removed", "rid", r.RID, "service", r.Service.Name, "addr", t.have.IPNet, "dev", s.dev)
	return []string{fmt.Sprintf("removed %s from %s", t.have.IPNet, s.dev)}, nil
}

// Status reports up when the address is plumbed on ipdev.
func (d *Driver) Status(ctx context.Context, r sdk.Resource) sdk.ResourceStatus {
	s, errs := parseSpec(r)
	out := sdk.ResourceStatus{Label: s.label()}
	if len(errs) > 0 {
		out.Status = sdk.StatusUndef
		out.Log = []string{sdk.FieldErrors("ip", errs).Error()}
		return out
	}
	t, err := d.lookup(ctx, s)
	if err != nil {
		out.Status = sdk.StatusDown
		out.Log = []string{err.Error()}
		return out
	}
	if t.have == nil {
		out.Status = sdk.StatusDown
		return out
	}
	if t.have.Flags&unix.IFA_F_DADFAILED != 0 {
		out.Status = sdk.StatusWarn
		out.Log = []string{fmt.Sprintf("duplicate address detection failed for %s on %s: another host uses it", t.addr, s.dev)}
		return out
	}
	out.Status = sdk.StatusUp
	return out
}
