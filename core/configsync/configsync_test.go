package configsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

var (
	testKey  = []byte("configsync-test-key-0123456789ab")
	otherKey = []byte("configsync-other-key-0123456789a")
)

const testCluster = "c1"

// seedDir holds the seed's two service files, unchanged: real configs,
// run_args and all.
const seedDir = "../config/testdata"

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(seedDir, name+".env"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &testWriter{t}})
}

// fileLookup serves the service files of dir (NAME.env) as the daemon
// would serve the configs in force: read at each call, version 7, and
// counts the calls.
type fileLookup struct {
	dir   string
	calls atomic.Int64
	names sync.Map // names looked up
}

func (l *fileLookup) lookup(name string) ([]byte, int64, string, bool) {
	l.calls.Add(1)
	l.names.Store(name, true)
	b, err := os.ReadFile(filepath.Join(l.dir, name+".env"))
	if err != nil {
		return nil, 0, "", false
	}
	return b, 7, sumOf(b), true
}

// startServer serves on a loopback port until the test ends; Close is
// checked to end Serve with nil.
func startServer(t *testing.T, mod func(*Config)) (*Server, string) {
	t.Helper()
	cfg := Config{Key: testKey, Cluster: testCluster, Local: "n1", Logger: testLogger(t),
		Lookup: (&fileLookup{dir: seedDir}).lookup}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func newClient(t *testing.T, mod func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{Key: testKey, Cluster: testCluster, Local: "n2", Timeout: 30 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeServer accepts on a loopback port and runs handle on each
// connection; the connections are closed and the goroutines waited for
// when the test ends. It stands for a hostile or broken peer.
func fakeServer(t *testing.T, handle func(n int, c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(n, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// sendChallenge sends a fresh challenge and reads the request frame.
func sendChallenge(t *testing.T, c net.Conn) (*request, []byte) {
	var chal [nonceLen]byte
	rand.Read(chal[:])
	if err := writeFrame(c, encodeChallenge(chal)); err != nil {
		t.Errorf("fake server: %v", err)
		return nil, nil
	}
	frame, err := readFrame(c, maxRequestFrame)
	if err != nil {
		t.Errorf("fake server: %v", err)
		return nil, nil
	}
	q, err := decodeRequestBody(frame[:len(frame)-macLen])
	if err != nil {
		t.Errorf("fake server: %v", err)
		return nil, nil
	}
	return q, frame
}

// answering is a fake server that skips the request's check and seals
// the reply that mod makes of a faithful one under key.
func answering(t *testing.T, key, content []byte, mod func(*reply)) func(int, net.Conn) {
	return func(_ int, c net.Conn) {
		q, frame := sendChallenge(t, c)
		if q == nil {
			return
		}
		a := reply{Version: 3, Sum: sha256.Sum256(content), Content: content}
		if mod != nil {
			mod(&a)
		}
		writeFrame(c, sealReply(key, frame, q, &a))
		io.Copy(io.Discard, c) // until the client hangs up
	}
}

func TestFetch_ReturnsTheConfigInForce(t *testing.T) {
	_, addr := startServer(t, nil)
	c := newClient(t, nil)
	for _, name := range []string{"registry.opensvc.com", "busybox.opensvc.com"} {
		t.Run(name, func(t *testing.T) {
			want := readSeed(t, name)
			got, version, err := c.Fetch(t.Context(), addr, Request{Service: name, Sum: sumOf(want)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || version != 7 {
				t.Fatalf("got version %d, %d bytes; want version 7, the file's %d bytes", version, len(got), len(want))
			}
		})
	}
	t.Run("a config of MaxSize bytes", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), DefaultMaxSize)
		_, addr := startServer(t, func(cfg *Config) {
			cfg.Lookup = func(string) ([]byte, int64, string, bool) { return big, 1, sumOf(big), true }
		})
		got, _, err := c.Fetch(t.Context(), addr, Request{Service: "big", Sum: sumOf(big)})
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("got %d bytes, %v; want the %d bytes", len(got), err, len(big))
		}
	})
}

func TestFetch_ReplyIsNotInClear(t *testing.T) {
	// The configs carry secrets (run_args -e PASSWORD=...): record what
	// the server sends and look for the file in it.
	content := []byte("[container#1]\nrun_args = -e PASSWORD=hunter2-secret\n")
	_, addr := startServer(t, func(cfg *Config) {
		cfg.Lookup = func(string) ([]byte, int64, string, bool) { return content, 1, sumOf(content), true }
	})
	var seen bytes.Buffer
	var mu sync.Mutex
	proxy := fakeServer(t, func(_ int, c net.Conn) {
		up, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { io.Copy(up, c) })
		mu.Lock()
		defer mu.Unlock()
		io.Copy(io.MultiWriter(c, &seen), up)
		up.Close()
		c.Close()
	})
	got, _, err := newClient(t, nil).Fetch(t.Context(), proxy, Request{Service: "s", Sum: sumOf(content)})
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if bytes.Contains(seen.Bytes(), []byte("hunter2")) {
		t.Fatal("the config's secret crossed the wire in clear")
	}
}

func TestFetch_RefusesAnotherKey(t *testing.T) {
	content := readSeed(t, "busybox.opensvc.com")
	req := Request{Service: "busybox.opensvc.com", Sum: sumOf(content)}
	t.Run("the server refuses a client with another key", func(t *testing.T) {
		l := &fileLookup{dir: seedDir}
		_, addr := startServer(t, func(cfg *Config) { cfg.Lookup = l.lookup })
		_, _, err := newClient(t, func(cfg *ClientConfig) { cfg.Key = otherKey }).Fetch(t.Context(), addr, req)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v, want ErrAuth", err)
		}
		if n := l.calls.Load(); n != 0 {
			t.Fatalf("an unauthenticated request reached Lookup (%d calls)", n)
		}
	})
	t.Run("the client refuses a server with another key", func(t *testing.T) {
		addr := fakeServer(t, answering(t, otherKey, content, nil))
		got, _, err := newClient(t, nil).Fetch(t.Context(), addr, req)
		if !errors.Is(err, ErrAuth) || got != nil {
			t.Fatalf("got %d bytes, %v; want ErrAuth", len(got), err)
		}
	})
	t.Run("the server refuses a client of another cluster", func(t *testing.T) {
		_, addr := startServer(t, nil)
		_, _, err := newClient(t, func(cfg *ClientConfig) { cfg.Cluster = "c2" }).Fetch(t.Context(), addr, req)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
}

// recorder relays a client's first exchange to a real server and records
// its frames; what it does with later connections is up to the test.
type recorder struct {
	mu                        sync.Mutex
	challenge, request, reply []byte
}

func (r *recorder) frames() (challenge, request, reply []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.challenge, r.request, r.reply
}

func (r *recorder) relay(t *testing.T, c net.Conn, addr string) {
	up, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer up.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	pass := func(from, to net.Conn, limit int) []byte {
		f, err := readFrame(from, limit)
		if err == nil {
			err = writeFrame(to, f)
		}
		errs = append(errs, err)
		return f
	}
	r.challenge = pass(up, c, challengeFrameLen)
	r.request = pass(c, up, maxRequestFrame)
	r.reply = pass(up, c, DefaultMaxSize+ReplyOverhead)
	if err := errors.Join(errs...); err != nil {
		t.Errorf("relay: %v", err)
	}
}

func TestFetch_RefusesAReplayedReply(t *testing.T) {
	// A man in the middle records a genuine exchange, then answers the
	// next fetch with the recorded reply, even replaying the challenge so
	// that the client's request differs only by its own nonce.
	_, addr := startServer(t, nil)
	content := readSeed(t, "registry.opensvc.com")
	req := Request{Service: "registry.opensvc.com", Sum: sumOf(content)}
	rec := &recorder{}
	mitm := fakeServer(t, func(n int, c net.Conn) {
		if n == 0 {
			rec.relay(t, c, addr)
			return
		}
		challenge, _, reply := rec.frames()
		writeFrame(c, challenge)
		if _, err := readFrame(c, maxRequestFrame); err != nil {
			t.Error(err)
			return
		}
		writeFrame(c, reply)
		io.Copy(io.Discard, c)
	})
	c := newClient(t, nil)
	if _, _, err := c.Fetch(t.Context(), mitm, req); err != nil {
		t.Fatalf("the relayed fetch: %v", err)
	}
	got, _, err := c.Fetch(t.Context(), mitm, req)
	if !errors.Is(err, ErrAuth) || got != nil {
		t.Fatalf("the replayed reply: got %d bytes, %v; want ErrAuth", len(got), err)
	}
}

func TestServer_RefusesAReplayedRequest(t *testing.T) {
	l := &fileLookup{dir: seedDir}
	_, addr := startServer(t, func(cfg *Config) { cfg.Lookup = l.lookup })
	content := readSeed(t, "registry.opensvc.com")
	rec := &recorder{}
	proxy := fakeServer(t, func(_ int, c net.Conn) { rec.relay(t, c, addr) })
	if _, _, err := newClient(t, nil).Fetch(t.Context(), proxy, Request{Service: "registry.opensvc.com", Sum: sumOf(content)}); err != nil {
		t.Fatalf("the relayed fetch: %v", err)
	}
	calls := l.calls.Load()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := readFrame(c, challengeFrameLen); err != nil {
		t.Fatal(err)
	}
	_, recorded, _ := rec.frames()
	if err := writeFrame(c, recorded); err != nil {
		t.Fatal(err)
	}
	f, err := readFrame(c, DefaultMaxSize+ReplyOverhead)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := decodeRefusal(f); err != nil || code != refuseAuth {
		t.Fatalf("the replayed request got a %q frame (%v), want an authentication refusal", kindOf(f), err)
	}
	if l.calls.Load() != calls {
		t.Fatal("the replayed request reached Lookup")
	}
}

func TestFetch_RefusesAChecksumMismatch(t *testing.T) {
	content := readSeed(t, "registry.opensvc.com")
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
		sum  string
	}{
		{"the peer has another version than the one asked for", func(t *testing.T) string {
			_, addr := startServer(t, nil)
			return addr
		}, sumOf([]byte("an older version"))},
		{"the peer's config does not match its own checksum", func(t *testing.T) string {
			_, addr := startServer(t, func(cfg *Config) {
				cfg.Lookup = func(string) ([]byte, int64, string, bool) { return content, 1, sumOf([]byte("other")), true }
			})
			return addr
		}, sumOf([]byte("other"))},
		{"an authentic reply whose content does not hash to the sum", func(t *testing.T) string {
			return fakeServer(t, answering(t, testKey, content, func(a *reply) {
				a.Content = append(bytes.Clone(content), '\n')
			}))
		}, sumOf(content)},
		{"an authentic reply naming another sum", func(t *testing.T) string {
			return fakeServer(t, answering(t, testKey, content, func(a *reply) { a.Sum[0] ^= 1 }))
		}, sumOf(content)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := newClient(t, nil).Fetch(t.Context(), tc.addr(t), Request{Service: "registry.opensvc.com", Sum: tc.sum})
			if !errors.Is(err, ErrSumMismatch) || got != nil {
				t.Fatalf("got %d bytes, %v; want ErrSumMismatch", len(got), err)
			}
		})
	}
}

func TestFetch_UnknownServiceIsNotFound(t *testing.T) {
	_, addr := startServer(t, nil)
	_, _, err := newClient(t, nil).Fetch(t.Context(), addr, Request{Service: "nosuch", Sum: sumOf(nil)})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func TestFetch_RefusesABadName(t *testing.T) {
	l := &fileLookup{dir: seedDir}
	_, addr := startServer(t, func(cfg *Config) { cfg.Lookup = l.lookup })
	c := newClient(t, nil)
	for _, name := range []string{"../x", "cluster", "node", "a/b", ".hidden", "-x", "x\x00y", "..", strings.Repeat("a", 251)} {
		label := fmt.Sprintf("%q", name)
		if len(name) > 20 {
			label = fmt.Sprintf("a name of %d bytes", len(name))
		}
		t.Run(label, func(t *testing.T) {
			// The client refuses to ask (no connection is made: the
			// address is a closed port's)...
			_, _, err := c.Fetch(t.Context(), "127.0.0.1:1", Request{Service: name, Sum: sumOf(nil)})
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("client: got %v, want ErrBadName", err)
			}
			// ... and the server refuses it from a client that would.
			_, _, err = c.fetch(t.Context(), addr, name, sha256.Sum256(nil))
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("server: got %v, want ErrBadName", err)
			}
			if _, ok := l.names.Load(name); ok {
				t.Fatal("the bad name reached Lookup")
			}
		})
	}
	t.Run("a sum that is not a hex sha256", func(t *testing.T) {
		for _, sum := range []string{"", "abc", strings.Repeat("zz", 32), sumOf(nil) + "00"} {
			if _, _, err := c.Fetch(t.Context(), addr, Request{Service: "registry.opensvc.com", Sum: sum}); err == nil {
				t.Fatalf("sum %q taken", sum)
			}
		}
	})
}

// announce is a fake server that sends a frame length and nothing more
// at the given step (0: in place of the challenge, 1: of the reply), then
// waits for the client to hang up.
func announce(t *testing.T, step int, n uint32) func(int, net.Conn) {
	return func(_ int, c net.Conn) {
		if step == 1 && sendChallengeOnly(t, c) != nil {
			return
		}
		c.Write(binary.BigEndian.AppendUint32(nil, n))
		io.Copy(io.Discard, c)
	}
}

func sendChallengeOnly(t *testing.T, c net.Conn) error {
	if q, _ := sendChallenge(t, c); q == nil {
		return errors.New("no request")
	}
	return nil
}

func TestFetch_RefusesAnOversizedLength(t *testing.T) {
	big := bytes.Repeat([]byte("y"), 4096)
	for _, tc := range []struct {
		name    string
		addr    func(t *testing.T) string
		maxSize int64
		want    error
	}{
		{"a reply announcing more than MaxSize", func(t *testing.T) string {
			return fakeServer(t, announce(t, 1, DefaultMaxSize+ReplyOverhead+1))
		}, 0, ErrTooLarge},
		{"a reply announcing 4 GiB", func(t *testing.T) string {
			return fakeServer(t, announce(t, 1, 0xffffffff))
		}, 0, ErrTooLarge},
		{"a challenge announcing a large frame", func(t *testing.T) string {
			return fakeServer(t, announce(t, 0, 1<<20))
		}, 0, ErrMalformed},
		{"a reply larger than the client's MaxSize", func(t *testing.T) string {
			_, addr := startServer(t, func(cfg *Config) {
				cfg.Lookup = func(string) ([]byte, int64, string, bool) { return big, 1, sumOf(big), true }
			})
			return addr
		}, 1024, ErrTooLarge},
		{"a config larger than the server's MaxSize", func(t *testing.T) string {
			_, addr := startServer(t, func(cfg *Config) {
				cfg.MaxSize = 1024
				cfg.Lookup = func(string) ([]byte, int64, string, bool) { return big, 1, sumOf(big), true }
			})
			return addr
		}, 0, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The fake servers never send the frame they announce: a
			// client that tried to read it would time out, after a minute.
			c := newClient(t, func(cfg *ClientConfig) { cfg.MaxSize, cfg.Timeout = tc.maxSize, 10*time.Second })
			got, _, err := c.Fetch(t.Context(), tc.addr(t), Request{Service: "s", Sum: sumOf(big)})
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %d bytes, %v; want %v", len(got), err, tc.want)
			}
		})
	}
	t.Run("the server refuses a request announcing 4 GiB", func(t *testing.T) {
		_, addr := startServer(t, func(cfg *Config) { cfg.HandshakeTimeout = time.Minute })
		c := dialRaw(t, addr)
		c.Write([]byte{0xff, 0xff, 0xff, 0xff})
		f, err := readFrame(c, 64)
		if err != nil {
			t.Fatalf("no refusal: %v", err)
		}
		if code, err := decodeRefusal(f); err != nil || code != refuseMalformed {
			t.Fatalf("got code %d, %v; want a malformed refusal", code, err)
		}
	})
}

