package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/arbitrator"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/config"
)

// testDaemon is a daemon of a two-node cluster (a, b) plus arbitrators,
// from a real cluster.conf, as much of it as quorum and the arbitrator
// loop use; it has heard no peer, so its side is itself alone.
func testDaemon(t *testing.T, local string, arbitrators ...string) *Daemon {
	t.Helper()
	conf := "[cluster]\nname = c1\nnodes = a b\nnode = " + local + "\nsecret = " + testSecret + "\n" +
		"[hb#1]\ntype = net\ninterval = 100ms\ntimeout = 1s\n"
	for i, a := range arbitrators {
		conf += fmt.Sprintf("[arbitrator#%d]\nuri = tcp://%s\n", i+1, a)
	}
	path := filepath.Join(t.TempDir(), "cluster.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := cluster.LoadNodeConfig(path, func(string) ([]config.Keyword, bool) { return nil, true })
	if err != nil {
		t.Fatal(err)
	}
	return &Daemon{node: n, view: cluster.NewView(n, time.Now()),
		log: hclog.New(&hclog.LoggerOptions{Name: local, Level: hclog.Debug, Output: &testLog{t}})}
}

const testSecret = "00112233445566778899aabbccddeeff"

type testLog struct{ t *testing.T }

func (w *testLog) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func TestQuorum_CountsAVoteOnlyUnexpiredAndForTheSideSeenNow(t *testing.T) {
	now := arbitrator.Now()
	for _, tc := range []struct {
		name string
		vote arbitrator.Vote
		want bool
	}{
		{"granted for this side, unexpired", arbitrator.Vote{Granted: true, Set: []string{"a"}, Until: now + time.Hour}, true},
		{"granted for this side, expired", arbitrator.Vote{Granted: true, Set: []string{"a"}, Until: now - time.Millisecond}, false},
		{"granted for the whole cluster, which this node no longer sees", arbitrator.Vote{Granted: true, Set: []string{"a", "b"}, Until: now + time.Hour}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDaemon(t, "a", "127.0.0.1:1")
			d.arbitratorVotes.store("127.0.0.1:1", tc.vote)
			if got := d.quorum(1); got != tc.want {
				t.Fatalf("quorum = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("a vote expires at decision time, with no loop running", func(t *testing.T) {
		d := testDaemon(t, "a", "127.0.0.1:1")
		until := arbitrator.Now() + 50*time.Millisecond
		d.arbitratorVotes.store("127.0.0.1:1", arbitrator.Vote{Granted: true, Set: []string{"a"}, Until: until})
		if !d.quorum(1) {
			t.Fatal("no quorum with an unexpired vote")
		}
		for arbitrator.Now() < until {
			time.Sleep(10 * time.Millisecond)
		}
		if d.quorum(1) {
			t.Fatal("quorum with an expired vote")
		}
	})
}

// TestArbitratorLoop_DisjointSidesNeverBothHoldTheVote runs a real
// arbitrator on loopback and the arbitrator loops of both nodes of a
// split two-node cluster (each sees itself alone): at no instant do both
// hold the vote; one gets it, and once it stops renewing, the other gets
// it after the first's lease.
func TestArbitratorLoop_DisjointSidesNeverBothHoldTheVote(t *testing.T) {
	secret, _ := arbitrator.ParseSecret([]byte(testSecret))
	srv, err := arbitrator.NewServer(arbitrator.ServerConfig{Cluster: "c1", Lease: 500 * time.Millisecond,
		Key: arbitrator.Key(secret, "c1"), Logger: hclog.New(&hclog.LoggerOptions{Name: "arbitrator", Output: &testLog{t}})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ctx, ln) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	addr := ln.Addr().String()
	sides := map[string]*Daemon{}
	stops := map[string]context.CancelFunc{}
	for _, name := range []string{"a", "b"} {
		d := testDaemon(t, name, addr)
		sides[name] = d
		sctx, stop := context.WithCancel(ctx)
		stops[name] = stop
		wg.Go(func() { d.arbitratorLoop(sctx) })
	}
	// holder reads both sides at one instant, on the clock votes are timed
	// on: "" when neither holds the vote.
	holder := func() string {
		now := arbitrator.Now()
		var h []string
		for name, d := range sides {
			if d.arbitratorVotes.count(now, []string{name}) > 0 {
				h = append(h, name)
			}
		}
		if len(h) > 1 {
			t.Fatalf("both sides of the split hold the arbitrator's vote at once: %v", h)
		}
		if len(h) == 0 {
			return ""
		}
		return h[0]
	}
	waitHolder := func(what string, ok func(string) bool) string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if h := holder(); ok(h) {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := waitHolder("one side to hold the vote", func(h string) bool { return h != "" })
	// Both keep asking for a while: the vote stays with one side.
	for end := time.Now().Add(2 * srv.Lease()); time.Now().Before(end); {
		holder()
		time.Sleep(5 * time.Millisecond)
	}
	if !sides[first].quorum(1) {
		t.Fatalf("%s holds the vote but has no quorum", first)
	}
	stops[first]()
	other := map[string]string{"a": "b", "b": "a"}[first]
	waitHolder(other+" to hold the vote after "+first+" stopped renewing", func(h string) bool { return h == other })
	if sides[first].quorum(1) || !sides[other].quorum(1) {
		t.Fatalf("after the handover: quorum on %s %v, on %s %v", first, sides[first].quorum(1), other, sides[other].quorum(1))
	}
}
