package hbnet

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"math/rand"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// How long and how hard the garbage test floods a node. The rates are
// what the test aims at (it logs what it reached), a quarter of them
// under the race detector: high for a heartbeat port, yet within what
// this test's process can take in on a busy 2-core host, where other
// tests compete for the cores. A flood beyond
// what the host can read makes the kernel drop beats along with the
// garbage; no plugin can help that.
const (
	floodFor     = 3 * time.Second
	floodPackets = 3000 // unkeyed UDP packets a second
	floodKeyed   = 300  // sealed damaged messages a second
	floodConns   = 1000 // garbage TCP connections a second
)

// memberlist's message types (net.go), as far as the test forges them.
const (
	mlCompoundMsg = 7
	mlUserMsg     = 8
	mlEncryptMsg  = 10
	mlHasCrcMsg   = 12
	mlHasLabelMsg = 244
)

// memberlistSealer seals a plaintext packet as memberlist does with a
// key and protocol 5 (encryption version 1: AES-GCM, no padding, the
// empty label as additional data). It lets the test speak as a holder of
// the cluster key that sends damaged frames; the test first checks a
// packet sealed so is decrypted by a real node.
type memberlistSealer struct{ gcm cipher.AEAD }

func newMemberlistSealer(t *testing.T, key []byte) memberlistSealer {
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return memberlistSealer{gcm: gcm}
}

func (s memberlistSealer) seal(plain []byte, rnd *rand.Rand) []byte {
	nonce := make([]byte, s.gcm.NonceSize())
	rnd.Read(nonce)
	return s.gcm.Seal(append([]byte{1}, nonce...), nonce, plain, nil)
}

// randomOf returns n bytes from rnd.
func randomOf(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rnd.Read(b)
	return b
}

// udpGarbage returns one packet of unkeyed garbage: random bytes, or
// random bytes behind a header memberlist looks at first.
func udpGarbage(rnd *rand.Rand) []byte {
	body := randomOf(rnd, rnd.Intn(1400))
	switch rnd.Intn(6) {
	case 0:
		return body
	case 1: // encryption version 1, a nonce, no valid tag
		return append([]byte{1}, body...)
	case 2: // encryption version 0
		return append([]byte{0}, body...)
	case 3: // too short to decrypt
		return []byte{1, 2, 3}
	case 4: // a label header whose length runs past the packet
		return []byte{mlHasLabelMsg, 200, 'x'}
	default: // an empty label header
		return append([]byte{mlHasLabelMsg, 0}, body...)
	}
}

// keyedGarbage returns a packet sealed with the key whose content is
// damaged: memberlist decrypts it and hands the frame, or its own
// message, to be refused.
func keyedGarbage(s memberlistSealer, rnd *rand.Rand) []byte {
	good := encodeFrame("n2", []byte("a dataset"))
	var frame []byte
	switch rnd.Intn(8) {
	case 0: // truncated
		frame = good[:rnd.Intn(len(good))]
	case 1: // announces far more than it carries
		frame = append([]byte(nil), good...)
		binary.BigEndian.PutUint32(frame[len(frameMagic)+2+len("n2"):], 0xFFFFFFFF)
	case 2: // random bytes behind the magic
		frame = append([]byte(frameMagic), randomOf(rnd, rnd.Intn(300))...)
	case 3: // a sender name that is not UTF-8, not of the cluster
		frame = encodeFrame(string(randomOf(rnd, 1+rnd.Intn(maxNameLen))), []byte("x"))
	case 4: // another frame version
		frame = append([]byte(nil), good...)
		frame[len(frameMagic)] = 7
	case 5: // a bad checksum around a frame
		return s.seal(append([]byte{mlHasCrcMsg, 1, 2, 3, 4, mlUserMsg}, good...), rnd)
	case 6: // a compound message whose parts run past its end
		return s.seal([]byte{mlCompoundMsg, 3, 0, 200, 0, 200, 0, 200, mlUserMsg}, rnd)
	default: // any memberlist message type, random body
		return s.seal(append([]byte{byte(rnd.Intn(14))}, randomOf(rnd, rnd.Intn(200))...), rnd)
	}
	return s.seal(append([]byte{mlUserMsg}, frame...), rnd)
}