// dialRaw connects to addr and reads the challenge; the connection ends
// with the test.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := readFrame(c, challengeFrameLen); err != nil {
		t.Fatalf("read the challenge: %v", err)
	}
	return c
}

// goodFetch fetches a seed file from addr.
func goodFetch(t *testing.T, addr string) error {
	t.Helper()
	content := readSeed(t, "busybox.opensvc.com")
	got, _, err := newClient(t, nil).Fetch(t.Context(), addr, Request{Service: "busybox.opensvc.com", Sum: sumOf(content)})
	if err == nil && !bytes.Equal(got, content) {
		err = errors.New("wrong content")
	}
	return err
}

func TestServer_SlowClientsDoNotStallOthers(t *testing.T) {
	t.Run("a fetch is served while slow connections hold their handshakes", func(t *testing.T) {
		_, addr := startServer(t, func(cfg *Config) { cfg.HandshakeTimeout, cfg.MaxConns = time.Hour, 4 })
		for range 3 {
			c := dialRaw(t, addr) // the challenge read: the server is in its handshake
			c.Write([]byte{0, 0}) // half a length, and nothing more
		}
		if err := goodFetch(t, addr); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a slow connection is cut at the handshake timeout", func(t *testing.T) {
		_, addr := startServer(t, func(cfg *Config) { cfg.HandshakeTimeout = 100 * time.Millisecond })
		c := dialRaw(t, addr)
		c.Write([]byte{0, 0, 0, 100, 'V'})
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("the server did not close the connection: %v", err)
		}
	})
	t.Run("connections over MaxConns are closed at once", func(t *testing.T) {
		_, addr := startServer(t, func(cfg *Config) { cfg.HandshakeTimeout, cfg.MaxConns = time.Hour, 2 })
		slow := []net.Conn{dialRaw(t, addr), dialRaw(t, addr)}
		if err := goodFetch(t, addr); err == nil {
			t.Fatal("a third connection was served")
		}
		for _, c := range slow {
			c.Close()
		}
		// The slots free once the server sees the hang-ups.
		var err error
		for range 100 {
			if err = goodFetch(t, addr); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no slot freed by the hang-ups: %v", err)
	})
}

