package ip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

func TestParseNetmask(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{in: "24", want: 24},
		{in: "0", want: 0},
		{in: "128", want: 128},
		{in: "255.255.255.0", want: 24},
		{in: "255.255.255.255", want: 32},
		{in: "255.0.255.0", wantErr: true},
		{in: "129", wantErr: true},
		{in: "ffff::", wantErr: true},
		{in: "abc", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseNetmask(tt.in)
			if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
				t.Errorf("parseNetmask(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	d := New(Config{Logger: hclog.NewNullLogger()})
	tests := []struct {
		name   string
		kw     map[string]string
		errsOn []string
	}{
		{"ok name", map[string]string{KwIPName: "registry.opensvc.com", KwIPDev: "eth0"}, nil},
		{"ok literal", map[string]string{KwIPName: "10.0.0.1", KwIPDev: "eth0", KwNetmask: "255.255.0.0"}, nil},
		{"missing", map[string]string{}, []string{KwIPName, KwIPDev}},
		{"bad netmask", map[string]string{KwIPName: "10.0.0.1", KwIPDev: "eth0", KwNetmask: "255.0.255.0"}, []string{KwNetmask}},
		{"prefix too long for v4", map[string]string{KwIPName: "10.0.0.1", KwIPDev: "eth0", KwNetmask: "64"}, []string{KwNetmask}},
		{"arp_probe off", map[string]string{KwIPName: "10.0.0.1", KwIPDev: "eth0", KwARPProbe: "0"}, nil},
		{"arp_probe short", map[string]string{KwIPName: "10.0.0.1", KwIPDev: "eth0", KwARPProbe: "30ms"}, nil},
		{"arp_probe not a duration", map[string]string{KwIPName: "10.0.0.1", KwIPDev: "eth0", KwARPProbe: "fast"}, []string{KwARPProbe}},
		{"arp_probe negative", map[string]string{KwIPName: "10.0.0.1", KwIPDev: "eth0", KwARPProbe: "-1s"}, []string{KwARPProbe}},
		{"arp_probe too long", map[string]string{KwIPName: "10.0.0.1", KwIPDev: "eth0", KwARPProbe: "11s"}, []string{KwARPProbe}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := d.Validate(context.Background(), sdk.Resource{Keywords: tt.kw})
			var got []string
			for _, e := range errs {
				got = append(got, e.Keyword)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.errsOn) {
				t.Errorf("errors on %v (%+v), want %v", got, errs, tt.errsOn)
			}
		})
	}
}

func TestResolve_DefaultResolverReadsHostsFile(t *testing.T) {
	d := New(Config{Logger: hclog.NewNullLogger()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := d.resolve(ctx, spec{name: "localhost"})
	if err != nil {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	if !a.IsLoopback() {
		t.Errorf("localhost resolved to %s, want a loopback address", a)
	}
}

func TestResolve_PrefersIPv4(t *testing.T) {
	d := New(Config{Logger: hclog.NewNullLogger(), LookupIP: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:192.0.2.7")}, nil
	}})
	a, err := d.resolve(context.Background(), spec{name: "svc.example"})
	if err != nil || a != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("resolve = %s, %v; want 192.0.2.7", a, err)
	}
}

// lab is two network namespaces joined by a veth pair: local is where the
// driver runs, peer plays another host on the same link.
type lab struct {
	local, peer   netns.NsHandle
	hLocal, hPeer *netlink.Handle
	dev, peerDev  string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	l := &lab{dev: "vgl0", peerDev: "vgp0"}
	errc := make(chan error, 1)
	go func() {
		// This thread changes namespace; it is never unlocked, so Go
		// discards it when the goroutine ends.
		runtime.LockOSThread()
		errc <- func() error {
			orig, err := netns.Get()
			if err != nil {
				return err
			}
			defer orig.Close()
			if l.local, err = netns.New(); err != nil {
				return fmt.Errorf("new netns: %w", err)
			}
			if l.peer, err = netns.New(); err != nil {
				return fmt.Errorf("new netns: %w", err)
			}
			return netns.Set(orig)
		}()
	}()
	if err := <-errc; err != nil {
		t.Skipf("cannot create network namespaces: %v", err)
	}
	t.Cleanup(func() {
		// Closing the last handles destroys the namespaces and the veth.
		l.local.Close()
		l.peer.Close()
	})
	var err error
	if l.hLocal, err = netlink.NewHandleAt(l.local); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.hLocal.Close)
	if l.hPeer, err = netlink.NewHandleAt(l.peer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.hPeer.Close)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.dev}, PeerName: l.peerDev, PeerNamespace: netlink.NsFd(l.peer)}
	if err := l.hLocal.LinkAdd(veth); err != nil {
		t.Skipf("cannot create a veth pair: %v", err)
	}
	for _, x := range []struct {
		h    *netlink.Handle
		name string
	}{{l.hLocal, l.dev}, {l.hPeer, l.peerDev}, {l.hLocal, "lo"}, {l.hPeer, "lo"}} {
		link, err := x.h.LinkByName(x.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.h.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// in runs fn on a thread that lives in ns, the way the plugin process
// would run inside a node's namespace.
func in(ns netns.NsHandle, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread is discarded
		if err := netns.Set(ns); err != nil {
			panic(err)
		}
		fn()
	}()
	<-done
}

func (l *lab) addAddr(t *testing.T, h *netlink.Handle, dev, cidr string) {
	t.Helper()
	link, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(link, a); err != nil {
		t.Fatalf("add %s to %s: %v", cidr, dev, err)
	}
}

// plumbed returns addr's prefix on the local interface, "" when absent.
func (l *lab) plumbed(t *testing.T, addr string) string {
	t.Helper()
	link, err := l.hLocal.LinkByName(l.dev)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := l.hLocal.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IP.String() == addr {
			return a.IPNet.String()
		}
	}
	return ""
}

