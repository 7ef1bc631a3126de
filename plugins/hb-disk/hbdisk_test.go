package hbdisk

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Timings for the tests: fast beats, and generous bounds on what must
// happen, so a loaded machine slows the tests without failing them.
const (
	testInterval = 100 * time.Millisecond
	testTimeout  = 400 * time.Millisecond
	within       = 5 * time.Second
	testSlotSize = 4 * blockSize
	// testMaxDataset is the largest dataset a test slot holds.
	testMaxDataset = testSlotSize - headerSize - tagSize
)

// recorder collects one Run's events.
type recorder struct {
	mu     sync.Mutex
	events []sdk.HeartbeatEvent
}

func (r *recorder) emit(e sdk.HeartbeatEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// mark returns a position in the events, for "since then" questions.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) since(from int) []sdk.HeartbeatEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdk.HeartbeatEvent(nil), r.events[from:]...)
}

// waitFor returns the first event since from that ok accepts, failing the
// test when none comes within the bound.
func (r *recorder) waitFor(t *testing.T, from int, what string, ok func(sdk.HeartbeatEvent) bool) sdk.HeartbeatEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, e := range r.since(from) {
			if ok(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; events: %s", what, within, describe(r.since(from)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describe(evs []sdk.HeartbeatEvent) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("{%d %s %dB %q}", e.Kind, e.Peer, len(e.Dataset), e.Reason))
	}
	return strings.Join(parts, " ")
}

func beatFrom(peer string, ds []byte) func(sdk.HeartbeatEvent) bool {
	return func(e sdk.HeartbeatEvent) bool {
		return e.Kind == sdk.EventBeat && e.Peer == peer && bytes.Equal(e.Dataset, ds)
	}
}

func eventFrom(kind sdk.EventKind, peer, reason string) func(sdk.HeartbeatEvent) bool {
	return func(e sdk.HeartbeatEvent) bool {
		return e.Kind == kind && e.Peer == peer && strings.Contains(e.Reason, reason)
	}
}

// testCluster is nodes sharing one heartbeat device, each Run in its own
// goroutine as the plugin would run them in separate processes.
type testCluster struct {
	t        *testing.T
	name     string
	nodes    []string
	key      []byte // the heartbeat key core would derive
	kw       map[string]string
	noDirect bool
	logs     *syncBuffer
}

func newTestCluster(t *testing.T, dev string, nodes ...string) *testCluster {
	return &testCluster{t: t, name: "prod", nodes: nodes, logs: &syncBuffer{}, key: randomBytes(t, 32),
		kw: map[string]string{KwDev: dev, KwSlotSize: fmt.Sprint(testSlotSize)}}
}

// newDevFile returns a sparse file big enough for the label and n slots,
// labelled for the test clusters' name, as nodemgr hb-disk init leaves it.
func newDevFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(labelSize + int64(n)*testSlotSize); err != nil {
		t.Fatal(err)
	}
	if _, err := InitDevice(InitOptions{Dev: path, Cluster: "prod"}); err != nil {
		t.Fatal(err)
	}
	return path
}

func (c *testCluster) config(node string) sdk.HeartbeatConfig {
	return sdk.HeartbeatConfig{Name: "hb#1", Type: Type, Cluster: c.name, LocalNode: node, Nodes: c.nodes,
		Interval: testInterval, Timeout: testTimeout, Keywords: c.kw, Key: c.key}
}

// sealer is the AEAD c's nodes seal their slots with.
func (c *testCluster) sealer() cipher.AEAD {
	c.t.Helper()
	aead, err := newSealer(c.key)
	if err != nil {
		c.t.Fatal(err)
	}
	return aead
}

// member is one node's running heartbeat.
type member struct {
	name     string
	rec      *recorder
	datasets chan []byte
	cancel   context.CancelFunc
	done     chan error
	stopped  bool
}

func (c *testCluster) start(node string) *member {
	c.t.Helper()
	return c.startWith(node, nil)
}

