package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/config"
)

func pluginKeywords(typ string) ([]config.Keyword, bool) {
	switch typ {
	case "hb.net":
		return []config.Keyword{{Name: "port", Type: config.Int}, {Name: "addrs", Type: config.List}}, true
	case "hb.disk":
		return []config.Keyword{{Name: "dev", Required: true}}, true
	}
	return nil, false
}

func writeConf(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cluster.secret"), []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	p := filepath.Join(dir, "cluster.conf")
	os.WriteFile(p, []byte(text), 0o600)
	return p
}

const twoNodes = `[cluster]
name = lab
nodes = n1 n2
node = n1
secret_file = cluster.secret

[hb#1]
type = net
port = 10000
interval = 0.5s
timeout = 2s

[hb#2]
type = disk
dev = /dev/loop9
timeout = 2s
`

func loadTwo(t *testing.T, local string) *NodeConfig {
	t.Helper()
	c, err := LoadNodeConfig(writeConf(t, strings.Replace(twoNodes, "node = n1", "node = "+local, 1)), pluginKeywords)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNodeConfig_LoadsAndNeverShowsTheSecret(t *testing.T) {
	c := loadTwo(t, "n1")
	if c.Cluster != "lab" || len(c.Nodes) != 2 || len(c.Heartbeats) != 2 || c.Heartbeats[1].Interval != DefaultInterval {
		t.Fatalf("%+v", c)
	}
	if c.Heartbeats[0].Keywords["port"] != "10000" || c.Heartbeats[1].Keywords["dev"] != "/dev/loop9" {
		t.Fatalf("plugin keywords: %+v", c.Heartbeats)
	}
	if strings.Contains(c.String(), "abab") || strings.Contains(strings.ToLower(c.String()), "secret") {
		t.Fatalf("String shows the secret: %s", c)
	}
	if k1, k2 := c.Key("hb#1"), c.Key("envelope"); len(k1) != 32 || string(k1) == string(k2) {
		t.Fatal("derived keys must be 32 bytes and differ by use")
	}
}

func TestNodeConfig_ErrorsNameLineAndAllAtOnce(t *testing.T) {
	text := strings.Replace(twoNodes, "port = 10000", "prt = 10000", 1)
	text = strings.Replace(text, "timeout = 2s\n", "timeout = 0.1s\n", 1)
	text += "\n[hb#3]\ntype = carrier-pigeon\n"
	_, err := LoadNodeConfig(writeConf(t, text), pluginKeywords)
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) < 3 {
		t.Fatalf("want several errors at once, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`cluster.conf:9: [hb#1] prt: unknown keyword; did you mean "port"?`, "[hb#1] timeout", "hb.carrier-pigeon"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

func TestNodeConfig_SeveralNodesNeedASecret(t *testing.T) {
	_, err := LoadNodeConfig(writeConf(t, strings.Replace(twoNodes, "secret_file = cluster.secret\n", "", 1)), pluginKeywords)
	if err == nil || !strings.Contains(err.Error(), "needs a secret") {
		t.Fatalf("want a missing-secret error, got %v", err)
	}
}

func seal(t *testing.T, c *NodeConfig, boot uint64, gen uint64, at time.Time, ds Dataset) []byte {
	t.Helper()
	payload, _ := json.Marshal(ds)
	b, err := Seal(c.Key("envelope"), &Envelope{Cluster: c.Cluster, Node: ds.Node, Boot: boot, Gen: gen, Time: at.UnixNano(), Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestView_RejectsForgedReplayedAndForeign(t *testing.T) {
	c1, c2 := loadTwo(t, "n1"), loadTwo(t, "n2")
	now := time.Now()
	v := NewView(c1, now)
	good := seal(t, c2, 10, 5, now, Dataset{Node: "n2", State: Ready})
	if _, err := v.Beat("hb#1", "n2", good, now); err != nil {
		t.Fatal(err)
	}
	// The same envelope again on the same heartbeat: a duplicate, ignored
	// (it must not refresh liveness), not an error.
	if ev, err := v.Beat("hb#1", "n2", good, now); err != nil || len(ev) != 0 {
		t.Fatalf("duplicate: %v %v", ev, err)
	}
	// The same envelope on another heartbeat is fine: both carry it.
	if _, err := v.Beat("hb#2", "n2", good, now); err != nil {
		t.Fatal(err)
	}
	older := seal(t, c2, 10, 4, now, Dataset{Node: "n2", State: Ready})
	if _, err := v.Beat("hb#1", "n2", older, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	forged := append([]byte{}, good...)
	forged[len(forged)-3] ^= 1
	if _, err := v.Beat("hb#1", "n2", forged, now); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("forged: %v", err)
	}
	wrongKey := loadTwo(t, "n2")
	wrongKey.secret = []byte("another-secret-of-32-bytes......")
	if _, err := v.Beat("hb#1", "n2", seal(t, wrongKey, 10, 9, now, Dataset{Node: "n2"}), now); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := v.Beat("hb#1", "n3", seal(t, c2, 10, 10, now, Dataset{Node: "n3"}), now); !errors.Is(err, ErrForeign) {
		t.Fatalf("foreign node: %v", err)
	}
	// A new boot older than the last one is a replay too.
	if _, err := v.Beat("hb#1", "n2", seal(t, c2, 9, 99, now.Add(-time.Hour), Dataset{Node: "n2"}), now); !errors.Is(err, ErrReplay) {
		t.Fatalf("old boot: %v", err)
	}
	r := v.Snapshot().Rejects
	if r["hb#1/replay"] != 2 || r["hb#1/bad_tag"] != 2 || r["hb#1/foreign"] != 1 {
		t.Fatalf("reject counts: %v", r)
	}
}

func TestView_PeerLostOnlyWhenEveryHeartbeatIsStale(t *testing.T) {
	c1, c2 := loadTwo(t, "n1"), loadTwo(t, "n2")
	t0 := time.Now()
	v := NewView(c1, t0)
	gen := uint64(0)
	beat := func(hb string, at time.Time) {
		gen++
		if _, err := v.Beat(hb, "n2", seal(t, c2, 7, gen, at, Dataset{Node: "n2", State: Ready}), at); err != nil {
			t.Fatal(err)
		}
	}
	beat("hb#1", t0)
	beat("hb#2", t0)
	// The network heartbeat goes quiet; the disk one keeps beating.
	for i := 1; i <= 10; i++ {
		at := t0.Add(time.Duration(i) * 500 * time.Millisecond)
		beat("hb#2", at)
		if ev := v.Tick(at); len(ev) != 0 {
			t.Fatalf("peer lost at %v while the disk heartbeat lives: %v", at.Sub(t0), ev)
		}
	}
	if p := v.Snapshot().Peers["n2"]; !p.HB["hb#1"].Stale || p.HB["hb#2"].Stale || p.State != Ready {
		t.Fatalf("want hb#1 stale, hb#2 live, peer ready: %+v %+v %s", p.HB["hb#1"], p.HB["hb#2"], p.State)
	}
	// Now the disk goes quiet too: lost after its timeout, once.
	last := t0.Add(5 * time.Second)
	if ev := v.Tick(last.Add(1900 * time.Millisecond)); len(ev) != 0 {
		t.Fatalf("lost before the timeout: %v", ev)
	}
	ev := v.Tick(last.Add(2100 * time.Millisecond))
	if len(ev) != 1 || ev[0].Kind != "lost" || ev[0].Peer != "n2" {
		t.Fatalf("want n2 lost, got %v", ev)
	}
	if ev := v.Tick(last.Add(3 * time.Second)); len(ev) != 0 {
		t.Fatalf("lost reported twice: %v", ev)
	}
	// It comes back.
	gen++
	ev, _ = v.Beat("hb#2", "n2", seal(t, c2, 7, gen, last.Add(4*time.Second), Dataset{Node: "n2", State: Ready}), last.Add(4*time.Second))
	if len(ev) == 0 || ev[0].Kind != "found" {
		t.Fatalf("want found, got %v", ev)
	}
}

func TestView_NeverHeardPeerIsUnknownNotLost(t *testing.T) {
	v := NewView(loadTwo(t, "n1"), time.Now())
	if ev := v.Tick(time.Now().Add(time.Minute)); len(ev) != 0 {
		t.Fatalf("a peer never heard cannot be lost: %v", ev)
	}
	if v.Heard() {
		t.Fatal("Heard with a silent peer")
	}
}

func TestNodeConfig_ArbitratorsAndSplitAction(t *testing.T) {
	text := twoNodes + "\n[arbitrator#1]\nuri = tcp://10.0.0.9:1234\n"
	text = strings.Replace(text, "secret_file = cluster.secret\n", "secret_file = cluster.secret\nsplit_action = stop\n", 1)
	c, err := LoadNodeConfig(writeConf(t, text), pluginKeywords)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Arbitrators) != 1 || c.Arbitrators[0] != "10.0.0.9:1234" || c.SplitAction != "stop" {
		t.Fatalf("%+v %q", c.Arbitrators, c.SplitAction)
	}
	_, err = LoadNodeConfig(writeConf(t, twoNodes+"\n[arbitrator#1]\nuri = 10.0.0.9\n"), pluginKeywords)
	if err == nil || !strings.Contains(err.Error(), "tcp://host:port") {
		t.Fatalf("bad uri accepted: %v", err)
	}
}

func TestView_NewBootIsFreshWhateverTheClock(t *testing.T) {
	c1, c2 := loadTwo(t, "n1"), loadTwo(t, "n2")
	now := time.Now()
	v := NewView(c1, now)
	if _, err := v.Beat("hb#1", "n2", seal(t, c2, 10, 50, now, Dataset{Node: "n2", State: Ready}), now); err != nil {
		t.Fatal(err)
	}
	// n2 restarts with its clock stepped back an hour: its boot counter
	// still grows, so it is heard, not rejected as a replay (and fenced).
	if _, err := v.Beat("hb#1", "n2", seal(t, c2, 11, 1, now.Add(-time.Hour), Dataset{Node: "n2", State: Joining}), now); err != nil {
		t.Fatalf("a new boot with an earlier clock: %v", err)
	}
	if st := v.Snapshot().Peers["n2"].State; st != Joining {
		t.Fatalf("state %s, want the new boot's joining", st)
	}
}

func TestView_NewestDatasetWinsAcrossHeartbeats(t *testing.T) {
	c1, c2 := loadTwo(t, "n1"), loadTwo(t, "n2")
	now := time.Now()
	v := NewView(c1, now)
	newer := Dataset{Node: "n2", State: Ready, Services: map[string]*ServiceInstance{"svc": {State: "stopping"}}}
	older := Dataset{Node: "n2", State: Ready, Services: map[string]*ServiceInstance{"svc": {State: "started"}}}
	if _, err := v.Beat("hb#1", "n2", seal(t, c2, 10, 6, now, newer), now); err != nil {
		t.Fatal(err)
	}
	// The disk heartbeat delivers an older copy afterwards: it proves n2
	// alive on that heartbeat, and changes nothing of the dataset.
	ev, err := v.Beat("hb#2", "n2", seal(t, c2, 10, 5, now, older), now.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	p := v.Snapshot().Peers["n2"]
	if got := p.Dataset.Services["svc"].State; got != "stopping" {
		t.Fatalf("dataset went back to %q after an older copy on another heartbeat", got)
	}
	if p.HB["hb#2"].LastBeat.IsZero() || slices.ContainsFunc(ev, func(e Event) bool { return e.Kind == "dataset" }) {
		t.Fatalf("the older copy: liveness %v, events %v; want liveness only", p.HB["hb#2"].LastBeat, ev)
	}
}

func TestView_UndecodablePayloadRefreshesNoLiveness(t *testing.T) {
	c1, c2 := loadTwo(t, "n1"), loadTwo(t, "n2")
	now := time.Now()
	v := NewView(c1, now)
	raw, err := Seal(c2.Key("envelope"), &Envelope{Cluster: c2.Cluster, Node: "n2", Boot: 10, Gen: 1, Payload: []byte(`{"node":"n2","services":[1,2]}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Beat("hb#1", "n2", raw, now)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("want malformed, got %v", err)
	}
	if p := v.Snapshot().Peers["n2"]; !p.HB["hb#1"].LastBeat.IsZero() || p.State != Unknown {
		t.Fatalf("a payload that does not decode refreshed liveness: %+v %s", p.HB["hb#1"], p.State)
	}
}

func TestView_RejectsCountedByClassNotBySender(t *testing.T) {
	v := NewView(loadTwo(t, "n1"), time.Now())
	for port := range 5000 {
		v.Reject("hb#1", fmt.Sprintf("bad_tag: from 10.0.0.9:%d", port))
		v.Reject("hb#1", fmt.Sprintf("weird thing from 10.0.0.9:%d", port))
	}
	s := v.Snapshot()
	if len(s.Rejects) != 2 || s.Rejects["hb#1/bad_tag"] != 5000 || s.Rejects["hb#1/plugin"] != 5000 {
		t.Fatalf("rejects %v: want two keys, 5000 each", s.Rejects)
	}
	if s.LastReject["hb#1"] != "weird thing from 10.0.0.9:4999" {
		t.Fatalf("last reject %q", s.LastReject["hb#1"])
	}
}

func TestView_ResumeJudgesSilenceFromNow(t *testing.T) {
	c1, c2 := loadTwo(t, "n1"), loadTwo(t, "n2")
	t0 := time.Now()
	v := NewView(c1, t0)
	if _, err := v.Beat("hb#1", "n2", seal(t, c2, 10, 1, t0, Dataset{Node: "n2", State: Ready}), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Beat("hb#2", "n2", seal(t, c2, 10, 1, t0, Dataset{Node: "n2", State: Ready}), t0); err != nil {
		t.Fatal(err)
	}
	// This daemon slept 30 s (SIGSTOP): n2's silence is its own doing.
	woke := t0.Add(30 * time.Second)
	v.Resume(woke)
	if ev := v.Tick(woke.Add(time.Second)); len(ev) != 0 {
		t.Fatalf("peer lost right after the resume: %v", ev)
	}
	if ev := v.Tick(woke.Add(3 * time.Second)); len(ev) != 1 || ev[0].Kind != "lost" {
		t.Fatalf("want n2 lost a timeout after the resume, got %v", ev)
	}
}

func TestView_ReplayAfterReceiverRestartIsRejected(t *testing.T) {
	c1, c2 := loadTwo(t, "n1"), loadTwo(t, "n2")
	now := time.Now()
	v := NewView(c1, now)
	captured := seal(t, c2, 10, 5, now, Dataset{Node: "n2", State: Ready})
	if _, err := v.Beat("hb#1", "n2", seal(t, c2, 10, 6, now, Dataset{Node: "n2", State: Ready}), now); err != nil {
		t.Fatal(err)
	}
	// n1's daemon restarts: a new view, restored from what the old one saw.
	again := NewView(c1, now)
	again.Restore(v.Seen())
	if _, err := again.Beat("hb#2", "n2", captured, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("a captured envelope after the receiver's restart: %v, want a replay", err)
	}
	if _, err := again.Beat("hb#2", "n2", seal(t, c2, 10, 7, now, Dataset{Node: "n2", State: Ready}), now); err != nil {
		t.Fatalf("the next real one: %v", err)
	}
}

func TestView_DatasetWithoutInstanceOrWithABadNameIsMalformed(t *testing.T) {
	c1, c2 := loadTwo(t, "n1"), loadTwo(t, "n2")
	now := time.Now()
	for i, payload := range []string{`{"node":"n2","services":{"x":null}}`, `{"node":"n2","services":{"../../etc/x":{}}}`, `{"node":"n2","services":{"cluster":{}}}`} {
		v := NewView(c1, now)
		raw, err := Seal(c2.Key("envelope"), &Envelope{Cluster: c2.Cluster, Node: "n2", Boot: 10, Gen: uint64(i + 1), Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Beat("hb#1", "n2", raw, now); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: %v, want malformed", payload, err)
		}
		if v.Snapshot().Peers["n2"].Dataset != nil {
			t.Fatalf("%s: taken", payload)
		}
	}
}

func TestNodeConfig_RefusesASecretFileOthersCanRead(t *testing.T) {
	path := writeConf(t, twoNodes)
	secret := filepath.Join(filepath.Dir(path), "cluster.secret")
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadNodeConfig(path, pluginKeywords)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a 0644 secret_file: %v, want a refusal naming the fix", err)
	}
}
