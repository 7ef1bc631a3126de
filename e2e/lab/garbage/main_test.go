package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
)

// target is a heartbeat port stand-in: a UDP socket and a TCP listener
// on one port, counting what arrives.
type target struct {
	addr      string
	udp, conn atomic.Int64
}

func newTarget(t *testing.T) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	tg := &target{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			tg.udp.Add(1)
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.conn.Add(1)
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return tg
}

func TestRun_SendsRateTimesDurationSpreadOverTheTargets(t *testing.T) {
	a, b := newTarget(t), newTarget(t)
	st, err := Run(context.Background(), Config{
		Targets: []string{a.addr, b.addr}, Rate: 400, Duration: 500 * time.Millisecond,
		TCPShare: 0.3, StallMax: 300 * time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 200 || st.UDP+st.TCP != st.Sent {
		t.Fatalf("sent %d (udp %d + tcp %d), want 200 = 400/s × 0.5 s, every TCP connection counted", st.Sent, st.UDP, st.TCP)
	}
	for _, tg := range []*target{a, b} {
		if st.PerTarget[tg.addr] != 100 {
			t.Errorf("%s was sent %d packets, want half of them: %v", tg.addr, st.PerTarget[tg.addr], st.PerTarget)
		}
		if tg.udp.Load() == 0 || tg.conn.Load() == 0 {
			t.Errorf("%s received %d datagrams and %d connections: want both kinds", tg.addr, tg.udp.Load(), tg.conn.Load())
		}
	}
	if st.TCPErrors != 0 {
		t.Errorf("%d TCP connections failed against listeners that accept everything", st.TCPErrors)
	}
}

func TestRun_RefusesAFloodOfNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no targets", Config{Rate: 10, Duration: time.Second}},
		{"no rate", Config{Targets: []string{"127.0.0.1:1"}, Duration: time.Second}},
		{"no duration", Config{Targets: []string{"127.0.0.1:1"}, Rate: 10}},
		{"a secret without a cluster name", Config{Targets: []string{"127.0.0.1:1"}, Rate: 10, Duration: time.Second, Secret: []byte("0123456789abcdef")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tc.cfg); err == nil {
				t.Fatal("Run accepted it")
			}
		})
	}
}

func TestUDPGarbage_CoversTheEdgeSizes(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	var zero, one, huge bool
	for range 1024 {
		b := udpGarbage(rnd)
		switch n := len(b); {
		case n > maxUDP:
			t.Fatalf("a %d-byte payload: no UDP datagram carries it", n)
		case n == 0:
			zero = true
		case n == 1:
			one = true
		case n >= 64000:
			huge = true
		}
	}
	if !zero || !one || !huge {
		t.Fatalf("payloads of 0 bytes: %v, 1 byte: %v, ≥ 64000 bytes: %v; want all", zero, one, huge)
	}
}

// The keyed garbage is worth sending only if the nodes decrypt it: the
// key must be the one core derives for hb#1.
func TestKeyedGarbage_OpensWithTheKeyCoreDerives(t *testing.T) {
	secret := bytes.Repeat([]byte{0xab}, 32)
	path := filepath.Join(t.TempDir(), "cluster.conf")
	conf := "[cluster]\nname = c1\nnodes = n1\nnode = n1\nsecret = " + hex.EncodeToString(secret) + "\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := cluster.LoadNodeConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := DeriveKey(secret, "c1", "hb#1")
	if !bytes.Equal(key, nc.Key("hb#1")) {
		t.Fatal("DeriveKey differs from core/cluster's NodeConfig.Key: the keyed garbage would be refused as undecryptable, not as a damaged frame")
	}
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	rnd := rand.New(rand.NewSource(1))
	for range 100 {
		p := keyedGarbage(s, rnd)
		if p[0] != 1 {
			t.Fatalf("encryption version %d, memberlist's AES-GCM without padding is 1", p[0])
		}
		nonce := p[1 : 1+gcm.NonceSize()]
		plain, err := gcm.Open(nil, nonce, p[1+gcm.NonceSize():], nil)
		if err != nil {
			t.Fatalf("a keyed packet does not open with the key: %v", err)
		}
		switch plain[0] {
		case mlUserMsg, mlHasCrcMsg, mlCompoundMsg:
		default:
			t.Fatalf("a keyed packet carries memberlist message type %d: the garbage forges only frames", plain[0])
		}
	}
}