// startWith starts node with a driver edit may adjust.
func (c *testCluster) startWith(node string, edit func(*Driver)) *member {
	c.t.Helper()
	d := New(Config{Logger: hclog.New(&hclog.LoggerOptions{Output: c.logs, Level: hclog.Debug, Name: node})})
	d.noDirect = c.noDirect
	if edit != nil {
		edit(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: node, rec: &recorder{}, datasets: make(chan []byte, 1), cancel: cancel, done: make(chan error, 1)}
	cfg := c.config(node)
	go func() { m.done <- d.Run(ctx, cfg, m.datasets, m.rec.emit) }()
	c.t.Cleanup(func() { m.stop(c.t) })
	return m
}

// publish hands m a dataset, latest wins, as the SDK's server does.
func (m *member) publish(ds []byte) {
	select {
	case <-m.datasets:
	default:
	}
	m.datasets <- ds
}

// stop ends m's Run, which must return nil.
func (m *member) stop(t *testing.T) {
	t.Helper()
	if m.stopped {
		return
	}
	m.stopped = true
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("%s: Run returned %v on context end, want nil", m.name, err)
		}
	case <-time.After(within):
		t.Errorf("%s: Run did not return within %s of its context ending", m.name, within)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// expectDatasetsEverywhere publishes a fresh dataset on every member and
// waits for every other member to receive it byte for byte.
func expectDatasetsEverywhere(t *testing.T, ms []*member, round string) {
	t.Helper()
	marks := make([]int, len(ms))
	sent := make([][]byte, len(ms))
	for i, m := range ms {
		marks[i] = m.rec.mark()
		sent[i] = append([]byte(round+" from "+m.name+":"), randomBytes(t, 100)...)
		m.publish(sent[i])
	}
	for i, m := range ms {
		for j, from := range ms {
			if i != j {
				m.rec.waitFor(t, marks[i], fmt.Sprintf("%s beat from %s at %s", round, from.name, m.name), beatFrom(from.name, sent[j]))
			}
		}
	}
}

func TestRun_PeersReceiveEachOthersDatasets(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			t.Parallel()
			var names []string
			for i := range n {
				names = append(names, fmt.Sprintf("node%d", i+1))
			}
			c := newTestCluster(t, newDevFile(t, n), names...)
			var ms []*member
			for _, name := range names {
				ms = append(ms, c.start(name))
			}
			expectDatasetsEverywhere(t, ms, "first")
			// A new dataset replaces the old one.
			expectDatasetsEverywhere(t, ms, "second")
			for _, m := range ms {
				for _, e := range m.rec.since(0) {
					if e.Kind != sdk.EventBeat {
						t.Errorf("%s: unexpected event %s", m.name, describe([]sdk.HeartbeatEvent{e}))
					}
				}
			}
		})
	}
}

func TestRun_DatasetFillingTheSlotArrivesWhole(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, newDevFile(t, 2), "a", "b")
	a, b := c.start("a"), c.start("b")
	ds := randomBytes(t, testMaxDataset)
	from := b.rec.mark()
	a.publish(ds)
	b.rec.waitFor(t, from, "full-slot beat", beatFrom("a", ds))
}

func TestRun_RefusesOversizeDatasetAndKeepsThePrevious(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, newDevFile(t, 2), "a", "b")
	a, b := c.start("a"), c.start("b")
	prev := []byte("the previous dataset")
	a.publish(prev)
	b.rec.waitFor(t, 0, "first dataset", beatFrom("a", prev))

	a.publish(randomBytes(t, testMaxDataset+1))
	want := fmt.Sprintf("oversize: dataset of %d bytes does not fit the %d-byte slot", testMaxDataset+1, testSlotSize)
	a.rec.waitFor(t, 0, "local reject", eventFrom(sdk.EventReject, "a", want))
	// The previous dataset keeps going out under new generations.
	from := b.rec.mark()
	b.rec.waitFor(t, from, "previous dataset after the refusal", beatFrom("a", prev))
	for _, e := range b.rec.since(0) {
		if e.Kind == sdk.EventBeat && len(e.Dataset) > testMaxDataset {
			t.Fatalf("b received a %d-byte dataset", len(e.Dataset))
		}
	}
	if !strings.Contains(c.logs.String(), "raise slot_size") {
		t.Errorf("no log line tells to raise slot_size; logs:\n%s", c.logs)
	}
}

