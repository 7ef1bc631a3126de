package hbnet

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Timings of the cluster tests: the shortest a heartbeat is meant to
// run with, so the tests also show the tuning holds on a busy host
// (-race, 2 cores). Bounds are generous: the tests assert behaviour.
const (
	testInterval = 200 * time.Millisecond
	testTimeout  = 600 * time.Millisecond
	within       = 5 * time.Second
)

// recorder collects what a node emits, and when it was emitted.
type recorder struct {
	mu     sync.Mutex
	events []sdk.HeartbeatEvent
	at     []time.Time
}

func (r *recorder) emit(e sdk.HeartbeatEvent) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
}

// silenceBefore returns, for each Stale of peer after from, how long
// peer had been silent when it was emitted: since its last beat, or
// since from's event when it was not heard after from.
func (r *recorder) silenceBefore(from int, peer string) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	var last time.Time
	for i := 0; i < len(r.events); i++ {
		e := r.events[i]
		switch {
		case e.Kind == sdk.EventBeat && e.Peer == peer:
			last = e.Received
		case e.Kind == sdk.EventStale && e.Peer == peer && i >= from:
			out = append(out, r.at[i].Sub(last))
		}
	}
	return out
}

// mark returns a cursor: await(from=mark) only looks at later events.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) find(from int, pred func(sdk.HeartbeatEvent) bool) (sdk.HeartbeatEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events[from:] {
		if pred(e) {
			return e, true
		}
	}
	return sdk.HeartbeatEvent{}, false
}

func (r *recorder) count(from int, pred func(sdk.HeartbeatEvent) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events[from:] {
		if pred(e) {
			n++
		}
	}
	return n
}

