// Command garbage floods heartbeat ports with what no node sends: random
// UDP payloads from 0 bytes to the largest datagram, memberlist headers
// and Vigil frames cut short or announcing more than they carry, and TCP
// connections that send garbage, stall, or connect and close. It is the
// sender of `make soak` (bench/soak.sh), run from the lab's client
// namespace against every node's hb#1 port.
//
// The rate is the total over every target, a TCP connection counting as
// one packet; packet i leaves at start + i/rate, so a sender that falls
// behind (a busy host) catches up and the count is exactly rate ×
// duration. With -secret-file, a share of the UDP packets is sealed with
// the heartbeat's own key (derived from the cluster secret as core does)
// around damaged frames: a holder of the key sending broken frames,
// which memberlist decrypts and hands to the frame decoder.
//
// It owns only its sockets: it reads nothing the nodes answer and
// stops when the duration is over, printing one summary line.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	var cfg Config
	var targets, secretFile string
	flag.StringVar(&targets, "targets", "", "comma-separated HOST:PORT heartbeat ports (UDP and TCP on each)")
	flag.IntVar(&cfg.Rate, "rate", 1000, "packets a second over every target; a TCP connection counts as one")
	flag.DurationVar(&cfg.Duration, "duration", time.Minute, "how long to send")
	flag.Float64Var(&cfg.TCPShare, "tcp-share", 0.2, "share of the packets that are TCP connections")
	flag.Float64Var(&cfg.KeyedShare, "keyed-share", 0.1, "share of the UDP packets sealed with the heartbeat key (needs -secret-file)")
	flag.StringVar(&secretFile, "secret-file", "", "the cluster secret (hex), to seal damaged frames with the heartbeat's key")
	flag.StringVar(&cfg.Cluster, "cluster", "", "the cluster's name (the key derivation's context; with -secret-file)")
	flag.StringVar(&cfg.HB, "hb", "hb#1", "the heartbeat section whose key seals the frames")
	flag.DurationVar(&cfg.StallMax, "stall-max", 5*time.Second, "longest a stalling TCP connection is held open")
	flag.IntVar(&cfg.MaxHeld, "max-held", 200, "most stalling TCP connections held open at once (beyond: they close at once)")
	flag.Int64Var(&cfg.Seed, "seed", 0, "random seed (0: from the clock)")
	flag.Parse()
	for _, t := range strings.Split(targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Targets = append(cfg.Targets, t)
		}
	}
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			fatal(fmt.Errorf("read the cluster secret: %w", err))
		}
		if cfg.Secret, err = hex.DecodeString(strings.TrimSpace(string(b))); err != nil {
			fatal(fmt.Errorf("%s holds no hex secret: %w", secretFile, err))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := Run(ctx, cfg)
	fmt.Println(st)
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "garbage:", err)
	os.Exit(1)
}

// Config is one flood.
type Config struct {
	Targets  []string // HOST:PORT, each sent UDP and TCP in turn
	Rate     int      // packets a second over every target
	Duration time.Duration
	// TCPShare is the share of packets that are TCP connections (0.2).
	TCPShare float64
	// KeyedShare is the share of UDP packets sealed with the heartbeat
	// key, when Secret is set (0.1).
	KeyedShare float64
	// Secret, Cluster and HB derive the heartbeat's key, as
	// core/cluster's NodeConfig.Key(HB) does.
	Secret  []byte
	Cluster string
	HB      string
	// StallMax bounds how long a stalling connection is held (5 s);
	// MaxHeld how many are held at once (200), so that the flood never
	// runs this process out of descriptors.
	StallMax time.Duration
	MaxHeld  int
	Seed     int64
}

// Stats is what a flood sent.
type Stats struct {
	Sent, UDP, Keyed, TCP     int64
	UDPErrors, TCPErrors      int64 // sends refused (no listener yet, ICMP), connections not made
	Bytes                     int64
	PerTarget                 map[string]int64
	Elapsed                   time.Duration
	LateMax                   time.Duration // the most a packet left after its time
	HeldMax                   int64         // the most stalling connections open at once
	Sizes0, Sizes1, SizesHuge int64         // UDP payloads of 0, 1 and ≥ 64000 bytes
}