func TestRun_StoppedPeerGoesStaleAndResumesOnRestart(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, newDevFile(t, 3), "a", "b", "c")
	a, b, cc := c.start("a"), c.start("b"), c.start("c")
	expectDatasetsEverywhere(t, []*member{a, b, cc}, "before")

	markA, markC := a.rec.mark(), cc.rec.mark()
	b.stop(t)
	a.rec.waitFor(t, markA, "stale b at a", eventFrom(sdk.EventStale, "b", "disk slot generation unchanged for 400ms"))
	cc.rec.waitFor(t, markC, "stale b at c", eventFrom(sdk.EventStale, "b", "unchanged"))
	for _, e := range a.rec.since(markA) {
		if e.Kind == sdk.EventStale && e.Peer == "c" {
			t.Errorf("a called c stale while c runs")
		}
	}

	markA, markC = a.rec.mark(), cc.rec.mark()
	b = c.start("b")
	back := []byte("b is back")
	b.publish(back)
	a.rec.waitFor(t, markA, "b's beat at a after restart", beatFrom("b", back))
	cc.rec.waitFor(t, markC, "b's beat at c after restart", beatFrom("b", back))
	// Once, until it moves again: a single stale per stop.
	stales := 0
	for _, e := range a.rec.since(0) {
		if e.Kind == sdk.EventStale && e.Peer == "b" {
			stales++
		}
	}
	if stales != 1 {
		t.Errorf("a emitted %d stale events for b, want 1", stales)
	}
}

// corruptSlot rewrites part of node i's slot behind the drivers' backs,
// as a torn write or a stray writer would leave it.
func corruptSlot(t *testing.T, dev string, i int, damage func([]byte)) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, testSlotSize)
	if _, err := f.ReadAt(buf, labelSize+int64(i)*testSlotSize); err != nil {
		t.Fatal(err)
	}
	damage(buf)
	if _, err := f.WriteAt(buf, labelSize+int64(i)*testSlotSize); err != nil {
		t.Fatal(err)
	}
}

func TestRun_IgnoresTornOrCorruptSlot(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		damage func([]byte)
		reason string
	}{
		{"payload byte", func(b []byte) { b[headerSize+2] ^= 0xFF }, "malformed: checksum mismatch"},
		// Without the checksum this would read as a moved generation,
		// hence a beat.
		{"generation byte", func(b []byte) { b[offGen] ^= 0x01 }, "malformed: checksum mismatch"},
		// Its length reads 0, shorter than a tag.
		{"half-written header", func(b []byte) { clear(b[offGen:headerSize]) }, "malformed: impossible payload length 0"},
		{"magic", func(b []byte) { copy(b, "GARBAGE!") }, "malformed: the slot holds no vigil heartbeat (bad magic)"},
		{"length", func(b []byte) { le.PutUint32(b[offLen:], 1<<30) }, "malformed: impossible payload length"},
		// A stray writer that keeps the checksum right still cannot
		// forge a dataset: the tag does not verify.
		{"payload byte, checksum redone", func(b []byte) {
			b[headerSize+2] ^= 0xFF
			le.PutUint32(b[offCRC:], slotChecksum(b[:headerSize+le.Uint32(b[offLen:])]))
		}, "bad_tag: "},
		{"version 1 (plaintext) slot", func(b []byte) {
			le.PutUint32(b[offVersion:], 1)
			le.PutUint32(b[offCRC:], slotChecksum(b[:headerSize+le.Uint32(b[offLen:])]))
		}, "unencrypted: the slot is in format version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := newDevFile(t, 2)
			c := newTestCluster(t, dev, "a", "b")
			a, b := c.start("a"), c.start("b")
			ds := []byte("b's good dataset")
			b.publish(ds)
			a.rec.waitFor(t, 0, "b's dataset", beatFrom("b", ds))
			b.stop(t)

			from := a.rec.mark()
			corruptSlot(t, dev, 1, tc.damage)
			a.rec.waitFor(t, from, "reject of b's slot", eventFrom(sdk.EventReject, "b", tc.reason))
			time.Sleep(5 * testInterval)
			for _, e := range a.rec.since(from) {
				if e.Kind == sdk.EventBeat {
					t.Fatalf("beat from a corrupt slot: %s", describe([]sdk.HeartbeatEvent{e}))
				}
			}
			// Rate-limited: one report per peer and fault per RejectEvery.
			rejects := 0
			for _, e := range a.rec.since(from) {
				if e.Kind == sdk.EventReject {
					rejects++
				}
			}
			if rejects != 1 {
				t.Errorf("%d reject events in %s, want 1", rejects, 5*testInterval)
			}
		})
	}
}