func TestDriver_PlumbStatusUnplumb(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	l.addAddr(t, l.hLocal, l.dev, "192.0.2.1/24")
	d := New(Config{Logger: hclog.NewNullLogger(), LookupIP: func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "svc.example" {
			return []netip.Addr{netip.MustParseAddr("192.0.2.20")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}})
	t.Cleanup(d.Wait)

	tests := []struct {
		name, ipname, netmask string
		addr, want            string // want: the plumbed prefix
	}{
		{name: "DefaultPrefixFromSameSubnet", ipname: "192.0.2.10", addr: "192.0.2.10", want: "192.0.2.10/24"},
		{name: "DottedNetmask", ipname: "192.0.2.11", netmask: "255.255.255.128", addr: "192.0.2.11", want: "192.0.2.11/25"},
		{name: "HostPrefixOutsideKnownSubnets", ipname: "198.51.100.5", addr: "198.51.100.5", want: "198.51.100.5/32"},
		{name: "ResolvedName", ipname: "svc.example", addr: "192.0.2.20", want: "192.0.2.20/24"},
		{name: "IPv6", ipname: "2001:db8::10", addr: "2001:db8::10", want: "2001:db8::10/128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sdk.Resource{RID: "ip#1", Type: "ip", Keywords: map[string]string{KwIPName: tt.ipname, KwIPDev: l.dev, KwNetmask: tt.netmask}}
			var (
				st1, st2, st3  sdk.ResourceStatus
				err1, err2     error
				err3, err4     error
				log2, log4     []string
				startDuration  time.Duration
				plumbedInStart string
			)
			in(l.local, func() {
				st1 = d.Status(ctx, r)
				t0 := time.Now()
				_, err1 = d.Start(ctx, r)
				startDuration = time.Since(t0)
			})
			plumbedInStart = l.plumbed(t, tt.addr)
			in(l.local, func() {
				log2, err2 = d.Start(ctx, r)
				st2 = d.Status(ctx, r)
				_, err3 = d.Stop(ctx, r)
				log4, err4 = d.Stop(ctx, r)
				st3 = d.Status(ctx, r)
			})
			if st1.Status != sdk.StatusDown || st1.Label != tt.ipname+"@"+l.dev {
				t.Errorf("before start: %v %q, want down %q", st1.Status, st1.Label, tt.ipname+"@"+l.dev)
			}
			if err1 != nil {
				t.Fatalf("start: %v", err1)
			}
			t.Logf("start took %v", startDuration)
			if plumbedInStart != tt.want {
				t.Errorf("plumbed %q, want %q", plumbedInStart, tt.want)
			}
			if err2 != nil || len(log2) == 0 || !strings.Contains(log2[0], "already plumbed") {
				t.Errorf("second start: %q %v, want an already-plumbed no-op", log2, err2)
			}
			if st2.Status != sdk.StatusUp {
				t.Errorf("status after start: %v %q", st2.Status, st2.Log)
			}
			if err3 != nil {
				t.Errorf("stop: %v", err3)
			}
			if err4 != nil || len(log4) == 0 || !strings.Contains(log4[0], "not plumbed") {
				t.Errorf("second stop: %q %v, want a not-plumbed no-op", log4, err4)
			}
			if st3.Status != sdk.StatusDown {
				t.Errorf("status after stop: %v %q", st3.Status, st3.Log)
			}
			if p := l.plumbed(t, tt.addr); p != "" {
				t.Errorf("%s still plumbed after stop", p)
			}
		})
	}
}