func TestServer_SurvivesGarbage(t *testing.T) {
	_, addr := startServer(t, func(cfg *Config) { cfg.HandshakeTimeout = time.Minute })
	content := readSeed(t, "busybox.opensvc.com")
	valid, err := encodeRequest(requestKey(testKey), &request{Cluster: testCluster, Node: "n2", Service: "busybox.opensvc.com", Sum: sha256.Sum256(content)})
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 4096)
	rand.Read(random)
	frame := func(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	flipped := bytes.Clone(valid)
	flipped[headerLen+3] ^= 0x40
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"random bytes", random},
		{"an empty frame", frame(nil)},
		{"a header of another kind", frame(header(kindReply))},
		{"another protocol version", frame(append([]byte("VGCS\x02Q"), valid[headerLen:]...))},
		{"a request for another challenge", frame(valid)},
		{"a request with a flipped bit", frame(flipped)},
		{"a truncated request", frame(valid)[:40]},
		{"a request with names longer than they claim", frame(append(valid[:headerLen+2*nonceLen], 200, 'x'))},
		{"an HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.Write(tc.data)
			c.(*net.TCPConn).CloseWrite()
			rest, _ := io.ReadAll(c) // a refusal, or nothing
			if f, err := readFrame(bytes.NewReader(rest), 64); err == nil && kindOf(f) != kindRefusal {
				t.Fatalf("garbage got a %q frame", kindOf(f))
			}
			if err := goodFetch(t, addr); err != nil {
				t.Fatalf("the server stopped serving: %v", err)
			}
		})
	}
}

