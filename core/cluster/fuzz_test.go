package cluster

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
)

// fuzzKey is the envelope key the fuzzers open with.
var fuzzKey = bytes.Repeat([]byte{0x5A}, 32)

// fuzzDatasets are the seeds' payloads: what nodes publish.
func fuzzDatasets() []*Dataset {
	return []*Dataset{
		{Node: "n2", State: Ready, Services: map[string]*ServiceInstance{
			"registry": {
				Status: status.Service{Name: "registry", Overall: status.Up, Avail: status.Up,
					Groups:    map[string]status.Status{"ip": status.Up, "fs": status.StdbyUp},
					Resources: []status.Resource{{RID: "ip#1", Status: status.Up, Label: "10.0.0.9@eth0", Log: []string{"ok"}}}},
				Type: "PRD", Updated: time.Unix(1700000000, 5).UTC(), Nodes: []string{"n1", "n2"},
				Config: ConfigVersion{Version: 17, Sum: "abc", Content: []byte("[DEFAULT]\nnodes = n1 n2\n")},
				State:  "started", Expect: Expectation{Value: "frozen", Target: "n1", Version: 3},
			},
		}},
		{Node: "n3", State: Joining},
		{},
	}
}

// FuzzOpen feeds cluster.Open what a heartbeat hands core: any bytes a
// peer, or anyone who can reach the heartbeat, sent. Properties: Open
// never panics; it returns an envelope or an error of a known kind, never
// both; it accepts only input whose HMAC verifies (checked here
// independently); an accepted envelope seals again to one that opens to
// the same fields, and its payload decodes as a Dataset without panicking.
// With resign the input is first given a good tag, as a peer holding the
// secret (or a bug on one) would: the fuzzer cannot forge one, and the
// JSON decoders behind the tag need exercising too.
func FuzzOpen(f *testing.F) {
	for i, ds := range fuzzDatasets() {
		payload, err := json.Marshal(ds)
		if err != nil {
			f.Fatal(err)
		}
		env := &Envelope{Cluster: "lab", Node: ds.Node, Gen: uint64(i + 1), Time: 1700000000000000000, Payload: payload}
		sealed, err := Seal(fuzzKey, env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed, false)
		f.Add(sealed[macSize:], true)
		other, err := Seal(bytes.Repeat([]byte{1}, 32), env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(other, false)
	}
	f.Add([]byte{}, false)
	f.Add(make([]byte, macSize+1), false)
	f.Add([]byte(`{"payload":{"services":{"x":null}}}`), true)

	f.Fuzz(func(t *testing.T, data []byte, resign bool) {
		if resign {
			data = append(fuzzTag(data), data...)
		}
		env, err := Open(fuzzKey, data)
		switch {
		case env == nil && err == nil:
			t.Fatal("neither an envelope nor an error")
		case env != nil && err != nil:
			t.Fatalf("both an envelope and an error: %v", err)
		case err != nil:
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadMAC) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if len(data) <= macSize || !hmac.Equal(data[:macSize], fuzzTag(data[macSize:])) {
			t.Fatalf("Open accepted %q, whose tag does not verify", data)
		}

		again, err := Seal(fuzzKey, env)
		if err != nil {
			t.Fatalf("an envelope Open accepted does not seal: %v", err)
		}
		back, err := Open(fuzzKey, again)
		if err != nil {
			t.Fatalf("a sealed envelope does not open: %v", err)
		}
		if back.Cluster != env.Cluster || back.Node != env.Node || back.Boot != env.Boot || back.Gen != env.Gen || back.Time != env.Time {
			t.Fatalf("sealed and opened again: %+v, want %+v", back, env)
		}
		checkDataset(t, env.Payload)
	})
}

// FuzzDataset feeds the dataset decoder (a peer's payload, once its
// envelope opened) any bytes. Properties: no panic; a dataset that
// decodes encodes again, and that encoding is stable (a node passes on
// and shows what it merged without losing or changing it).
func FuzzDataset(f *testing.F) {
	for _, ds := range fuzzDatasets() {
		b, err := json.Marshal(ds)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"services":{"x":null}}`))
	f.Add([]byte(`{"services":{"x":{"status":{"avail":"bogus"}}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDataset(t, data)
	})
}

// checkDataset decodes data as View.Beat does and checks the encoding
// round trip of what decoded.
func checkDataset(t *testing.T, data []byte) {
	t.Helper()
	var ds Dataset
	if err := json.Unmarshal(data, &ds); err != nil {
		return
	}
	once, err := json.Marshal(&ds)
	if err != nil {
		t.Fatalf("a decoded dataset does not encode: %v\ninput %q", err, data)
	}
	var back Dataset
	if err := json.Unmarshal(once, &back); err != nil {
		t.Fatalf("an encoded dataset does not decode: %v\n%s", err, once)
	}
	twice, err := json.Marshal(&back)
	if err != nil {
		t.Fatalf("a decoded dataset does not encode the second time: %v", err)
	}
	if !bytes.Equal(once, twice) {
		t.Fatalf("the encoding is not stable:\n%s\n%s", once, twice)
	}
}

func fuzzTag(body []byte) []byte {
	m := hmac.New(sha256.New, fuzzKey)
	m.Write(body)
	return m.Sum(nil)
}