// await waits for an event matching pred after from, and returns it
// with how long it took.
func (r *recorder) await(t *testing.T, from int, what string, pred func(sdk.HeartbeatEvent) bool) (sdk.HeartbeatEvent, time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for time.Now().Before(deadline) {
		if e, ok := r.find(from, pred); ok {
			return e, time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s within %s", what, within)
	return sdk.HeartbeatEvent{}, 0
}

func beatFrom(peer string, ds []byte) func(sdk.HeartbeatEvent) bool {
	return func(e sdk.HeartbeatEvent) bool {
		return e.Kind == sdk.EventBeat && e.Peer == peer && bytes.Equal(e.Dataset, ds)
	}
}

func anyBeatFrom(peer string) func(sdk.HeartbeatEvent) bool {
	return func(e sdk.HeartbeatEvent) bool { return e.Kind == sdk.EventBeat && e.Peer == peer }
}

func staleOf(peer string) func(sdk.HeartbeatEvent) bool {
	return func(e sdk.HeartbeatEvent) bool { return e.Kind == sdk.EventStale && e.Peer == peer }
}

// testCluster hands out loopback addresses: node i listens on
// 127.0.0.(i+2) at a port found free for it, so every node has its own
// address and port as on a LAN.
type testCluster struct {
	t     *testing.T
	addrs map[string]string // node -> ip:port
	order []string
	// timeout of the heartbeats started; testTimeout unless a test
	// needs more room.
	timeout time.Duration
}

func newTestCluster(t *testing.T, names ...string) *testCluster {
	c := &testCluster{t: t, addrs: make(map[string]string), timeout: testTimeout}
	for _, n := range names {
		c.add(n)
	}
	return c
}

func (c *testCluster) add(name string) {
	ip := fmt.Sprintf("127.0.0.%d", len(c.order)+2)
	c.addrs[name] = net.JoinHostPort(ip, strconv.Itoa(freePort(c.t, ip)))
	c.order = append(c.order, name)
}

// addrsKeyword is the addrs value listing the addresses of nodes.
func (c *testCluster) addrsKeyword(nodes []string) string {
	var w []string
	for _, n := range nodes {
		w = append(w, n+"="+c.addrs[n])
	}
	return strings.Join(w, " ")
}

// freePort returns a port free for both TCP and UDP on ip.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("listen on %s: %v (the tests need 127.0.0.0/8 on lo)", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatalf("no port free for TCP and UDP on %s", ip)
	return 0
}

var testKey = bytes.Repeat([]byte{0x42}, 32)

// testNode is one running driver.
type testNode struct {
	name     string
	rec      *recorder
	datasets chan []byte
	cancel   context.CancelFunc
	done     chan error
}

// start runs a driver for name with nodes as the cluster's node list.
func (c *testCluster) start(name string, key []byte, nodes []string) *testNode {
	return c.startDriver(name, key, nodes, func(*Driver) {})
}

func (c *testCluster) startDriver(name string, key []byte, nodes []string, edit func(*Driver)) *testNode {
	c.t.Helper()
	n := &testNode{name: name, rec: &recorder{}, datasets: make(chan []byte, 1), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	logger := hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testWriter{c.t}})
	d := New(Config{Logger: logger})
	edit(d)
	cfg := sdk.HeartbeatConfig{
		Name: "hb#1", Type: Type, Cluster: "test", LocalNode: name, Nodes: nodes,
		Interval: testInterval, Timeout: c.timeout,
		Keywords: map[string]string{KwAddrs: c.addrsKeyword(nodes)},
		Key:      key,
	}
	t := c.t
	go func() { n.done <- d.Run(ctx, cfg, n.datasets, n.rec.emit) }()
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func (n *testNode) publish(ds []byte) { n.datasets <- ds }

// stop ends the driver and waits for Run to return; idempotent.
func (n *testNode) stop() error {
	n.cancel()
	select {
	case err, ok := <-n.done:
		if !ok {
			return nil
		}
		close(n.done)
		if err != nil {
			return fmt.Errorf("%s: Run: %w", n.name, err)
		}
		return nil
	case <-time.After(within):
		return fmt.Errorf("%s: Run did not return within %s of cancel", n.name, within)
	}
}

// testWriter sends driver logs to the test log, so a failure shows them.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestCluster_TwoNodesExchangeDatasetsWhole(t *testing.T) {
	c := newTestCluster(t, "n1", "n2")
	nodes := []string{"n1", "n2"}
	n1 := c.start("n1", testKey, nodes)
	n2 := c.start("n2", testKey, nodes)
	big := randomBytes(200*1024, 1) // needs TCP
	small := []byte(`{"node":"n2","gen":1}`)
	n1.publish(big)
	n2.publish(small)

	_, took := n2.rec.await(t, 0, "200 KiB dataset from n1 at n2", beatFrom("n1", big))
	t.Logf("200 KiB dataset arrived whole in %s", took)
	_, took = n1.rec.await(t, 0, "small dataset from n2 at n1", beatFrom("n2", small))
	t.Logf("small dataset arrived in %s", took)

	// The latest dataset wins.
	newer := []byte(`{"node":"n2","gen":2}`)
	n2.publish(newer)
	n1.rec.await(t, 0, "newer dataset from n2", beatFrom("n2", newer))

	for _, n := range []*testNode{n1, n2} {
		if k := n.rec.count(0, func(e sdk.HeartbeatEvent) bool { return e.Kind == sdk.EventReject }); k != 0 {
			t.Errorf("%s: %d rejects in a healthy cluster: %+v", n.name, k, n.rec.events)
		}
		if e, ok := n.rec.find(0, func(e sdk.HeartbeatEvent) bool { return e.Kind == sdk.EventBeat && e.Received.IsZero() }); ok {
			t.Errorf("%s: beat without Received: %+v", n.name, e)
		}
	}
}