func (s Stats) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Sent) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("garbage: sent=%d udp=%d keyed=%d tcp=%d udp_errors=%d tcp_errors=%d udp_0B=%d udp_1B=%d udp_64KiB=%d bytes=%d elapsed=%.1fs rate=%.1f/s late_max=%s held_max=%d",
		s.Sent, s.UDP, s.Keyed, s.TCP, s.UDPErrors, s.TCPErrors, s.Sizes0, s.Sizes1, s.SizesHuge, s.Bytes,
		s.Elapsed.Seconds(), rate, s.LateMax.Round(time.Millisecond), s.HeldMax)
}

// maxUDP is the largest IPv4 UDP payload.
const maxUDP = 65507

// Run floods cfg.Targets for cfg.Duration (or until ctx ends) and waits
// for its connections to close.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if len(cfg.Targets) == 0 {
		return Stats{}, errors.New("no targets: give -targets HOST:PORT[,HOST:PORT]")
	}
	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		return Stats{}, fmt.Errorf("rate %d/s for %s sends nothing: give a positive -rate and -duration", cfg.Rate, cfg.Duration)
	}
	if cfg.StallMax <= 0 {
		cfg.StallMax = 5 * time.Second
	}
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = 200
	}
	if cfg.HB == "" {
		cfg.HB = "hb#1"
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	rnd := rand.New(rand.NewSource(cfg.Seed))
	var sealer *sealer
	if len(cfg.Secret) > 0 {
		if cfg.Cluster == "" {
			return Stats{}, errors.New("a secret without the cluster's name derives no key: give -cluster")
		}
		s, err := newSealer(DeriveKey(cfg.Secret, cfg.Cluster, cfg.HB))
		if err != nil {
			return Stats{}, err
		}
		sealer = s
	}

	// The garbage is made beforehand: at a thousand packets a second on
	// a busy host, the sender must cost little more than its syscalls.
	udpPool := make([][]byte, 1024)
	for i := range udpPool {
		udpPool[i] = udpGarbage(rnd)
	}
	var keyedPool [][]byte
	if sealer != nil {
		keyedPool = make([][]byte, 512)
		for i := range keyedPool {
			keyedPool[i] = keyedGarbage(sealer, rnd)
		}
	}
	tcpPool := make([]tcpSend, 512)
	for i := range tcpPool {
		tcpPool[i] = tcpGarbage(rnd)
	}

	udp := make([]*net.UDPConn, len(cfg.Targets))
	for i, t := range cfg.Targets {
		raddr, err := net.ResolveUDPAddr("udp", t)
		if err != nil {
			return Stats{}, fmt.Errorf("target %s: %w", t, err)
		}
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return Stats{}, fmt.Errorf("UDP socket to %s: %w", t, err)
		}
		_ = c.SetWriteBuffer(4 << 20)
		defer c.Close()
		udp[i] = c
	}

	st := Stats{PerTarget: map[string]int64{}}
	var tcpN, tcpErr, tcpBytes, held, heldMax atomic.Int64
	var conns sync.WaitGroup
	total := int64(float64(cfg.Rate) * cfg.Duration.Seconds())
	interval := float64(time.Second) / float64(cfg.Rate)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
flood:
	for i := int64(0); i < total; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break flood
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break flood
		}
		if late := time.Since(due); late > st.LateMax {
			st.LateMax = late
		}
		k := int(i % int64(len(cfg.Targets)))
		st.Sent++
		st.PerTarget[cfg.Targets[k]]++
		if rnd.Float64() < cfg.TCPShare {
			ts := tcpPool[rnd.Intn(len(tcpPool))]
			hold := time.Duration(0)
			if ts.stall {
				hold = time.Duration(rnd.Int63n(int64(cfg.StallMax)))
			}
			conns.Add(1)
			go func(target string) {
				defer conns.Done()
				n, err := sendTCP(ctx, target, ts, hold, &held, &heldMax, int64(cfg.MaxHeld))
				tcpBytes.Add(int64(n))
				if err != nil {
					tcpErr.Add(1)
				}
			}(cfg.Targets[k])
			tcpN.Add(1)
			continue
		}
		var b []byte
		if keyedPool != nil && rnd.Float64() < cfg.KeyedShare {
			b = keyedPool[rnd.Intn(len(keyedPool))]
			st.Keyed++
		} else {
			b = udpPool[rnd.Intn(len(udpPool))]
			switch {
			case len(b) == 0:
				st.Sizes0++
			case len(b) == 1:
				st.Sizes1++
			case len(b) >= 64000:
				st.SizesHuge++
			}
		}
		st.UDP++
		// A connected UDP socket reports an earlier ICMP "port
		// unreachable" on a later write: counted, and the flood goes on.
		if _, err := udp[k].Write(b); err != nil {
			st.UDPErrors++
		} else {
			st.Bytes += int64(len(b))
		}
	}
	st.Elapsed = time.Since(start)
	conns.Wait()
	st.TCP, st.TCPErrors, st.HeldMax = tcpN.Load(), tcpErr.Load(), heldMax.Load()
	st.Bytes += tcpBytes.Load()
	return st, ctx.Err()
}