// tcpGarbage returns what one garbage connection sends, and whether it
// then holds the connection open (a sender that stalls).
func tcpGarbage(rnd *rand.Rand) (b []byte, hold bool) {
	switch rnd.Intn(7) {
	case 0: // random bytes, most likely "not encrypted"
		return randomOf(rnd, rnd.Intn(4096)), false
	case 1: // an encrypted stream announcing more than memberlist accepts
		return []byte{mlEncryptMsg, 0xFF, 0xFF, 0xFF, 0xFF}, false
	case 2: // an encrypted stream cut short
		return append([]byte{mlEncryptMsg, 0, 0, 4, 0}, randomOf(rnd, 10)...), false
	case 3: // an encrypted stream of the announced length, no valid tag
		return append([]byte{mlEncryptMsg, 0, 0, 0, 100}, randomOf(rnd, 100)...), false
	case 4: // a label header cut short
		return []byte{mlHasLabelMsg, 50, 'x'}, false
	case 5: // an empty label header
		return []byte{mlHasLabelMsg, 0, mlEncryptMsg}, false
	default: // announces a stream, then stalls
		return []byte{mlEncryptMsg, 0, 0, 1, 0}, true
	}
}

// rejectReasonRE is the form core counts rejects by: a fixed class
// word, then the details.
var rejectReasonRE = regexp.MustCompile(`^([a-z_]+): \S`)

var rejectClasses = map[string]bool{
	rejectBadTag: true, rejectUnencrypted: true, rejectMalformed: true, rejectForeign: true, rejectDupName: true,
}