func TestCluster_ThreeNodesStaleOnStopAndResumeOnRestart(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	c := newTestCluster(t, names...)
	nodes := map[string]*testNode{}
	ds := map[string][]byte{}
	for _, n := range names {
		nodes[n] = c.start(n, testKey, names)
		ds[n] = []byte("dataset of " + n)
		nodes[n].publish(ds[n])
	}
	for _, to := range names {
		for _, from := range names {
			if from != to {
				nodes[to].rec.await(t, 0, from+"'s dataset at "+to, beatFrom(from, ds[from]))
			}
		}
	}

	marks := map[string]int{"n1": nodes["n1"].rec.mark(), "n2": nodes["n2"].rec.mark()}
	stopped := time.Now()
	if err := nodes["n3"].stop(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		e, _ := nodes[n].rec.await(t, marks[n], "stale n3 at "+n, staleOf("n3"))
		t.Logf("%s: n3 stale %s after its stop (%q)", n, time.Since(stopped), e.Reason)
	}

	// Silence longer than a few timeouts: still one Stale per silence.
	time.Sleep(3 * testTimeout)
	for _, n := range []string{"n1", "n2"} {
		if k := nodes[n].rec.count(marks[n], staleOf("n3")); k != 1 {
			t.Errorf("%s: %d stale events for n3 during one silence, want 1", n, k)
		}
		if k := nodes[n].rec.count(marks[n], staleOf(otherThan(n, "n3"))); k != 0 {
			t.Errorf("%s: a live peer was reported stale", n)
		}
	}

	for _, n := range []string{"n1", "n2"} {
		marks[n] = nodes[n].rec.mark()
	}
	restarted := time.Now()
	n3 := c.start("n3", testKey, names)
	again := []byte("dataset of n3, restarted")
	n3.publish(again)
	for _, n := range []string{"n1", "n2"} {
		nodes[n].rec.await(t, marks[n], "restarted n3's dataset at "+n, beatFrom("n3", again))
		t.Logf("%s: beats from n3 resumed %s after its restart", n, time.Since(restarted))
	}
	n3.rec.await(t, 0, "n1's dataset at restarted n3", beatFrom("n1", ds["n1"]))
}

func TestCluster_CrashedPeerGoesStaleBySilence(t *testing.T) {
	c := newTestCluster(t, "n1", "n2")
	nodes := []string{"n1", "n2"}
	n1 := c.start("n1", testKey, nodes)
	n2 := c.startDriver("n2", testKey, nodes, func(d *Driver) { d.skipLeave = true })
	n1.publish([]byte("one"))
	n2.publish([]byte("two"))
	n1.rec.await(t, 0, "n2's dataset at n1", anyBeatFrom("n2"))
	mark := n1.rec.mark()
	crashed := time.Now()
	if err := n2.stop(); err != nil {
		t.Fatal(err)
	}
	e, took := n1.rec.await(t, mark, "stale n2 after its crash", staleOf("n2"))
	t.Logf("n2 stale %s after its crash (%q)", took, e.Reason)
	if since := time.Since(crashed); since < testTimeout/3 {
		t.Errorf("n2 reported stale %s after it went quiet, before the %s timeout", since, testTimeout)
	}
}

// A clean stop (vigild restarted: the plugin leaves memberlist) is not a
// loss: the peer is judged by its timeout since its last beat, like any
// silence, and the restarted node is heard again.
func TestCluster_CleanStopIsJudgedByTimeoutNotByLeave(t *testing.T) {
	c := newTestCluster(t, "n1", "n2")
	nodes := []string{"n1", "n2"}
	n1 := c.start("n1", testKey, nodes)
	n2 := c.start("n2", testKey, nodes)
	n1.publish([]byte("one"))
	n2.publish([]byte("two"))
	n1.rec.await(t, 0, "n2's dataset at n1", anyBeatFrom("n2"))
	n2.rec.await(t, 0, "n1's dataset at n2", anyBeatFrom("n1"))

	mark := n1.rec.mark()
	if err := n2.stop(); err != nil { // with the leave notice
		t.Fatal(err)
	}
	e, took := n1.rec.await(t, mark, "stale n2 after its clean stop", staleOf("n2"))
	t.Logf("n2 stale %s after its clean stop (%q)", took, e.Reason)
	for _, silent := range n1.rec.silenceBefore(mark, "n2") {
		if silent < testTimeout {
			t.Errorf("n2 reported stale after %s of silence, before the %s timeout: its leave shortened the timeout", silent, testTimeout)
		}
	}

	// Restarted at once, as by systemctl restart: a new memberlist
	// incarnation under the same name and address.
	mark = n1.rec.mark()
	restarted := time.Now()
	n2 = c.start("n2", testKey, nodes)
	again := []byte("two, restarted")
	n2.publish(again)
	n1.rec.await(t, mark, "restarted n2's dataset at n1", beatFrom("n2", again))
	n2.rec.await(t, 0, "n1's dataset at restarted n2", beatFrom("n1", []byte("one")))
	t.Logf("beats both ways %s after n2's restart", time.Since(restarted))
}

