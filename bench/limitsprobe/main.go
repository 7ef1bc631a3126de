// Command limitsprobe times what bench/limits.sh cannot time from a shell
// without adding a process start to the figure. Each subcommand prints one
// duration in seconds per line.
//
//	limitsprobe fence -plugin-dir DIR -host H -port P -user U -password-file F -power-file S -n N
//	    N fences of a BMC through the real stonith-ipmi plugin, as vigild
//	    calls it (power status, power off, confirmation); before each, the
//	    simulated chassis is powered on again by writing 1 to S.
//	limitsprobe arp -i IFACE -target IP -n N
//	    N ARP requests for IP, each timed to its reply.
//	limitsprobe wait -url URL [-unix SOCK] [-since UNIXNANO] [-timeout D]
//	    polls URL every 2 ms until it answers 200, and prints the time
//	    from -since (default: its own start) to that answer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"

	"github.com/vigil-ha/vigil/core/plugin"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: limitsprobe fence|arp|wait [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "fence":
		err = fence(os.Args[2:])
	case "arp":
		err = arping(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "limitsprobe:", err)
		os.Exit(1)
	}
}

func fence(args []string) error {
	fs := flag.NewFlagSet("fence", flag.ExitOnError)
	dir := fs.String("plugin-dir", "", "a directory holding vigil-plugin-stonith-ipmi only")
	host := fs.String("host", "127.0.0.1", "BMC address")
	port := fs.Int("port", 623, "BMC port")
	user := fs.String("user", "admin", "BMC user")
	pwFile := fs.String("password-file", "", "BMC password file")
	powerFile := fs.String("power-file", "", "the simulated chassis' power state file")
	n := fs.Int("n", 5, "fences")
	_ = fs.Parse(args)
	h := plugin.New(plugin.Config{Dir: *dir, Logger: hclog.NewNullLogger()})
	defer h.Close()
	ctx := context.Background()
	f, err := h.Stonith(ctx, "stonith.ipmi")
	if err != nil {
		return err
	}
	kw := map[string]string{"host": *host, "port": strconv.Itoa(*port), "user": *user, "password_file": *pwFile}
	// The plugin's process start and first session are not a fence's.
	if _, err := f.PowerStatus(ctx, "bench", kw); err != nil {
		return fmt.Errorf("power status: %w", err)
	}
	for range *n {
		if err := os.WriteFile(*powerFile, []byte("1\n"), 0o644); err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := f.Fence(ctx, "bench", kw); err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		fmt.Printf("%.6f\n", time.Since(t0).Seconds())
	}
	return nil
}

func arping(args []string) error {
	fs := flag.NewFlagSet("arp", flag.ExitOnError)
	name := fs.String("i", "eth0", "interface")
	target := fs.String("target", "", "the address to ask for")
	n := fs.Int("n", 5, "requests")
	_ = fs.Parse(args)
	ifi, err := net.InterfaceByName(*name)
	if err != nil {
		return err
	}
	tgt, err := netip.ParseAddr(*target)
	if err != nil {
		return err
	}
	var src netip.Addr
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			src = p.Addr()
		}
	}
	if !src.IsValid() {
		return fmt.Errorf("%s has no IPv4 address", *name)
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, src, ethernet.Broadcast, tgt)
	if err != nil {
		return err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	frame, err := (&ethernet.Frame{Destination: ethernet.Broadcast, Source: ifi.HardwareAddr, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	if err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for range *n {
		t0 := time.Now()
		if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return err
		}
		if err := conn.SetReadDeadline(t0.Add(time.Second)); err != nil {
			return err
		}
		for {
			m, _, err := conn.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("no reply from %s: %w", tgt, err)
			}
			var f ethernet.Frame
			if f.UnmarshalBinary(buf[:m]) != nil {
				continue
			}
			var r arp.Packet
			if r.UnmarshalBinary(f.Payload) != nil || r.Operation != arp.OperationReply || r.SenderIP != tgt {
				continue
			}
			break
		}
		fmt.Printf("%.6f\n", time.Since(t0).Seconds())
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	url := fs.String("url", "", "what to GET")
	sock := fs.String("unix", "", "a unix socket to reach the URL's host through")
	since := fs.Int64("since", 0, "unix ns to time from (default: now)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after")
	_ = fs.Parse(args)
	t0 := time.Now()
	if *since != 0 {
		t0 = time.Unix(0, *since)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	if *sock != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *sock)
		}
	}
	hc := &http.Client{Timeout: time.Second, Transport: tr}
	end := time.Now().Add(*timeout)
	var last error
	for time.Now().Before(end) {
		resp, err := hc.Get(*url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Printf("%.6f\n", time.Since(t0).Seconds())
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s: no answer within %s (last: %v)", *url, *timeout, last)
}
