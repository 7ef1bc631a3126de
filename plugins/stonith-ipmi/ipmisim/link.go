package ipmisim

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Loss says which datagrams a Link drops.
type Loss int32

// What a Link drops.
const (
	// LossNone forwards everything: the BMC answers.
	LossNone Loss = iota
	// LossAnswers forwards the requests and drops the BMC's answers: the
	// BMC acts on what it hears but nobody hears it, as with a firewall
	// rule on the fencing node (the lab's blockBMC) or a one-way cut.
	LossAnswers
	// LossAll drops both ways: a BMC that is down or a link that is cut.
	LossAll
)

// Link is a UDP relay between a fencing driver and a BMC, on its own port
// of 127.0.0.1, that can drop datagrams: the network between a node and a
// BMC, with the BMC itself real. Each client address gets its own
// upstream socket, so the BMC sees one peer per client as it would on a
// LAN.
type Link struct {
	// Host and Port are the address to fence through.
	Host string
	Port int

	bmc     *net.UDPAddr
	conn    *net.UDPConn
	loss    atomic.Int32
	delay   atomic.Int64 // of each answer, in ns
	dropped atomic.Int64
	mu      sync.Mutex
	peers   map[string]*net.UDPConn
	wg      sync.WaitGroup
}

// NewLink starts a relay to b, with loss in force from the start, and stops
// it when the test ends.
func NewLink(t testing.TB, b *BMC, loss Loss) *Link {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{Host: "127.0.0.1", Port: conn.LocalAddr().(*net.UDPAddr).Port,
		bmc: &net.UDPAddr{IP: net.ParseIP(b.Host), Port: b.Port}, conn: conn, peers: map[string]*net.UDPConn{}}
	l.loss.Store(int32(loss))
	l.wg.Add(1)
	go l.serve()
	t.Cleanup(l.close)
	return l
}

// SetLoss changes what the link drops from now on.
func (l *Link) SetLoss(loss Loss) { l.loss.Store(int32(loss)) }

// SetDelay holds each of the BMC's answers for d before passing it on: a
// BMC that answers slowly, but answers.
func (l *Link) SetDelay(d time.Duration) { l.delay.Store(int64(d)) }

// Dropped is the number of datagrams dropped so far, both ways.
func (l *Link) Dropped() int64 { return l.dropped.Load() }

// Keywords is b.Keywords with the link's address in place of the BMC's.
func (l *Link) Keywords(b *BMC, passwordFile string) map[string]string {
	kw := b.Keywords(passwordFile)
	kw["host"], kw["port"] = l.Host, strconv.Itoa(l.Port)
	return kw
}

func (l *Link) serve() {
	defer l.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := l.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if Loss(l.loss.Load()) == LossAll {
			l.dropped.Add(1)
			continue
		}
		up, err := l.upstream(from)
		if err != nil {
			continue
		}
		_, _ = up.Write(buf[:n])
	}
}

// upstream is from's socket to the BMC, made on its first datagram with a
// goroutine carrying the BMC's answers back to from.
func (l *Link) upstream(from *net.UDPAddr) (*net.UDPConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.peers == nil {
		return nil, net.ErrClosed
	}
	if up, ok := l.peers[from.String()]; ok {
		return up, nil
	}
	up, err := net.DialUDP("udp", nil, l.bmc)
	if err != nil {
		return nil, err
	}
	l.peers[from.String()] = up
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				// ECONNREFUSED from an ICMP: the BMC is not listening
				// (yet); its next answer may come.
				continue
			}
			if Loss(l.loss.Load()) != LossNone {
				l.dropped.Add(1)
				continue
			}
			if d := time.Duration(l.delay.Load()); d > 0 {
				answer := bytes.Clone(buf[:n])
				time.AfterFunc(d, func() { _, _ = l.conn.WriteToUDP(answer, from) })
				continue
			}
			_, _ = l.conn.WriteToUDP(buf[:n], from)
		}
	}()
	return up, nil
}

func (l *Link) close() {
	_ = l.conn.Close()
	l.mu.Lock()
	for _, up := range l.peers {
		_ = up.Close()
	}
	l.peers = nil
	l.mu.Unlock()
	l.wg.Wait()
}