func TestCluster_GarbageOnTheWireIsRejectedWhileBeatsFlow(t *testing.T) {
	c := newTestCluster(t, "n1", "n2")
	// Room for the flood's share of a busy host (-race, 2 cores): the
	// test is about garbage not stopping beats, not about the shortest
	// timeout, which the other tests cover.
	c.timeout = 5 * testInterval
	nodes := []string{"n1", "n2"}
	n1 := c.start("n1", testKey, nodes)
	n2 := c.start("n2", testKey, nodes)
	n1.publish([]byte("one"))
	n2.publish([]byte("two"))
	n1.rec.await(t, 0, "n2's dataset at n1", anyBeatFrom("n2"))
	n2.rec.await(t, 0, "n1's dataset at n2", anyBeatFrom("n1"))
	target := c.addrs["n1"]

	// The forged sealing is memberlist's: a sealed frame from a name not
	// in the cluster is decrypted and refused as foreign.
	rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
	sealer := newMemberlistSealer(t, testKey)
	probe, err := net.Dial("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	mark1, mark2 := n1.rec.mark(), n2.rec.mark()
	if _, err := probe.Write(sealer.seal(append([]byte{mlUserMsg}, encodeFrame("mallory", []byte("x"))...), rnd)); err != nil {
		t.Fatal(err)
	}
	n1.rec.await(t, mark1, "n1 refusing a sealed frame from mallory", func(e sdk.HeartbeatEvent) bool {
		return e.Kind == sdk.EventReject && strings.HasPrefix(e.Reason, rejectForeign+": ") && strings.Contains(e.Reason, `"mallory"`)
	})

	// The garbage is made beforehand, so the senders, which share this
	// process and its cores with the nodes, cost little more than the
	// system calls.
	udpPool, keyedPool := make([][]byte, 512), make([][]byte, 512)
	for i := range udpPool {
		udpPool[i], keyedPool[i] = udpGarbage(rnd), keyedGarbage(sealer, rnd)
	}
	type tcpSend struct {
		b    []byte
		hold bool
	}
	tcpPool := make([]tcpSend, 256)
	for i := range tcpPool {
		tcpPool[i].b, tcpPool[i].hold = tcpGarbage(rnd)
	}
	scale := 1
	if raceEnabled {
		scale = 4 // the race detector slows the nodes several times
	}

	ctx, stop := context.WithTimeout(context.Background(), floodFor)
	defer stop()
	var wg sync.WaitGroup
	var packets, keyed, conns atomic.Int64
	flood := func(f func(rnd *rand.Rand)) {
		seed := rnd.Int63()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for ctx.Err() == nil {
				f(r)
			}
		}()
	}
	// paced sends by f at rate a second, in bursts: each round sends
	// what the rate allows by now.
	paced := func(rate int, f func(r *rand.Rand)) {
		start, sent := time.Now(), 0
		flood(func(r *rand.Rand) {
			for due := int(time.Since(start).Seconds() * float64(rate)); sent < due; sent++ {
				f(r)
			}
			time.Sleep(time.Millisecond)
		})
	}
	// UDP from several source ports.
	const udpSenders = 4
	for range udpSenders {
		conn, err := net.Dial("udp", target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		paced(floodPackets/udpSenders/scale, func(r *rand.Rand) {
			if _, err := conn.Write(udpPool[r.Intn(len(udpPool))]); err == nil {
				packets.Add(1)
			}
		})
	}
	// Sealed damaged frames: fewer, since each one costs a decryption
	// and a place in memberlist's message queue, as a peer's would.
	kconn, err := net.Dial("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kconn.Close() })
	paced(floodKeyed/scale, func(r *rand.Rand) {
		if _, err := kconn.Write(keyedPool[r.Intn(len(keyedPool))]); err == nil {
			keyed.Add(1)
		}
	})
	var held sync.WaitGroup // stalled connections, closed when the flood ends
	const dialers = 2       // a stalled dial must not stop the flood
	for range dialers {
		paced(floodConns/dialers/scale, func(r *rand.Rand) {
			conn, err := net.DialTimeout("tcp", target, time.Second)
			if err != nil {
				return
			}
			conns.Add(1)
			send := tcpPool[r.Intn(len(tcpPool))]
			b, hold := send.b, send.hold
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write(b)
			if hold {
				held.Add(1)
				go func() {
					defer held.Done()
					<-ctx.Done()
					conn.Close()
				}()
				return
			}
			conn.(*net.TCPConn).SetLinger(0) // no TIME_WAIT pile-up
			conn.Close()
		})
	}

	// Beats keep flowing both ways: a new dataset each half second
	// arrives while the flood goes on.
	for i := 0; ctx.Err() == nil; i++ {
		ds1, ds2 := fmt.Appendf(nil, "one #%d", i), fmt.Appendf(nil, "two #%d", i)
		n1.publish(ds1)
		n2.publish(ds2)
		n2.rec.await(t, mark2, fmt.Sprintf("n1's dataset #%d at n2 during the flood", i), beatFrom("n1", ds1))
		n1.rec.await(t, mark1, fmt.Sprintf("n2's dataset #%d at flooded n1", i), beatFrom("n2", ds2))
		time.Sleep(500 * time.Millisecond)
	}
	wg.Wait()
	held.Wait()
	t.Logf("sent %d garbage packets, %d sealed damaged messages, %d garbage connections in %s", packets.Load(), keyed.Load(), conns.Load(), floodFor)

	// And after it: the flooded node is not stuck.
	n2.publish([]byte("two, after"))
	n1.rec.await(t, mark1, "n2's dataset at n1 after the flood", beatFrom("n2", []byte("two, after")))

	for _, n := range []*testNode{n1, n2} {
		from := map[string]int{"n1": mark1, "n2": mark2}[n.name]
		if e, ok := n.rec.find(from, func(e sdk.HeartbeatEvent) bool { return e.Kind == sdk.EventStale }); ok {
			t.Errorf("%s: %s reported stale during the flood (%q)", n.name, e.Peer, e.Reason)
		}
	}

	seen, total := map[string]int{}, 0
	n1.rec.mu.Lock()
	events := append([]sdk.HeartbeatEvent(nil), n1.rec.events[mark1:]...)
	n1.rec.mu.Unlock()
	for _, e := range events {
		if e.Kind != sdk.EventReject {
			continue
		}
		total++
		if !utf8.ValidString(e.Peer) || !utf8.ValidString(e.Reason) {
			t.Errorf("reject not valid UTF-8 (core's wire is protobuf strings): peer %q, reason %q", e.Peer, e.Reason)
		}
		m := rejectReasonRE.FindStringSubmatch(e.Reason)
		if m == nil || !rejectClasses[m[1]] {
			t.Errorf("reject reason %q does not begin with a reject class and \": \"", e.Reason)
			continue
		}
		seen[m[1]]++
	}
	t.Logf("rejects at n1 by class: %v", seen)
	for _, class := range []string{rejectBadTag, rejectUnencrypted, rejectMalformed, rejectForeign} {
		if seen[class] == 0 {
			t.Errorf("no %s reject at n1 during the flood", class)
		}
	}
	// Rate limited once a second per class, place and cluster node (or
	// class and place alone): garbage reaches about 15 such keys,
	// whatever the number of senders and of names they claim.
	limit := 15 * (int(floodFor/time.Second) + 2)
	if total > limit {
		t.Errorf("%d rejects at n1, want at most %d: a flood of senders must not flood core", total, limit)
	}
}