func TestDriver_StartRefusesAddressAnsweredByPeer(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	l.addAddr(t, l.hPeer, l.peerDev, "192.0.2.30/24")
	peer, err := l.hPeer.LinkByName(l.peerDev)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Logger: hclog.NewNullLogger()})
	t.Cleanup(d.Wait)
	r := sdk.Resource{RID: "ip#1", Type: "ip", Keywords: map[string]string{KwIPName: "192.0.2.30", KwIPDev: l.dev}}

	var st sdk.ResourceStatus
	var took time.Duration
	in(l.local, func() {
		t0 := time.Now()
		_, err = d.Start(ctx, r)
		took = time.Since(t0)
		st = d.Status(ctx, r)
	})
	t.Logf("refused after %v: %v", took, err)
	if !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("start: err = %v, want ErrAddressInUse", err)
	}
	want := fmt.Sprintf("address 192.0.2.30 is already in use by %s on %s", peer.Attrs().HardwareAddr, l.dev)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if p := l.plumbed(t, "192.0.2.30"); p != "" {
		t.Errorf("plumbed %s anyway", p)
	}
	if st.Status != sdk.StatusDown {
		t.Errorf("status: %v, want down", st.Status)
	}
}

func TestDriver_MissingInterface(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	d := New(Config{Logger: hclog.NewNullLogger()})
	r := sdk.Resource{RID: "ip#1", Type: "ip", Keywords: map[string]string{KwIPName: "192.0.2.40", KwIPDev: "nosuch0"}}
	var st sdk.ResourceStatus
	var startErr, stopErr error
	in(l.local, func() {
		st = d.Status(ctx, r)
		_, startErr = d.Start(ctx, r)
		_, stopErr = d.Stop(ctx, r)
	})
	if st.Status != sdk.StatusDown || len(st.Log) == 0 || !strings.Contains(st.Log[0], "nosuch0") {
		t.Errorf("status: %v %q, want down naming the interface", st.Status, st.Log)
	}
	if !errors.Is(startErr, ErrNoInterface) {
		t.Errorf("start: %v, want ErrNoInterface", startErr)
	}
	if stopErr != nil {
		t.Errorf("stop: %v, want a no-op", stopErr)
	}
}

