package ip

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var benchProbe = flag.Duration("arp-probe", DefaultARPProbe, "the probe length BenchmarkProbeHolder runs")

// BenchmarkProbeHolder measures what the default arp_probe rests on: how
// soon a host holding the address answers the duplicate-address probe,
// and whether a probe of the default length (or -arp-probe's) finds it. The prober and the
// holder are network namespaces on a bridge (the lab's switch), the
// holder idle, with every CPU busy, under a flood of UDP from a third
// namespace (its kernel's receive path busy, frames dropped when its
// backlog is full), and both. One op is one probe; it reports the share
// of probes that found the holder and the time to the holder's answer
// (median, 99th percentile, max), from the probe's start.
//
//	sudo go test ./plugins/ip -run '^$' -bench ProbeHolder -benchtime 3000x [-args -arp-probe 40ms]
func BenchmarkProbeHolder(b *testing.B) {
	for _, load := range []struct {
		name       string
		cpu, flood bool
	}{{"idle", false, false}, {"cpu", true, false}, {"flood", false, true}, {"cpu+flood", true, true}} {
		b.Run(load.name, func(b *testing.B) {
			l := newBridgeLab(b, "prober", "holder", "flooder")
			const holder = "192.0.2.80"
			l.addr(b, "holder", holder+"/24")
			l.addr(b, "flooder", "192.0.2.81/24")
			if load.cpu {
				busy(b, runtime.NumCPU()+1)
			}
			var sent func() uint64
			began := time.Now()
			if load.flood {
				sent = l.flood(b, "flooder", holder+":9")
			}
			d := New(Config{Logger: hclog.NewNullLogger()})
			b.Cleanup(d.Wait)
			addr := netip.MustParseAddr(holder)
			var took []time.Duration
			var errs []error
			b.ResetTimer()
			in(l.ns["prober"], func() {
				link, err := netlink.LinkByName("eth0")
				if err != nil {
					errs = append(errs, err)
					return
				}
				ifi, _ := arpInterface(link)
				for i := 0; i < b.N; i++ {
					// A socket per probe: a late answer to the last
					// probe must not count for the next.
					conn, err := listenARP(ifi)
					if err != nil {
						errs = append(errs, err)
						return
					}
					t0 := time.Now()
					hw, err := d.probe(context.Background(), conn, ifi, addr, *benchProbe)
					dt := time.Since(t0)
					b.StopTimer()
					conn.Close()
					time.Sleep(5 * time.Millisecond)
					b.StartTimer()
					if err != nil {
						errs = append(errs, err)
					} else if hw != nil {
						took = append(took, dt)
					}
				}
			})
			b.StopTimer()
			if sent != nil {
				b.ReportMetric(float64(sent())/time.Since(began).Seconds(), "flood-pkt/s")
			}
			if len(errs) > 0 {
				b.Fatalf("%d probes failed, first: %v", len(errs), errs[0])
			}
			b.ReportMetric(float64(len(took))/float64(b.N), "found/op")
			if len(took) == 0 {
				return
			}
			slices.Sort(took)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(took[len(took)/2]), "answer-p50-ms")
			b.ReportMetric(ms(took[len(took)*99/100]), "answer-p99-ms")
			b.ReportMetric(ms(took[len(took)*999/1000]), "answer-p99.9-ms")
			b.ReportMetric(ms(took[len(took)-1]), "answer-max-ms")
		})
	}
}

// bridgeLab is network namespaces plugged into a bridge in a namespace of
// its own, each by a veth whose end in it is eth0: hosts on one LAN.
type bridgeLab struct {
	ns map[string]netns.NsHandle
}

func newBridgeLab(tb testing.TB, hosts ...string) *bridgeLab {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create network namespaces")
	}
	l := &bridgeLab{ns: map[string]netns.NsHandle{}}
	names := append([]string{"switch"}, hosts...)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is discarded
		errc <- func() error {
			orig, err := netns.Get()
			if err != nil {
				return err
			}
			defer orig.Close()
			for _, n := range names {
				h, err := netns.New()
				if err != nil {
					return fmt.Errorf("new netns: %w", err)
				}
				l.ns[n] = h
			}
			return netns.Set(orig)
		}()
	}()
	err := <-errc
	tb.Cleanup(func() {
		// Closing the last handles destroys the namespaces and veths.
		for _, h := range l.ns {
			h.Close()
		}
	})
	if err != nil {
		tb.Skipf("cannot create network namespaces: %v", err)
	}
	sw, err := netlink.NewHandleAt(l.ns["switch"])
	if err != nil {
		tb.Fatal(err)
	}
	defer sw.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := sw.LinkAdd(br); err != nil {
		tb.Skipf("cannot create a bridge: %v", err)
	}
	brl, err := sw.LinkByName("br0")
	if err == nil {
		err = sw.LinkSetUp(brl)
	}
	if err != nil {
		tb.Fatal(err)
	}
	for i, n := range hosts {
		port := fmt.Sprintf("p%d", i)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: brl.Attrs().Index}, PeerName: "eth0", PeerNamespace: netlink.NsFd(l.ns[n])}
		if err := sw.LinkAdd(veth); err != nil {
			tb.Skipf("cannot create a veth pair: %v", err)
		}
		link, err := sw.LinkByName(port)
		if err != nil {
			tb.Fatal(err)
		}
		if err := sw.LinkSetUp(link); err != nil {
			tb.Fatal(err)
		}
		h, err := netlink.NewHandleAt(l.ns[n])
		if err != nil {
			tb.Fatal(err)
		}
		for _, dev := range []string{"eth0", "lo"} {
			link, err := h.LinkByName(dev)
			if err == nil {
				err = h.LinkSetUp(link)
			}
			if err != nil {
				h.Close()
				tb.Fatal(err)
			}
		}
		h.Close()
	}
	return l
}

// addr adds cidr to host's eth0.
func (l *bridgeLab) addr(tb testing.TB, host, cidr string) {
	tb.Helper()
	h, err := netlink.NewHandleAt(l.ns[host])
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		tb.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.AddrAdd(link, a); err != nil {
		tb.Fatalf("add %s to %s's eth0: %v", cidr, host, err)
	}
}

// flood sends UDP datagrams from host to dst as fast as two goroutines
// can, until the benchmark ends; sent counts them.
func (l *bridgeLab) flood(tb testing.TB, host, dst string) (sent func() uint64) {
	tb.Helper()
	var conn *net.UDPConn
	var err error
	in(l.ns[host], func() {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr("udp4", dst); err == nil {
			conn, err = net.DialUDP("udp4", nil, ua)
		}
	})
	if err != nil {
		tb.Fatalf("flood from %s: %v", host, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var n atomic.Uint64
	payload := make([]byte, 512)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := conn.Write(payload); err == nil { // else refused (ICMP): sent again
					n.Add(1)
				}
			}
		}()
	}
	tb.Cleanup(func() {
		close(stop)
		wg.Wait()
		conn.Close()
	})
	return n.Load
}

// busy keeps n processes spinning until the benchmark ends; each is
// stopped by its pid.
func busy(tb testing.TB, n int) {
	tb.Helper()
	for i := 0; i < n; i++ {
		cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start a busy loop: %v", err)
		}
		tb.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
}