func TestRun_RejectsSlotOfAnotherCluster(t *testing.T) {
	t.Parallel()
	dev := newDevFile(t, 2)
	prod, test := newTestCluster(t, dev, "a", "b"), newTestCluster(t, dev, "a", "b")
	test.name = "test" // and its own key, from its own secret
	// The label keeps the test cluster's nodes off prod's device...
	b := test.start("b")
	select {
	case err := <-b.done:
		b.stopped = true
		if !errors.Is(err, ErrForeignLabel) || !strings.Contains(err.Error(), `cluster "prod", not "test"`) {
			t.Fatalf("test's b on prod's device: %v, want a refusal naming both clusters", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("test's b runs on prod's device")
	}
	// ...and a slot of another cluster found there all the same (a
	// relabelled device) is refused by name before the key is tried, so
	// the reason says what is wrong rather than just "bad_tag".
	corruptSlot(t, dev, 1, func(raw []byte) {
		encodeSlot(raw, slotHeader{Index: 1, SlotSize: testSlotSize, Gen: 1, Cluster: "test", Node: "b"}, []byte("test cluster's dataset"), test.sealer())
	})
	a := prod.start("a")
	a.rec.waitFor(t, 0, "reject of the foreign slot", eventFrom(sdk.EventReject, "b", `foreign: slot 1 belongs to cluster "test", not "prod"`))
	for _, e := range a.rec.since(0) {
		if e.Kind == sdk.EventBeat {
			t.Errorf("a: beat across clusters: %s", describe([]sdk.HeartbeatEvent{e}))
		}
	}
}

// TestRun_DatasetsAreNotInClearOnTheDevice: datasets carry service
// configs (run_args -e PASSWORD=...), and whoever reads the shared
// device must not read them.
func TestRun_DatasetsAreNotInClearOnTheDevice(t *testing.T) {
	t.Parallel()
	dev := newDevFile(t, 2)
	c := newTestCluster(t, dev, "a", "b")
	a, b := c.start("a"), c.start("b")
	const marker = "run_args = -e PASSWORD=hunter2-marker"
	sent := map[*member][]byte{}
	for _, m := range []*member{a, b} {
		sent[m] = []byte(m.name + "'s dataset: " + marker)
		m.publish(sent[m])
	}
	a.rec.waitFor(t, 0, "b's beat at a", beatFrom("b", sent[b]))
	b.rec.waitFor(t, 0, "a's beat at b", beatFrom("a", sent[a]))
	raw, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{marker, "PASSWORD", "hunter2"} {
		if i := bytes.Index(raw, []byte(needle)); i >= 0 {
			t.Fatalf("the device holds %q in clear at offset %d", needle, i)
		}
	}
}

// TestRun_RejectsSlotSealedWithAnotherKey: a node of the same cluster
// name whose secret differs (a stale secret after a rotation, or an
// impostor with write access to the device) is neither heard nor a crash.
func TestRun_RejectsSlotSealedWithAnotherKey(t *testing.T) {
	t.Parallel()
	dev := newDevFile(t, 2)
	good, other := newTestCluster(t, dev, "a", "b"), newTestCluster(t, dev, "a", "b")
	a, b := good.start("a"), other.start("b")
	a.publish([]byte("a's dataset"))
	b.publish([]byte("b's dataset"))
	a.rec.waitFor(t, 0, "reject of b's slot", eventFrom(sdk.EventReject, "b", "bad_tag: slot 1 does not open with this node's heartbeat key"))
	b.rec.waitFor(t, 0, "reject of a's slot", eventFrom(sdk.EventReject, "a", "bad_tag: slot 0"))
	a.rec.waitFor(t, 0, "stale b", eventFrom(sdk.EventStale, "b", "unchanged"))
	for _, m := range []*member{a, b} {
		for _, e := range m.rec.since(0) {
			if e.Kind == sdk.EventBeat {
				t.Errorf("%s: beat across keys: %s", m.name, describe([]sdk.HeartbeatEvent{e}))
			}
		}
	}
	// Still running, and hearing b once b has the right key.
	b.stop(t)
	from := a.rec.mark()
	b = good.start("b")
	b.publish([]byte("b, rekeyed"))
	a.rec.waitFor(t, from, "b's beat under the right key", beatFrom("b", []byte("b, rekeyed")))
}

func TestRun_GenerationNeverGoesBackwards(t *testing.T) {
	t.Parallel()
	dev := newDevFile(t, 2)
	// A slot from a run whose clock was far ahead of today's.
	ahead := uint64(time.Now().Add(24 * time.Hour).UnixNano())
	c := newTestCluster(t, dev, "a", "b")
	corruptSlot(t, dev, 1, func(b []byte) {
		encodeSlot(b, slotHeader{Index: 1, SlotSize: testSlotSize, Gen: ahead, Cluster: "prod", Node: "b"}, nil, c.sealer())
	})
	a, b := c.start("a"), c.start("b")
	b.publish([]byte("b's dataset"))
	a.rec.waitFor(t, 0, "b's beat", eventFrom(sdk.EventBeat, "b", ""))
	b.stop(t)
	raw, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	h, _, rej := decodeSlot(raw[labelSize+testSlotSize:], expect{Index: 1, SlotSize: testSlotSize, Cluster: "prod", Node: "b"}, c.sealer())
	if rej != nil {
		t.Fatalf("b's slot: %s", rej.Reason)
	}
	if h.Gen <= ahead {
		t.Fatalf("b wrote generation %d after a slot at %d", h.Gen, ahead)
	}
}

// TestRun_NoBeatBeforeTheFirstDataset: a just-started peer writes its slot
// before its daemon hands it a dataset; that slot is neither a beat (core
// could verify nothing in it) nor a reject (nothing is wrong with it).
func TestRun_NoBeatBeforeTheFirstDataset(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, newDevFile(t, 2), "a", "b")
	a, b := c.start("a"), c.start("b")
	time.Sleep(5 * testInterval)
	for _, e := range a.rec.since(0) {
		if e.Peer == "b" && (e.Kind == sdk.EventBeat || e.Kind == sdk.EventReject) {
			t.Fatalf("before b had a dataset, a saw %s", describe([]sdk.HeartbeatEvent{e}))
		}
	}
	from := a.rec.mark()
	b.publish([]byte("b's dataset"))
	if e := a.rec.waitFor(t, from, "b's beat", eventFrom(sdk.EventBeat, "b", "")); string(e.Dataset) != "b's dataset" {
		t.Errorf("b's beat carries %q", e.Dataset)
	}
}

// TestRun_HungDeviceStillReportsPeersStale blocks the I/O goroutine, a
// model of a device that stops answering (a lost SAN path): the clock
// keeps running, peers go stale, and Run still ends.
func TestRun_HungDeviceStillReportsPeersStale(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, newDevFile(t, 2), "a", "b")
	var hung atomic.Bool
	release := make(chan struct{})
	// Registered first, so it runs last: a's Run must end while its I/O
	// is still stuck.
	t.Cleanup(func() { close(release) })
	a := c.startWith("a", func(d *Driver) {
		d.beforeCycle = func() {
			if hung.Load() {
				<-release
			}
		}
	})
	b := c.start("b")
	expectDatasetsEverywhere(t, []*member{a, b}, "before")

	markA, markB := a.rec.mark(), b.rec.mark()
	hung.Store(true)
	a.rec.waitFor(t, markA, "stale b while a's device hangs", eventFrom(sdk.EventStale, "b", "unchanged"))
	b.rec.waitFor(t, markB, "stale a, whose writes stopped", eventFrom(sdk.EventStale, "a", "unchanged"))
	c.waitLog(t, "device I/O blocked")
	a.stop(t)
	c.waitLog(t, "still blocked at shutdown")
}

