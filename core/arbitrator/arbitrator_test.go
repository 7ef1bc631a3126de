package arbitrator

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/config"
)

var testKey = Key([]byte("0123456789abcdef0123456789abcdef"), "c1")

// fakeClock is the server's clock in the decision tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1000, 0)} }
func req(node string, set ...string) *Request {
	return &Request{Cluster: "c1", Node: node, Set: NormalizeSet(set)}
}

func newTestServer(t *testing.T, clk *fakeClock, nodes ...string) *Server {
	t.Helper()
	s, err := NewServer(ServerConfig{Cluster: "c1", Key: testKey, Nodes: nodes, Lease: time.Second, Now: clk.now,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "arbitrator", Level: hclog.Debug, Output: &testWriter{t}})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestServer_GrantsOneSideAtATime(t *testing.T) {
	type step struct {
		after time.Duration // advance the clock first
		q     *Request
		want  bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"both nodes of a healthy cluster hold the vote for their common set", []step{
			{0, req("a", "a", "b"), true},
			{0, req("b", "a", "b"), true},
			{500 * time.Millisecond, req("a", "a", "b"), true},
		}},
		{"split one-one: the side that asks first wins, the other is denied", []step{
			{0, req("a", "a"), true},
			{0, req("b", "b"), false},
			{900 * time.Millisecond, req("b", "b"), false},
		}},
		{"the other side gets the vote once the first's lease expired", []step{
			{0, req("a", "a"), true},
			{0, req("b", "b"), false},
			{time.Second, req("b", "b"), true},
			{0, req("a", "a"), false},
		}},
		{"renewing keeps the vote past the first lease", []step{
			{0, req("a", "a"), true},
			{700 * time.Millisecond, req("a", "a"), true},
			{700 * time.Millisecond, req("b", "b"), false},
		}},
		{"after a split, the old common grant blocks both sides until it expires", []step{
			{0, req("a", "a", "b"), true},
			{0, req("b", "a", "b"), true},
			{100 * time.Millisecond, req("a", "a"), false},
			{0, req("b", "b"), false},
			{time.Second, req("b", "b"), true},
			{0, req("a", "a"), false},
		}},
		{"a node asking for another set than its own grant waits for it to expire", []step{
			{0, req("a", "a"), true},
			{0, req("a", "a", "b"), false},
			{time.Second, req("a", "a", "b"), true},
		}},
		{"a node may join the holders of the same set", []step{
			{0, req("a", "a", "b", "c"), true},
			{0, req("c", "a", "b", "c"), true},
		}},
		{"a holder outside the requester's set blocks it even for an equal-looking side", []step{
			{0, req("c", "b", "c"), true},
			{0, req("a", "a", "b"), false},
		}},
		{"a set without the requester is denied", []step{
			{0, req("a", "b"), false},
		}},
		{"a node outside the cluster is denied", []step{
			{0, req("x", "x"), false},
			{0, req("a", "a", "x"), false},
		}},
		{"another cluster's request is denied", []step{
			{0, &Request{Cluster: "c2", Node: "a", Set: []string{"a"}}, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			s := newTestServer(t, clk, "a", "b", "c")
			clk.add(time.Second) // past the start's quiet lease
			for i, st := range tc.steps {
				clk.add(st.after)
				if got := s.decide(clk.now(), st.q); got.Granted != st.want {
					t.Fatalf("step %d: %s for %v: granted %v (%s), want %v", i, st.q.Node, st.q.Set, got.Granted, got.Reason, st.want)
				}
			}
		})
	}
}

func TestServer_GrantsNothingForOneLeaseAfterStart(t *testing.T) {
	clk := newFakeClock()
	s := newTestServer(t, clk)
	if got := s.decide(clk.now(), req("a", "a")); got.Granted || !strings.Contains(got.Reason, "forgot") {
		t.Fatalf("just started: granted %v (%s), want a denial saying why", got.Granted, got.Reason)
	}
	clk.add(time.Second)
	if got := s.decide(clk.now(), req("a", "a")); !got.Granted {
		t.Fatalf("one lease after the start: denied (%s)", got.Reason)
	}
}

func TestVote_CountsOnlyUnexpiredForTheSameSet(t *testing.T) {
	v := Vote{Granted: true, Set: []string{"a", "b"}, Until: 10 * time.Second}
	for _, tc := range []struct {
		name string
		now  time.Duration
		set  []string
		want bool
	}{
		{"before its end, same set", 9 * time.Second, []string{"a", "b"}, true},
		{"at its end", 10 * time.Second, []string{"a", "b"}, false},
		{"a smaller set (the side split)", 9 * time.Second, []string{"a"}, false},
		{"a larger set (the side grew)", 9 * time.Second, []string{"a", "b", "c"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := v.Valid(tc.now, tc.set); got != tc.want {
				t.Fatalf("Valid = %v, want %v", got, tc.want)
			}
		})
	}
	if (Vote{Set: []string{"a"}, Until: time.Hour}).Valid(0, []string{"a"}) {
		t.Fatal("a denial counts")
	}
}

func TestWire_RejectsAlteredOrForeignFrames(t *testing.T) {
	q := req("a", "a", "b")
	q.Nonce[0] = 7
	good, err := EncodeRequest(testKey, q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequest(testKey, good)
	if err != nil || got.Node != "a" || !slices.Equal(got.Set, q.Set) || got.Nonce != q.Nonce {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name  string
		key   []byte
		frame func() []byte
	}{
		{"a flipped byte", testKey, func() []byte { b := bytes.Clone(good); b[10] ^= 1; return b }},
		{"another cluster's key", Key([]byte("fedcba9876543210fedcba9876543210"), "c1"), func() []byte { return good }},
		{"a truncated frame", testKey, func() []byte { return good[:20] }},
		{"a reply offered as a request", testKey, func() []byte { return EncodeReply(testKey, &Reply{Granted: true}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeRequest(tc.key, tc.frame()); err == nil {
				t.Fatal("decoded")
			}
		})
	}
	if _, err := EncodeRequest(testKey, &Request{Cluster: "c1", Node: "a", Set: []string{"b", "a"}}); err == nil {
		t.Fatal("an unsorted set encoded")
	}
}

func TestKey_IsTheNodeConfigsArbitratorKey(t *testing.T) {
	dir := t.TempDir()
	secret := "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	conf := "[cluster]\nname = c9\nnodes = a b\nnode = a\nsecret = " + secret + "\n"
	path := filepath.Join(dir, "cluster.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := cluster.LoadNodeConfig(path, func(string) ([]config.Keyword, bool) { return nil, true })
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ParseSecret([]byte(secret))
	if !bytes.Equal(nc.Key(KeyUse), Key(s, "c9")) {
		t.Fatal("the arbitrator derives another key than the nodes")
	}
}

func TestReadSecretFile_RefusesLooseFiles(t *testing.T) {
	secret := []byte("00112233445566778899aabbccddeeff\n")
	for _, tc := range []struct {
		name    string
		mode    os.FileMode
		uid     int
		wantErr string
	}{
		{"mode 0600, owned by the expected user", 0o600, os.Geteuid(), ""},
		{"group-readable", 0o640, os.Geteuid(), "chmod 600"},
		{"other-readable", 0o604, os.Geteuid(), "chmod 600"},
		{"owned by someone else", 0o600, 65534, "chown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cluster.secret")
			if err := os.WriteFile(path, secret, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.uid != os.Geteuid() {
				if os.Geteuid() != 0 {
					t.Skip("needs root to give the file away")
				}
				if err := os.Chown(path, tc.uid, -1); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ReadSecretFile(path, os.Geteuid())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}

// startServer runs a real server on loopback until the test ends.
func startServer(t *testing.T, lease time.Duration) (*Server, string) {
	t.Helper()
	s, err := NewServer(ServerConfig{Cluster: "c1", Key: testKey, Lease: lease,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "arbitrator", Level: hclog.Debug, Output: &testWriter{t}})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func TestClient_AnswersOverTCPAndSurvivesGarbage(t *testing.T) {
	_, addr := startServer(t, MinLease)
	ask := func(key []byte) (Vote, error) {
		return NewClient(ClientConfig{Addr: addr, Key: key, Cluster: "c1", Node: "a"}).Ask(context.Background(), []string{"a"})
	}
	// Garbage of every shape first: none may stop the server.
	for _, junk := range [][]byte{nil, {0xff, 0xff}, {0, 3, 1, 2, 3}, bytes.Repeat([]byte{0x41}, 20000)} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(junk)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		readFrame(c) // the challenge
		readFrame(c) // nothing: garbage gets no answer
		c.Close()
	}
	if _, err := ask(Key([]byte("fedcba9876543210fedcba9876543210"), "c1")); err == nil {
		t.Fatal("a client with another secret got an answer")
	}
	var v Vote
	for {
		var err error
		if v, err = ask(testKey); err != nil {
			t.Fatal(err)
		}
		if v.Granted || !strings.Contains(v.Reason, "forgot") {
			break
		}
		time.Sleep(50 * time.Millisecond) // the start's quiet lease
	}
	if !v.Granted {
		t.Fatalf("denied: %s", v.Reason)
	}
	if now := Now(); v.Until <= now-time.Second || v.Until > now+MinLease {
		t.Fatalf("vote until %s, now %s: not within one lease of now", v.Until, now)
	}
}