// A restart quicker than the timeout leaves no Stale behind: the peer's
// silence never reached the timeout.
func TestCluster_RestartWithinTimeoutIsNeverStale(t *testing.T) {
	c := newTestCluster(t, "n1", "n2")
	nodes := []string{"n1", "n2"}
	n1 := c.start("n1", testKey, nodes)
	n2 := c.start("n2", testKey, nodes)
	n1.publish([]byte("one"))
	n2.publish([]byte("two"))
	n1.rec.await(t, 0, "n2's dataset at n1", anyBeatFrom("n2"))

	mark := n1.rec.mark()
	if err := n2.stop(); err != nil {
		t.Fatal(err)
	}
	n2 = c.start("n2", testKey, nodes)
	again := []byte("two, restarted")
	n2.publish(again)
	n1.rec.await(t, mark, "restarted n2's dataset at n1", beatFrom("n2", again))
	// Whether the restart beat the timeout depends on the host; what
	// must hold is that any Stale came after the timeout of silence.
	for _, silent := range n1.rec.silenceBefore(mark, "n2") {
		if silent < testTimeout {
			t.Errorf("n2 reported stale after %s of silence, before the %s timeout", silent, testTimeout)
		}
	}
	t.Logf("stale events for n2 across its restart: %d", n1.rec.count(mark, staleOf("n2")))
}

func otherThan(self, gone string) string {
	for _, n := range []string{"n1", "n2"} {
		if n != self && n != gone {
			return n
		}
	}
	return ""
}

func TestCluster_NodeStartedLateIsJoined(t *testing.T) {
	c := newTestCluster(t, "n1", "n2")
	nodes := []string{"n1", "n2"}
	n1 := c.start("n1", testKey, nodes)
	n1.publish([]byte("one"))
	// n2 is not up: n1 reports it once the start grace (the timeout)
	// has passed, not before.
	e, took := n1.rec.await(t, 0, "stale n2 (never started)", staleOf("n2"))
	if took < testTimeout-100*time.Millisecond {
		t.Errorf("n2 reported stale %s after start, before the %s timeout (%q)", took, testTimeout, e.Reason)
	}
	n2 := c.start("n2", testKey, nodes)
	n2.publish([]byte("two"))
	n1.rec.await(t, 0, "late n2's dataset at n1", beatFrom("n2", []byte("two")))
	n2.rec.await(t, 0, "n1's dataset at late n2", beatFrom("n1", []byte("one")))
}