// tcpSend is what one garbage connection does.
type tcpSend struct {
	b     []byte
	reset bool // close with RST (SO_LINGER 0) instead of FIN
	stall bool // hold the connection open after b, a byte now and then
}

// sendTCP connects to target, sends ts.b, holds the connection open for
// hold when ts.stall (unless max connections are held already), and
// closes it. It returns the bytes written.
func sendTCP(ctx context.Context, target string, ts tcpSend, hold time.Duration, held, heldMax *atomic.Int64, max int64) (int, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return 0, err
	}
	tc := c.(*net.TCPConn)
	defer tc.Close()
	if ts.reset {
		_ = tc.SetLinger(0)
	}
	_ = tc.SetWriteDeadline(time.Now().Add(2*time.Second + hold))
	n, err := tc.Write(ts.b)
	if err != nil || !ts.stall || hold <= 0 {
		// The node closing first (it refused the stream) is its
		// business, not an error of the flood's.
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) {
			err = nil
		}
		return n, err
	}
	h := held.Add(1)
	defer held.Add(-1)
	if h > max {
		return n, nil
	}
	for m := heldMax.Load(); h > m && !heldMax.CompareAndSwap(m, h); m = heldMax.Load() {
	}
	// A slow sender: one byte every 250 ms until the hold is over or
	// the node hangs up.
	end := time.Now().Add(hold)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return n, nil
		case <-time.After(min(250*time.Millisecond, time.Until(end))):
		}
		m, err := tc.Write([]byte{0})
		n += m
		if err != nil {
			return n, nil
		}
	}
	return n, nil
}

// memberlist's message types (its net.go), as far as the garbage forges
// them.
const (
	mlCompoundMsg = 7
	mlUserMsg     = 8
	mlEncryptMsg  = 10
	mlHasCrcMsg   = 12
	mlHasLabelMsg = 244
)

// A Vigil frame (plugins/hb-net/frame.go): "VGHB" | version | name
// length | name | dataset length (4, big endian) | dataset.
const frameMagic = "VGHB"

func frame(sender string, dataset []byte) []byte {
	b := append([]byte(frameMagic), 1, byte(len(sender)))
	b = append(b, sender...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(dataset)))
	return append(b, dataset...)
}

func randomOf(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rnd.Read(b)
	return b
}

// udpGarbage is one unkeyed packet: random bytes of the edge sizes, or
// random bytes behind the headers memberlist looks at first, or a
// plaintext Vigil frame cut short or announcing more than it carries
// (plaintext where the key is required).
func udpGarbage(rnd *rand.Rand) []byte {
	body := randomOf(rnd, rnd.Intn(1400))
	good := frame("n2", randomOf(rnd, 64))
	switch rnd.Intn(14) {
	case 0:
		return []byte{}
	case 1:
		return randomOf(rnd, 1)
	case 2: // the largest datagrams, fragmented on the wire
		return randomOf(rnd, 64000+rnd.Intn(maxUDP-64000+1))
	case 3:
		return body
	case 4: // encryption version 1, a nonce, no valid tag
		return append([]byte{1}, body...)
	case 5: // encryption version 0
		return append([]byte{0}, body...)
	case 6: // too short to decrypt
		return []byte{1, 2, 3}
	case 7: // a label header whose length runs past the packet
		return []byte{mlHasLabelMsg, 200, 'x'}
	case 8: // an empty label header
		return append([]byte{mlHasLabelMsg, 0}, body...)
	case 9: // a plaintext frame, truncated
		return append([]byte{mlUserMsg}, good[:rnd.Intn(len(good))]...)
	case 10: // a plaintext frame announcing 4 GiB
		f := append([]byte{mlUserMsg}, good...)
		binary.BigEndian.PutUint32(f[1+len(frameMagic)+2+len("n2"):], 0xFFFFFFFF)
		return f
	case 11: // a compound message whose parts run past its end
		return []byte{mlCompoundMsg, 3, 0, 200, 0, 200, 0, 200, mlUserMsg}
	case 12: // a bad checksum
		return append([]byte{mlHasCrcMsg, 1, 2, 3, 4, mlUserMsg}, good...)
	default: // a big random packet behind a version byte
		return append([]byte{1}, randomOf(rnd, 8000+rnd.Intn(maxUDP-8000))...)
	}
}