func TestFetch_StopsWhenTheContextEnds(t *testing.T) {
	accepted := make(chan struct{})
	addr := fakeServer(t, func(_ int, c net.Conn) {
		close(accepted)
		io.Copy(io.Discard, c) // never a challenge
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-accepted
		cancel()
	}()
	_, _, err := newClient(t, func(cfg *ClientConfig) { cfg.Timeout = time.Hour }).Fetch(ctx, addr, Request{Service: "s", Sum: sumOf(nil)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// watchdog runs wait and fails the test, with every goroutine's stack,
// if it has not returned after a minute: a hang, not a slow machine.
func watchdog(t *testing.T, what string, wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		buf := make([]byte, 1<<20)
		t.Fatalf("still waiting for %s after a minute:\n%s", what, buf[:runtime.Stack(buf, true)])
	}
}

// goroutinesBackTo waits for the goroutine count to fall back to n: the
// goroutines that closed connections on the way out may still be ending.
func goroutinesBackTo(t *testing.T, n int) {
	t.Helper()
	for range 200 {
		if runtime.NumGoroutine() <= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
}

func TestServer_CloseStopsEverything(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(s *Server, cancel context.CancelFunc)
	}{
		{"Close", func(s *Server, _ context.CancelFunc) { s.Close() }},
		{"the end of Serve's context", func(_ *Server, cancel context.CancelFunc) { cancel() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			s, err := NewServer(Config{Key: testKey, Cluster: testCluster, Local: "n1", Logger: testLogger(t),
				Lookup: (&fileLookup{dir: seedDir}).lookup, HandshakeTimeout: time.Hour, Timeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var serving sync.WaitGroup
			var addrs []string
			for range 2 {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addrs = append(addrs, ln.Addr().String())
				serving.Go(func() {
					if err := s.Serve(ctx, ln); err != nil {
						t.Errorf("Serve: %v", err)
					}
				})
			}
			var slow []net.Conn
			for _, addr := range addrs {
				if err := goodFetch(t, addr); err != nil {
					t.Fatal(err)
				}
				slow = append(slow, dialRaw(t, addr), dialRaw(t, addr))
			}

			// The slow connections' deadlines are an hour away: only the
			// stop itself can end them.
			watchdog(t, "the server to stop", func() {
				tc.stop(s, cancel)
				serving.Wait()
			})
			for _, c := range slow {
				if _, err := io.Copy(io.Discard, c); err != nil {
					t.Fatalf("a connection outlived the server: %v", err)
				}
				c.Close()
			}
			for _, addr := range addrs {
				if err := goodFetch(t, addr); err == nil {
					t.Fatalf("%s still serves", addr)
				}
			}
			s.Close()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Serve(t.Context(), ln); !errors.Is(err, ErrServerClosed) {
				t.Fatalf("Serve after Close: %v, want ErrServerClosed", err)
			}
			goroutinesBackTo(t, before)
		})
	}
}

func TestNewServer_RefusesAnIncompleteConfig(t *testing.T) {
	lookup := (&fileLookup{dir: seedDir}).lookup
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{Cluster: testCluster, Lookup: lookup}},
		{"a short key", Config{Key: []byte("short"), Cluster: testCluster, Lookup: lookup}},
		{"no cluster", Config{Key: testKey, Lookup: lookup}},
		{"no lookup", Config{Key: testKey, Cluster: testCluster}},
		{"MaxSize over the protocol's", Config{Key: testKey, Cluster: testCluster, Lookup: lookup, MaxSize: MaxMaxSize + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewServer(tc.cfg); err == nil {
				t.Fatal("taken")
			}
		})
	}
}

func TestReply_OpensOnlyForItsExchange(t *testing.T) {
	// What a key holder sealed for one exchange opens for no other: not
	// for another client nonce under the same challenge, nor for another
	// request carrying the same nonces.
	reqKey := requestKey(testKey)
	q := &request{Cluster: testCluster, Node: "n2", Service: "a", Sum: sha256.Sum256([]byte("x"))}
	rand.Read(q.Challenge[:])
	rand.Read(q.Nonce[:])
	frame, err := encodeRequest(reqKey, q)
	if err != nil {
		t.Fatal(err)
	}
	sealed := sealReply(testKey, frame, q, &reply{Sum: q.Sum, Content: []byte("x")})
	if a, err := openReply(testKey, frame, q, sealed); err != nil || string(a.Content) != "x" {
		t.Fatalf("its own exchange: %+v, %v", a, err)
	}
	otherNonce := *q
	otherNonce.Nonce[0] ^= 1
	otherService := *q
	otherService.Service = "b"
	otherFrame, err := encodeRequest(reqKey, &otherService)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte // the associated data
		q     *request
	}{
		// The same associated data: only the key, from the nonces, differs.
		{"another client nonce", frame, &otherNonce},
		// The same key: only the associated data, the request, differs.
		{"another request, the same nonces", otherFrame, &otherService},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := openReply(testKey, tc.frame, tc.q, sealed); !errors.Is(err, ErrAuth) {
				t.Fatalf("opened: %v", err)
			}
		})
	}
}