// waitLog waits for a log line containing want.
func (c *testCluster) waitLog(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(within); !strings.Contains(c.logs.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line says %q within %s; logs:\n%s", want, within, c.logs)
		}
	}
}

func TestRun_FallsBackToBufferedIOWithoutODirect(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, newDevFile(t, 2), "a", "b")
	c.noDirect = true
	expectDatasetsEverywhere(t, []*member{c.start("a"), c.start("b")}, "buffered")
	if !strings.Contains(c.logs.String(), "refuses O_DIRECT") {
		t.Errorf("the fallback is not logged; logs:\n%s", c.logs)
	}
}

func TestRun_RefusesUnusableConfig(t *testing.T) {
	t.Parallel()
	dev := newDevFile(t, 2)
	for _, tc := range []struct {
		name  string
		edit  func(*sdk.HeartbeatConfig)
		error string
	}{
		{"missing dev", func(c *sdk.HeartbeatConfig) { delete(c.Keywords, KwDev) }, "dev is required"},
		{"unopenable dev", func(c *sdk.HeartbeatConfig) { c.Keywords[KwDev] = dev + ".missing" }, "no such file"},
		{"device too small", func(c *sdk.HeartbeatConfig) { c.Nodes = append(c.Nodes, "c") }, "use a larger device"},
		{"offset past the slots", func(c *sdk.HeartbeatConfig) { c.Keywords[KwOffset] = "4k" }, "use a larger device"},
		{"unaligned slot_size", func(c *sdk.HeartbeatConfig) { c.Keywords[KwSlotSize] = "5000" }, "multiple of 4096"},
		{"unparsable slot_size", func(c *sdk.HeartbeatConfig) { c.Keywords[KwSlotSize] = "huge" }, "not a size"},
		{"unaligned offset", func(c *sdk.HeartbeatConfig) { c.Keywords[KwOffset] = "512" }, "multiple of 4096"},
		{"local node not listed", func(c *sdk.HeartbeatConfig) { c.LocalNode = "z" }, `local node "z" is not in nodes`},
		{"node listed twice", func(c *sdk.HeartbeatConfig) { c.Nodes = []string{"a", "a"} }, "listed twice"},
		{"no interval", func(c *sdk.HeartbeatConfig) { c.Interval = 0 }, "must be positive"},
		{"no key", func(c *sdk.HeartbeatConfig) { c.Key = nil }, "heartbeat key is 0 bytes"},
		{"short key", func(c *sdk.HeartbeatConfig) { c.Key = c.Key[:8] }, "heartbeat key is 8 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newTestCluster(t, dev, "a", "b").config("a")
			cfg.Keywords = map[string]string{KwDev: dev, KwSlotSize: fmt.Sprint(testSlotSize)}
			tc.edit(&cfg)
			done := make(chan error, 1)
			go func() {
				done <- New(Config{Logger: hclog.NewNullLogger()}).Run(context.Background(), cfg, nil, func(sdk.HeartbeatEvent) {})
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("Run = %v, want an error containing %q", err, tc.error)
				}
				if !strings.HasPrefix(err.Error(), "hb#1: ") {
					t.Errorf("error %q does not name the heartbeat", err)
				}
			case <-time.After(within):
				t.Fatal("Run did not refuse the config at once")
			}
		})
	}
}