func TestCluster_WrongKeyIsNeverAccepted(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	c := newTestCluster(t, names...)
	n1 := c.start("n1", testKey, names)
	n2 := c.start("n2", testKey, names)
	n3 := c.start("n3", bytes.Repeat([]byte{0x17}, 32), names) // another secret
	for _, n := range []*testNode{n1, n2, n3} {
		n.publish([]byte("dataset of " + n.name))
	}
	n1.rec.await(t, 0, "n2's dataset at n1", anyBeatFrom("n2"))
	for _, n := range []*testNode{n1, n2} {
		e, _ := n.rec.await(t, 0, "reject of n3's traffic at "+n.name, func(e sdk.HeartbeatEvent) bool {
			return e.Kind == sdk.EventReject && strings.Contains(e.Reason, "does not decrypt")
		})
		t.Logf("%s: %s", n.name, e.Reason)
	}
	// A packet that is not sealed with the key, as from a node that
	// still has n1 in its member list after a secret change.
	conn, err := net.Dial("udp", c.addrs["n1"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(append([]byte{1}, randomBytes(100, 3)...)); err != nil {
		t.Fatal(err)
	}
	e, _ := n1.rec.await(t, 0, "reject of an undecryptable packet at n1", func(e sdk.HeartbeatEvent) bool {
		return e.Kind == sdk.EventReject && strings.Contains(e.Reason, "dropped a packet from")
	})
	t.Logf("n1: %s", e.Reason)

	// Give n3 several intervals of retries.
	time.Sleep(5 * testInterval)
	for _, n := range []*testNode{n1, n2} {
		if _, ok := n.rec.find(0, anyBeatFrom("n3")); ok {
			t.Errorf("%s accepted a dataset from n3, which has another key", n.name)
		}
	}
	for _, p := range []string{"n1", "n2"} {
		if _, ok := n3.rec.find(0, anyBeatFrom(p)); ok {
			t.Errorf("n3 (another key) accepted a dataset from %s", p)
		}
	}
	// Rejects are rate limited: a few per second, not one per packet.
	if k := n1.rec.count(0, func(e sdk.HeartbeatEvent) bool { return e.Kind == sdk.EventReject }); k > 20 {
		t.Errorf("n1: %d rejects, want them rate limited", k)
	}
}

func TestCluster_NodeNotInNodesIsRejected(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "mallory")
	nodes := []string{"n1", "n2"}
	n1 := c.start("n1", testKey, nodes)
	n2 := c.start("n2", testKey, nodes)
	// mallory has the key and believes it belongs.
	m := c.start("mallory", testKey, []string{"n1", "n2", "mallory"})
	for _, n := range []*testNode{n1, n2, m} {
		n.publish([]byte("dataset of " + n.name))
	}
	n1.rec.await(t, 0, "n2's dataset at n1", anyBeatFrom("n2"))
	for _, n := range []*testNode{n1, n2} {
		e, _ := n.rec.await(t, 0, "reject of mallory at "+n.name, func(e sdk.HeartbeatEvent) bool {
			return e.Kind == sdk.EventReject && e.Peer == "mallory"
		})
		t.Logf("%s: %s", n.name, e.Reason)
	}
	time.Sleep(5 * testInterval)
	for _, n := range []*testNode{n1, n2} {
		if _, ok := n.rec.find(0, anyBeatFrom("mallory")); ok {
			t.Errorf("%s accepted a dataset from mallory, not in its nodes", n.name)
		}
	}
}

func TestRun_BadConfigFailsAtOnce(t *testing.T) {
	d := New(Config{Logger: hclog.NewNullLogger()})
	cfg := sdk.HeartbeatConfig{
		Name: "hb#1", LocalNode: "n1", Nodes: []string{"n1", "n2"},
		Interval: time.Second, Timeout: 3 * time.Second, Key: testKey[:20],
		Keywords: map[string]string{},
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background(), cfg, nil, func(sdk.HeartbeatEvent) {}) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "16, 24 or 32") {
			t.Fatalf("Run = %v, want the key length error", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return at once on a bad key")
	}
}

func TestRun_PortInUseSaysWhatToFix(t *testing.T) {
	ip := "127.0.0.2"
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	d := New(Config{Logger: hclog.NewNullLogger()})
	cfg := sdk.HeartbeatConfig{
		Name: "hb#1", LocalNode: "n1", Nodes: []string{"n1", "n2"},
		Interval: time.Second, Timeout: 3 * time.Second, Key: testKey,
		Keywords: map[string]string{KwAddrs: "n1=" + ip, KwPort: strconv.Itoa(port)},
	}
	err = d.Run(context.Background(), cfg, nil, func(sdk.HeartbeatEvent) {})
	if err == nil || !strings.Contains(err.Error(), "port") {
		t.Fatalf("Run = %v, want an error naming the port", err)
	}
}