// arpListener listens for ARP frames on the lab's peer side.
func arpListener(t *testing.T, l *lab) *packet.Conn {
	t.Helper()
	var conn *packet.Conn
	var err error
	in(l.peer, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(l.peerDev); err == nil {
			conn, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
		}
	})
	if err != nil {
		t.Fatalf("listen on the peer: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// countARP reads conn for a second and counts the probes (sender 0.0.0.0)
// and announcements (sender addr) for addr.
func countARP(conn *packet.Conn, addr netip.Addr) (probes, announces int) {
	buf := make([]byte, 1500)
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return probes, announces
		}
		var f ethernet.Frame
		var p arp.Packet
		if f.UnmarshalBinary(buf[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil || p.TargetIP != addr {
			continue
		}
		switch p.SenderIP {
		case netip.IPv4Unspecified():
			probes++
		case addr:
			announces++
		}
	}
}

func TestDriver_StartProbesThenAnnounces(t *testing.T) {
	l := newLab(t)
	conn := arpListener(t, l)
	d := New(Config{Logger: hclog.NewNullLogger()})
	r := sdk.Resource{RID: "ip#1", Type: "ip", Keywords: map[string]string{KwIPName: "192.0.2.50", KwIPDev: l.dev, KwNetmask: "24"}}
	var err error
	in(l.local, func() { _, err = d.Start(context.Background(), r) })
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	d.Wait()
	if probes, announces := countARP(conn, netip.MustParseAddr("192.0.2.50")); probes != 3 || announces != 3 {
		t.Errorf("peer saw %d probes (sender 0.0.0.0) and %d announcements, want 3 and 3", probes, announces)
	}
}

func TestDriver_ARPProbeKeyword(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	d := New(Config{Logger: hclog.NewNullLogger()})
	t.Cleanup(d.Wait)

	// A short probe still finds a holder.
	l.addAddr(t, l.hPeer, l.peerDev, "192.0.2.31/24")
	var err error
	in(l.local, func() {
		_, err = d.Start(ctx, sdk.Resource{RID: "ip#1", Type: "ip", Keywords: map[string]string{KwIPName: "192.0.2.31", KwIPDev: l.dev, KwARPProbe: "30ms"}})
	})
	if !errors.Is(err, ErrAddressInUse) {
		t.Errorf("start with arp_probe = 30ms beside a holder: err = %v, want ErrAddressInUse", err)
	}

	// arp_probe = 0: no probe, the address is plumbed, announced, and the
	// start says it did not check.
	conn := arpListener(t, l)
	var out []string
	in(l.local, func() {
		out, err = d.Start(ctx, sdk.Resource{RID: "ip#2", Type: "ip", Keywords: map[string]string{KwIPName: "192.0.2.32", KwIPDev: l.dev, KwNetmask: "24", KwARPProbe: "0"}})
	})
	if err != nil {
		t.Fatalf("start with arp_probe = 0: %v", err)
	}
	d.Wait()
	if !strings.Contains(strings.Join(out, "\n"), "without checking") {
		t.Errorf("start output does not say the address was not probed: %q", out)
	}
	if probes, announces := countARP(conn, netip.MustParseAddr("192.0.2.32")); probes != 0 || announces != 3 {
		t.Errorf("peer saw %d probes and %d announcements, want 0 and 3", probes, announces)
	}
	if p := l.plumbed(t, "192.0.2.32"); p == "" {
		t.Error("192.0.2.32 not plumbed")
	}
}

func TestDriver_StartFailsWhenDeadlineCutsTheProbeShort(t *testing.T) {
	l := newLab(t)
	d := New(Config{Logger: hclog.NewNullLogger()})
	r := sdk.Resource{RID: "ip#1", Type: "ip", Keywords: map[string]string{KwIPName: "192.0.2.60", KwIPDev: l.dev, KwARPProbe: "150ms"}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var err error
	in(l.local, func() { _, err = d.Start(ctx, r) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("start: %v, want a deadline error", err)
	}
	if p := l.plumbed(t, "192.0.2.60"); p != "" {
		t.Errorf("plumbed %s after a cut-short probe", p)
	}
}