// DeriveKey is the heartbeat's key, as core/cluster's NodeConfig.Key
// derives it from the cluster secret.
func DeriveKey(secret []byte, cluster, hb string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("vigil/" + cluster + "/" + hb))
	return m.Sum(nil)
}

// sealer seals a plaintext packet as memberlist does with a key
// (encryption version 1: AES-GCM, no padding, the empty label as
// additional data).
type sealer struct{ gcm cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("heartbeat key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("heartbeat key: %w", err)
	}
	return &sealer{gcm: gcm}, nil
}

func (s *sealer) seal(plain []byte, rnd *rand.Rand) []byte {
	nonce := randomOf(rnd, s.gcm.NonceSize())
	return s.gcm.Seal(append([]byte{1}, nonce...), nonce, plain, nil)
}

// keyedGarbage is a packet sealed with the key around a damaged frame:
// memberlist decrypts it and the frame decoder must refuse it. It never
// forges memberlist's own messages (a holder of the key may send those;
// the soak is about damaged frames, not about a trusted node lying).
func keyedGarbage(s *sealer, rnd *rand.Rand) []byte {
	good := frame("n2", randomOf(rnd, 64))
	var f []byte
	switch rnd.Intn(7) {
	case 0: // truncated
		f = good[:rnd.Intn(len(good))]
	case 1: // announces far more than it carries
		f = append([]byte(nil), good...)
		binary.BigEndian.PutUint32(f[len(frameMagic)+2+len("n2"):], 0xFFFFFFFF)
	case 2: // random bytes behind the magic
		f = append([]byte(frameMagic), randomOf(rnd, rnd.Intn(300))...)
	case 3: // a sender that is not of the cluster, maybe not UTF-8
		f = frame(string(randomOf(rnd, 1+rnd.Intn(255))), []byte("x"))
	case 4: // another frame version
		f = append([]byte(nil), good...)
		f[len(frameMagic)] = 7
	case 5: // a bad checksum around a frame
		return s.seal(append([]byte{mlHasCrcMsg, 1, 2, 3, 4, mlUserMsg}, good...), rnd)
	default: // a compound message whose parts run past its end
		return s.seal([]byte{mlCompoundMsg, 3, 0, 200, 0, 200, 0, 200, mlUserMsg}, rnd)
	}
	return s.seal(append([]byte{mlUserMsg}, f...), rnd)
}

// tcpGarbage is what one garbage connection does.
func tcpGarbage(rnd *rand.Rand) tcpSend {
	switch rnd.Intn(10) {
	case 0: // connect and close
		return tcpSend{}
	case 1: // connect and reset
		return tcpSend{reset: true}
	case 2: // random bytes, most likely "not encrypted"
		return tcpSend{b: randomOf(rnd, 1+rnd.Intn(4096))}
	case 3: // a large random stream
		return tcpSend{b: randomOf(rnd, 64<<10), reset: rnd.Intn(2) == 0}
	case 4: // an encrypted stream announcing more than memberlist accepts
		return tcpSend{b: []byte{mlEncryptMsg, 0xFF, 0xFF, 0xFF, 0xFF}}
	case 5: // an encrypted stream cut short
		return tcpSend{b: append([]byte{mlEncryptMsg, 0, 0, 4, 0}, randomOf(rnd, 10)...)}
	case 6: // an encrypted stream of the announced length, no valid tag
		return tcpSend{b: append([]byte{mlEncryptMsg, 0, 0, 0, 100}, randomOf(rnd, 100)...)}
	case 7: // a label header cut short
		return tcpSend{b: []byte{mlHasLabelMsg, 50, 'x'}}
	case 8: // announces a stream, then stalls
		return tcpSend{b: []byte{mlEncryptMsg, 0, 0, 1, 0}, stall: true}
	default: // connects, says nothing, stalls
		return tcpSend{stall: true}
	}
}