// TestRun_OnLoopDevice runs the heartbeat on a real block device, where
// O_DIRECT goes to the device, not to a filesystem.
func TestRun_OnLoopDevice(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach a loop device")
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Skip("losetup not installed")
	}
	backing := newDevFile(t, 3)
	out, err := exec.Command(losetup, "--find", "--show", backing).CombinedOutput()
	if err != nil {
		t.Skipf("cannot attach a loop device: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "--detach", loop).CombinedOutput(); err != nil {
			t.Errorf("detach %s: %v: %s", loop, err, out)
		}
	})
	if st, err := os.Stat(loop); err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Fatalf("%s is not a device: %v", loop, err)
	}

	c := newTestCluster(t, loop, "a", "b", "c")
	ms := []*member{c.start("a"), c.start("b"), c.start("c")}
	expectDatasetsEverywhere(t, ms, "loop")
	if strings.Contains(c.logs.String(), "refuses O_DIRECT") {
		t.Errorf("a loop device refused O_DIRECT; logs:\n%s", c.logs)
	}
	mark := ms[0].rec.mark()
	ms[2].stop(t)
	ms[0].rec.waitFor(t, mark, "stale c on the loop device", eventFrom(sdk.EventStale, "c", "unchanged"))

	// What the device holds is what the format says.
	f, err := os.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw := make([]byte, testSlotSize)
	if _, err := io.ReadFull(io.NewSectionReader(f, labelSize+testSlotSize, testSlotSize), raw); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("loop from b:")) {
		t.Fatalf("b's dataset is in clear on %s", loop)
	}
	if _, p, rej := decodeSlot(raw, expect{Index: 1, SlotSize: testSlotSize, Cluster: "prod", Node: "b"}, c.sealer()); rej != nil || !strings.HasPrefix(string(p), "loop from b:") {
		t.Fatalf("b's slot on %s: %v, payload %q", loop, rej, p)
	}
}
