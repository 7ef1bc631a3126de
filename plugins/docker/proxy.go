package docker

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The userland proxy of a private daemon. dockerd publishes a container's
// port with a proxy process (docker-proxy) it starts when it wires the
// container's network, before the container's process runs. docker-proxy
// listens at once: a client that connects in the seconds before the
// service listens is accepted, and then reset or left hanging while the
// proxy's own connection to a container address that does not exist yet
// waits on ARP; a takeover's first clients are exactly those. This proxy
// holds the port from the start (bound, so nothing else takes it) but
// listens only once the container accepts a connection itself: until
// then a client is refused, as by a host where the service is not up.
//
// dockerd runs it as it runs docker-proxy (--userland-proxy-path), with
// docker-proxy's flags and a pipe on fd 3 on which it waits for "0\n"
// (bound) or "1\n<error>". The plugin's own executable is the proxy
// (RunProxy, called from main when the arguments are a proxy's), so there
// is no other binary to install or to keep in step. UDP and SCTP have no
// connection to wait for: they go to docker-proxy unchanged.

// ProxyFlag is the first argument dockerd gives its userland proxy; main
// hands a command line starting with it to RunProxy.
const ProxyFlag = "-proto"

// IsProxyCommand tells whether args (os.Args[1:]) are a userland proxy's.
func IsProxyCommand(args []string) bool {
	return len(args) > 0 && args[0] == ProxyFlag
}

// Backend probes: often while the container starts (each is a connect
// that is refused, or times out while the container's address does not
// answer ARP yet), less often for a service that takes long to listen.
const (
	proxyProbeTimeout = 50 * time.Millisecond
	proxyProbeFast    = 10 * time.Millisecond
	proxyProbeSlow    = 250 * time.Millisecond
	proxyFastFor      = 30 * time.Second
)

// RunProxy is the userland proxy's main; it returns the exit code.
func RunProxy(args []string) int {
	fs := flag.NewFlagSet("vigil-docker-proxy", flag.ContinueOnError)
	proto := fs.String("proto", "tcp", "proxy protocol")
	hostIP := fs.String("host-ip", "", "host ip")
	hostPort := fs.Int("host-port", -1, "host port")
	ctrIP := fs.String("container-ip", "", "container ip")
	ctrPort := fs.Int("container-port", -1, "container port")
	parent := os.NewFile(3, "signal-parent")
	fail := func(err error) int {
		fmt.Fprintf(parent, "1\n%s", err)
		parent.Close()
		fmt.Fprintln(os.Stderr, "vigil docker proxy:", err)
		return 1
	}
	if err := fs.Parse(args); err != nil {
		return fail(err)
	}
	if *proto != "tcp" {
		// Nothing to gate: docker-proxy, with fd 3 and the same flags.
		bin, err := exec.LookPath("docker-proxy")
		if err != nil {
			return fail(fmt.Errorf("%s ports need docker-proxy: %w", *proto, err))
		}
		err = syscall.Exec(bin, append([]string{bin}, args...), os.Environ())
		return fail(fmt.Errorf("exec %s: %w", bin, err))
	}
	host := net.JoinHostPort(*hostIP, strconv.Itoa(*hostPort))
	backend := net.JoinHostPort(*ctrIP, strconv.Itoa(*ctrPort))
	fd, err := bindTCP(*hostIP, *hostPort)
	if err != nil {
		return fail(fmt.Errorf("bind %s: %w", host, err))
	}
	fmt.Fprint(parent, "0\n")
	parent.Close()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	ready := make(chan error, 1)
	go func() { ready <- proxyWhenUp(fd, backend, time.Now()) }()
	select {
	case <-stop:
		return 0
	case err := <-ready:
		fmt.Fprintln(os.Stderr, "vigil docker proxy:", err)
		return 1
	}
}

// bindTCP returns a TCP socket bound to ip:port that does not listen yet.
func bindTCP(ip string, port int) (int, error) {
	addr := net.ParseIP(ip)
	if addr == nil {
		return -1, fmt.Errorf("host ip %q is not an address", ip)
	}
	family := syscall.AF_INET6
	var sa syscall.Sockaddr
	if a4 := addr.To4(); a4 != nil {
		family = syscall.AF_INET
		s := &syscall.SockaddrInet4{Port: port}
		copy(s.Addr[:], a4)
		sa = s
	} else {
		s := &syscall.SockaddrInet6{Port: port}
		copy(s.Addr[:], addr.To16())
		sa = s
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_TCP)
	if err != nil {
		return -1, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if family == syscall.AF_INET6 && addr.IsUnspecified() {
		// As docker-proxy on [::]: both families.
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// proxyWhenUp waits until backend accepts a connection, then listens on
// the bound socket fd and proxies every connection to backend.
func proxyWhenUp(fd int, backend string, since time.Time) error {
	host, _, _ := net.SplitHostPort(backend)
	ctrIP := net.ParseIP(host)
	for {
		c, err := net.DialTimeout("tcp", backend, proxyProbeTimeout)
		if err == nil {
			c.Close()
			break
		}
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EHOSTUNREACH) {
			// No ARP answer: the container's address is not up yet. The
			// kernel asks again only once a second (retrans_time) and holds
			// our next connects until then; forgetting the entry makes the
			// next connect ask at once, so the first one after the address
			// comes up goes through.
			forgetNeighbor(ctrIP)
		}
		wait := proxyProbeFast
		if time.Since(since) > proxyFastFor {
			wait = proxyProbeSlow
		}
		time.Sleep(wait)
	}
	if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	for {
		client, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		go proxyConn(client.(*net.TCPConn), backend)
	}
}

// proxyConn copies between a client and a new connection to backend,
// half-closing each side when the other ends its stream.
func proxyConn(client *net.TCPConn, backend string) {
	defer client.Close()
	bc, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	server := bc.(*net.TCPConn)
	defer server.Close()
	var wg sync.WaitGroup
	pipe := func(dst, src *net.TCPConn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		_ = dst.CloseWrite()
		_ = src.CloseRead()
	}
	wg.Add(2)
	go pipe(server, client)
	go pipe(client, server)
	wg.Wait()
}

// forgetNeighbor deletes the neighbour (ARP) entry of ip on the interface
// whose subnet holds it, the container's bridge. It is a cache entry that
// is not usable (no answer yet): nothing but our own next connect needs it.
func forgetNeighbor(ip net.IP) {
	ip4 := ip.To4()
	if ip4 == nil {
		return
	}
	ifindex := 0
	ifcs, _ := net.Interfaces()
	for _, ifc := range ifcs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.Contains(ip4) {
				ifindex = ifc.Index
			}
		}
	}
	if ifindex == 0 {
		return
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	const attrLen = unix.SizeofRtAttr + 4
	msg := make([]byte, unix.SizeofNlMsghdr+unix.SizeofNdMsg+attrLen)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.RTM_DELNEIGH)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST)
	nd := msg[unix.SizeofNlMsghdr:]
	nd[0] = unix.AF_INET
	ne.PutUint32(nd[4:], uint32(ifindex))
	attr := nd[unix.SizeofNdMsg:]
	ne.PutUint16(attr[0:], attrLen)
	ne.PutUint16(attr[2:], unix.NDA_DST)
	copy(attr[unix.SizeofRtAttr:], ip4)
	_ = unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}
