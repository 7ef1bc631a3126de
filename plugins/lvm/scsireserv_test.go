package lvm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Keys used by the model tests.
const (
	keyA uint64 = 0xa1
	keyB uint64 = 0xb2
	keyC uint64 = 0xc3
)

// prStep is one command sent to a modelled device through a nexus.
type prStep struct {
	nexus string
	op    string // register, register-ignore, reserve, release, preempt, unregister, clear, write, read
	rk    uint64
	sark  uint64
	typ   prType
	want  error // nil, ErrReservationConflict or ErrIllegalRequest
}

func (s prStep) run(m *prModel) error {
	switch s.op {
	case "register":
		return m.register(s.nexus, s.rk, s.sark, false)
	case "register-ignore":
		return m.register(s.nexus, s.rk, s.sark, true)
	case "reserve":
		return m.reserve(s.nexus, s.rk, s.typ)
	case "release":
		return m.release(s.nexus, s.rk, s.typ)
	case "preempt":
		return m.preempt(s.nexus, s.rk, s.sark, s.typ)
	case "clear":
		return m.clear(s.nexus, s.rk)
	case "write":
		return m.Write(s.nexus)
	case "read":
		return m.Read(s.nexus)
	}
	panic("unknown op " + s.op)
}

func TestPRModel_FollowsSPC4(t *testing.T) {
	const we, wero, earo, wear = prWriteExclusive, prWriteExclusiveRegistrantsOnly, prExclusiveAccessRegistrantsOnly, prWriteExclusiveAllRegistrants
	regA := prStep{nexus: "a", op: "register", sark: keyA}
	regB := prStep{nexus: "b", op: "register", sark: keyB}
	resA := prStep{nexus: "a", op: "reserve", rk: keyA, typ: wero}
	tests := []struct {
		name     string
		steps    []prStep
		gen      uint32
		holder   string // "" when not reserved, "*" for all registrants
		resType  prType
		regs     map[string]uint64
		aborts   []string // nexuses whose write must now be refused
		allowed  []string // nexuses whose write must be accepted
		readDeny []string // nexuses whose read must be refused
	}{
		{name: "register bumps the generation", steps: []prStep{regA, regB}, gen: 2, regs: map[string]uint64{"a": keyA, "b": keyB}},
		{name: "register from an unregistered nexus needs key 0",
			steps: []prStep{{nexus: "a", op: "register", rk: keyC, sark: keyA, want: ErrReservationConflict}}, gen: 0, regs: map[string]uint64{}},
		{name: "register of a registered nexus needs its key",
			steps: []prStep{regA, {nexus: "a", op: "register", rk: keyC, sark: keyB, want: ErrReservationConflict}}, gen: 1, regs: map[string]uint64{"a": keyA}},
		{name: "register and ignore replaces the key",
			steps: []prStep{regA, {nexus: "a", op: "register-ignore", sark: keyC}}, gen: 2, regs: map[string]uint64{"a": keyC}},
		{name: "unregistering an unregistered nexus with key 0 is a no-op",
			steps: []prStep{{nexus: "a", op: "register"}}, gen: 0, regs: map[string]uint64{}},
		{name: "two nexuses may share a key",
			steps: []prStep{regA, {nexus: "a2", op: "register", sark: keyA}}, gen: 2, regs: map[string]uint64{"a": keyA, "a2": keyA}},
		{name: "reserve does not bump the generation", steps: []prStep{regA, resA}, gen: 1, holder: "a", resType: wero,
			regs: map[string]uint64{"a": keyA}, allowed: []string{"a"}, aborts: []string{"b"}},
		{name: "reserve by an unregistered nexus is a conflict",
			steps: []prStep{{nexus: "a", op: "reserve", rk: keyA, typ: wero, want: ErrReservationConflict}}, gen: 0, regs: map[string]uint64{}},
		{name: "reserve with another nexus's key is a conflict",
			steps: []prStep{regA, regB, {nexus: "b", op: "reserve", rk: keyA, typ: wero, want: ErrReservationConflict}}, gen: 2, regs: map[string]uint64{"a": keyA, "b": keyB}},
		{name: "reserve again by the holder is a no-op", steps: []prStep{regA, resA, resA}, gen: 1, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA}},
		{name: "reserve by the holder with another type is a conflict",
			steps: []prStep{regA, resA, {nexus: "a", op: "reserve", rk: keyA, typ: we, want: ErrReservationConflict}}, gen: 1, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA}},
		{name: "reserve while another holds it is a conflict",
			steps: []prStep{regA, regB, resA, {nexus: "b", op: "reserve", rk: keyB, typ: wero, want: ErrReservationConflict}}, gen: 2, holder: "a", resType: wero,
			regs: map[string]uint64{"a": keyA, "b": keyB}, allowed: []string{"a", "b"}, aborts: []string{"c"}},
		{name: "reserve with an obsolete type is an illegal request",
			steps: []prStep{regA, {nexus: "a", op: "reserve", rk: keyA, typ: 2, want: ErrIllegalRequest}}, gen: 1, regs: map[string]uint64{"a": keyA}},
		{name: "release by a registered non-holder is a no-op",
			steps: []prStep{regA, regB, resA, {nexus: "b", op: "release", rk: keyB, typ: wero}}, gen: 2, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA, "b": keyB}},
		{name: "release by an unregistered nexus is a conflict",
			steps: []prStep{regA, resA, {nexus: "b", op: "release", rk: keyB, typ: wero, want: ErrReservationConflict}}, gen: 1, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA}},
		{name: "release with the wrong type is an illegal request",
			steps: []prStep{regA, resA, {nexus: "a", op: "release", rk: keyA, typ: we, want: ErrIllegalRequest}}, gen: 1, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA}},
		{name: "release by the holder, without a new generation",
			steps: []prStep{regA, resA, {nexus: "a", op: "release", rk: keyA, typ: wero}}, gen: 1, regs: map[string]uint64{"a": keyA}, allowed: []string{"b"}},
		{name: "unregistering the holder releases",
			steps: []prStep{regA, resA, {nexus: "a", op: "register", rk: keyA}}, gen: 2, regs: map[string]uint64{}},
		{name: "preempt and abort of the holder moves the reservation and fences it",
			steps: []prStep{regA, resA, regB, {nexus: "b", op: "preempt", rk: keyB, sark: keyA, typ: wero}}, gen: 3, holder: "b", resType: wero,
			regs: map[string]uint64{"b": keyB}, allowed: []string{"b"}, aborts: []string{"a"}},
		{name: "preempt removes every nexus registered with the key",
			steps: []prStep{regA, {nexus: "a2", op: "register", sark: keyA}, resA, regB, {nexus: "b", op: "preempt", rk: keyB, sark: keyA, typ: wero}}, gen: 4, holder: "b", resType: wero,
			regs: map[string]uint64{"b": keyB}, aborts: []string{"a", "a2"}},
		{name: "preempt of a non-holder only removes its registration",
			steps: []prStep{regA, resA, regB, {nexus: "c", op: "register", sark: keyC}, {nexus: "a", op: "preempt", rk: keyA, sark: keyC, typ: wero}}, gen: 4, holder: "a", resType: wero,
			regs: map[string]uint64{"a": keyA, "b": keyB}, aborts: []string{"c"}, allowed: []string{"b"}},
		{name: "preempt without a reservation only removes registrations",
			steps: []prStep{regA, regB, {nexus: "b", op: "preempt", rk: keyB, sark: keyA, typ: wero}}, gen: 3, regs: map[string]uint64{"b": keyB}},
		{name: "preempt of an unknown key is a conflict",
			steps: []prStep{regA, resA, {nexus: "a", op: "preempt", rk: keyA, sark: keyC, typ: wero, want: ErrReservationConflict}}, gen: 1, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA}},
		{name: "preempt by an unregistered nexus is a conflict",
			steps: []prStep{regA, resA, {nexus: "b", op: "preempt", rk: keyB, sark: keyA, typ: wero, want: ErrReservationConflict}}, gen: 1, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA}},
		{name: "preempt of key 0 without all-registrants is an illegal request",
			steps: []prStep{regA, resA, regB, {nexus: "b", op: "preempt", rk: keyB, typ: wero, want: ErrIllegalRequest}}, gen: 2, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA, "b": keyB}},
		{name: "preempting one's own reservation changes its type",
			steps: []prStep{regA, {nexus: "a", op: "reserve", rk: keyA, typ: we}, {nexus: "a", op: "preempt", rk: keyA, sark: keyA, typ: wero}}, gen: 2, holder: "a", resType: wero, regs: map[string]uint64{"a": keyA}},
		{name: "preempt of key 0 takes an all-registrants reservation",
			steps: []prStep{regA, regB, {nexus: "a", op: "reserve", rk: keyA, typ: wear}, {nexus: "b", op: "preempt", rk: keyB, typ: wero}}, gen: 3, holder: "b", resType: wero,
			regs: map[string]uint64{"b": keyB}, aborts: []string{"a"}},
		{name: "all registrants hold an all-registrants reservation",
			steps: []prStep{regA, regB, {nexus: "a", op: "reserve", rk: keyA, typ: wear}, {nexus: "a", op: "register", rk: keyA}}, gen: 3, holder: "*", resType: wear,
			regs: map[string]uint64{"b": keyB}, allowed: []string{"b"}, aborts: []string{"a"}},
		{name: "write exclusive lets only the holder write",
			steps: []prStep{regA, regB, {nexus: "a", op: "reserve", rk: keyA, typ: we}}, gen: 2, holder: "a", resType: we,
			regs: map[string]uint64{"a": keyA, "b": keyB}, allowed: []string{"a"}, aborts: []string{"b"}},
		{name: "exclusive access, registrants only refuses reads from the unregistered",
			steps: []prStep{regA, {nexus: "a", op: "reserve", rk: keyA, typ: earo}}, gen: 1, holder: "a", resType: earo,
			regs: map[string]uint64{"a": keyA}, readDeny: []string{"b"}},
		{name: "clear removes everything",
			steps: []prStep{regA, regB, resA, {nexus: "b", op: "clear", rk: keyB}}, gen: 3, regs: map[string]uint64{}, allowed: []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newPRModel()
			for i, s := range tt.steps {
				if err := s.run(m); !errors.Is(err, s.want) || (err != nil) != (s.want != nil) {
					t.Fatalf("step %d (%s by %s): %v, want %v", i, s.op, s.nexus, err, s.want)
				}
			}
			if m.generation != tt.gen {
				t.Errorf("generation %d, want %d", m.generation, tt.gen)
			}
			holder := ""
			if m.reserved {
				holder = m.holder
				if m.resType.allRegistrants() {
					holder = "*"
				}
			}
			if holder != tt.holder || (m.reserved && m.resType != tt.resType) {
				t.Errorf("reservation held by %q as %v, want %q as %v", holder, m.resType, tt.holder, tt.resType)
			}
			if len(m.regs) != len(tt.regs) {
				t.Errorf("registrations %v, want %v", m.regs, tt.regs)
			}
			for n, k := range tt.regs {
				if m.regs[n] != k {
					t.Errorf("registrations %v, want %v", m.regs, tt.regs)
				}
			}
			for _, n := range tt.allowed {
				if err := m.Write(n); err != nil {
					t.Errorf("write from %s: %v, want accepted", n, err)
				}
			}
			for _, n := range tt.aborts {
				if err := m.Write(n); !errors.Is(err, ErrReservationConflict) {
					t.Errorf("write from %s: %v, want a reservation conflict", n, err)
				}
			}
			for _, n := range tt.readDeny {
				if err := m.Read(n); !errors.Is(err, ErrReservationConflict) {
					t.Errorf("read from %s: %v, want a reservation conflict", n, err)
				}
			}
		})
	}
}

func TestNodeKey_IsSHA256OfTheHostName(t *testing.T) {
	sum := sha256.Sum256([]byte("vigil:node1"))
	if got, want := nodeKey("node1"), binary.BigEndian.Uint64(sum[:8]); got != want {
		t.Errorf("nodeKey(node1) = %s, want %s", fmtKey(got), fmtKey(want))
	}
	// Pinned, so that a change of derivation (which would orphan every
	// registration in the field) fails here.
	if got := fmtKey(nodeKey("node1")); got != "0x2e52cd19dc60030b" {
		t.Errorf("nodeKey(node1) = %s, changed", got)
	}
	if nodeKey("node1") == nodeKey("node2") {
		t.Error("two nodes share a key")
	}
}

func TestParseKeyMap(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]uint64
		wantErr string
	}{
		{in: "", want: map[string]uint64{}},
		{in: "n1=0x1a2b n2=3C4D", want: map[string]uint64{"n1": 0x1a2b, "n2": 0x3c4d}},
		{in: "n1=0xffffffffffffffff", want: map[string]uint64{"n1": 1<<64 - 1}},
		{in: "0x1a2b", wantErr: "one key per node"},
		{in: "n1=0x0", wantErr: "cannot be 0"},
		{in: "n1=xyz", wantErr: "not a reservation key"},
		{in: "n1=0x11112222333344445", wantErr: "not a reservation key"},
		{in: "n1=0x1 n2=0x1", wantErr: "share the key 0x1"},
		{in: "n1=0x1 n1=0x2", wantErr: "two keys"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseKeyMap(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for n, k := range tt.want {
				if got[n] != k {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestReservationKey_FromKeywordElseDerived(t *testing.T) {
	d := New(Config{Hostname: "node-a", Logger: hclog.NewNullLogger()})
	tests := []struct {
		kw   string
		want uint64
	}{
		{"", nodeKey("node-a")},
		{"node-b=0x99", nodeKey("node-a")},
		{"node-a=0x42 node-b=0x99", 0x42},
	}
	for _, tt := range tests {
		r := sdk.Resource{Keywords: map[string]string{KwSCSIReservKey: tt.kw}}
		if got, err := d.reservationKey(r); err != nil || got != tt.want {
			t.Errorf("%q: %s, %v; want %s", tt.kw, fmtKey(got), err, fmtKey(tt.want))
		}
	}
}

// modelNode is one cluster node of a model test: its reserver over the shared
// modelled devices.
func modelNode(farm prFarm, name string, key uint64) reserver {
	return reserver{key: key, open: farm.opener(name), log: hclog.NewNullLogger()}
}

// TestSCSIReserv_Model_TwoNodes runs start/stop/status sequences of two
// nodes over two modelled PVs (a model because this host has no SCSI
// target; see prmodel_test.go).
func TestSCSIReserv_Model_TwoNodes(t *testing.T) {
	devs := []string{"/dev/sdb", "/dev/sdc"}
	type action struct {
		node    string // "a" or "b"
		op      string // start, stop
		wantErr error
		wantLog string
	}
	tests := []struct {
		name    string
		actions []action
		// The end state, on every device.
		holder   uint64 // 0: not reserved
		regs     []uint64
		canWrite map[string]bool
		statusA  sdk.Status
		statusB  sdk.Status
		logA     string // in A's status reasons
	}{
		{
			name:    "start on A reserves",
			actions: []action{{node: "a", op: "start", wantLog: "reserved /dev/sdb with key 0xa1"}},
			holder:  keyA, regs: []uint64{keyA},
			canWrite: map[string]bool{"a": true, "b": false},
			statusA:  sdk.StatusUp, statusB: sdk.StatusDown, logA: "",
		},
		{
			name:    "start twice on A is idempotent",
			actions: []action{{node: "a", op: "start"}, {node: "a", op: "start"}},
			holder:  keyA, regs: []uint64{keyA},
			canWrite: map[string]bool{"a": true, "b": false},
			statusA:  sdk.StatusUp, statusB: sdk.StatusDown,
		},
		{
			name: "start on B while A holds it preempts A",
			actions: []action{{node: "a", op: "start"},
				{node: "b", op: "start", wantLog: "preempted the reservation of /dev/sdc held by key 0xa1"}},
			holder: keyB, regs: []uint64{keyB},
			canWrite: map[string]bool{"a": false, "b": true},
			statusA:  sdk.StatusDown, statusB: sdk.StatusUp, logA: "reservation on /dev/sdb held by key 0xb2 (this node's key is 0xa1)",
		},
		{
			name: "start on A after B took over takes it back",
			actions: []action{{node: "a", op: "start"}, {node: "b", op: "start"},
				{node: "a", op: "start", wantLog: "preempted the reservation of /dev/sdb held by key 0xb2"}},
			holder: keyA, regs: []uint64{keyA},
			canWrite: map[string]bool{"a": true, "b": false},
			statusA:  sdk.StatusUp, statusB: sdk.StatusDown,
		},
		{
			name: "stop on B releases and unregisters",
			actions: []action{{node: "a", op: "start"}, {node: "b", op: "start"},
				{node: "b", op: "stop", wantLog: "unregistered key 0xb2 from /dev/sdc"}},
			holder: 0, regs: nil,
			canWrite: map[string]bool{"a": true, "b": true},
			statusA:  sdk.StatusDown, statusB: sdk.StatusDown, logA: "no reservation on /dev/sdb",
		},
		{
			name:    "stop twice is idempotent",
			actions: []action{{node: "a", op: "start"}, {node: "a", op: "stop"}, {node: "a", op: "stop"}},
			holder:  0, regs: nil,
			canWrite: map[string]bool{"a": true, "b": true},
			statusA:  sdk.StatusDown, statusB: sdk.StatusDown,
		},
		{
			name:    "stop on the preempted node leaves the new holder alone",
			actions: []action{{node: "a", op: "start"}, {node: "b", op: "start"}, {node: "a", op: "stop"}},
			holder:  keyB, regs: []uint64{keyB},
			canWrite: map[string]bool{"a": false, "b": true},
			statusA:  sdk.StatusDown, statusB: sdk.StatusUp,
		},
		{
			name:    "stop on a node that never started does nothing",
			actions: []action{{node: "a", op: "start"}, {node: "b", op: "stop"}},
			holder:  keyA, regs: []uint64{keyA},
			canWrite: map[string]bool{"a": true, "b": false},
			statusA:  sdk.StatusUp, statusB: sdk.StatusDown,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			farm := newPRFarm(devs...)
			nodes := map[string]reserver{"a": modelNode(farm, "a", keyA), "b": modelNode(farm, "b", keyB)}
			for i, a := range tt.actions {
				var log []string
				var err error
				switch a.op {
				case "start":
					log, err = nodes[a.node].acquire(ctx, devs)
				case "stop":
					log, err = nodes[a.node].release(ctx, devs)
				}
				if !errors.Is(err, a.wantErr) || (err != nil) != (a.wantErr != nil) {
					t.Fatalf("action %d (%s on %s): %v, want %v", i, a.op, a.node, err, a.wantErr)
				}
				if a.wantLog != "" && !strings.Contains(strings.Join(log, "\n"), a.wantLog) {
					t.Errorf("action %d (%s on %s): log %q does not say %q", i, a.op, a.node, log, a.wantLog)
				}
			}
			for _, dev := range devs {
				m := farm[dev]
				res, _ := m.nexus("x").ReadReservation(ctx)
				if res.Held != (tt.holder != 0) || res.Key != tt.holder || (res.Held && res.Type != reservationType) {
					t.Errorf("%s: reservation %+v, want key %s type 5", dev, res, fmtKey(tt.holder))
				}
				keys, _ := m.nexus("x").ReadKeys(ctx)
				if slices.Sort(keys.Keys); !slices.Equal(keys.Keys, tt.regs) {
					t.Errorf("%s: registrations %v, want %v", dev, keys.Keys, tt.regs)
				}
				for n, ok := range tt.canWrite {
					if err := m.Write(n); (err == nil) != ok {
						t.Errorf("%s: write from %s: %v, want accepted=%v", dev, n, err, ok)
					}
				}
			}
			stA := assessReservation(keyA, nodes["a"].states(ctx, devs))
			stB := assessReservation(keyB, nodes["b"].states(ctx, devs))
			if stA.Status != tt.statusA || stB.Status != tt.statusB {
				t.Errorf("reservation status A %v %q, B %v %q; want %v, %v", stA.Status, stA.Log, stB.Status, stB.Log, tt.statusA, tt.statusB)
			}
			if tt.logA != "" && !strings.Contains(strings.Join(stA.Log, "\n"), tt.logA) {
				t.Errorf("A's status %q does not say %q", stA.Log, tt.logA)
			}
		})
	}
}

func TestSCSIReserv_Model_StartFencesStaleRegistrations(t *testing.T) {
	ctx := context.Background()
	devs := []string{"/dev/sdb"}
	farm := newPRFarm(devs...)
	m := farm["/dev/sdb"]
	// C registered (it crashed before it could reserve) and A holds the
	// reservation: both can write under type 5, both must be fenced.
	for _, s := range []prStep{
		{nexus: "c", op: "register", sark: keyC},
		{nexus: "a", op: "register", sark: keyA},
		{nexus: "a", op: "reserve", rk: keyA, typ: reservationType},
	} {
		if err := s.run(m); err != nil {
			t.Fatal(err)
		}
	}
	log, err := modelNode(farm, "b", keyB).acquire(ctx, devs)
	if err != nil {
		t.Fatalf("start on B: %v", err)
	}
	if !strings.Contains(strings.Join(log, "\n"), "removed the registration of key 0xc3") {
		t.Errorf("log %q does not say C's registration was removed", log)
	}
	for _, n := range []string{"a", "c"} {
		if err := m.Write(n); !errors.Is(err, ErrReservationConflict) {
			t.Errorf("write from %s after B's start: %v, want a conflict", n, err)
		}
	}
	if err := m.Write("b"); err != nil {
		t.Errorf("write from B: %v", err)
	}
}

func TestSCSIReserv_Model_StartConvertsOtherTypes(t *testing.T) {
	tests := []struct {
		name  string
		setup []prStep
		log   string
	}{
		{name: "ours as write exclusive", setup: []prStep{
			{nexus: "a", op: "register", sark: keyA}, {nexus: "a", op: "reserve", rk: keyA, typ: prWriteExclusive}},
			log: "changed the reservation of /dev/sdb"},
		{name: "all registrants", setup: []prStep{
			{nexus: "b", op: "register", sark: keyB}, {nexus: "b", op: "reserve", rk: keyB, typ: prExclusiveAccessAllRegistrants}},
			log: "preempted the all-registrants reservation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			devs := []string{"/dev/sdb"}
			farm := newPRFarm(devs...)
			for _, s := range tt.setup {
				if err := s.run(farm["/dev/sdb"]); err != nil {
					t.Fatal(err)
				}
			}
			log, err := modelNode(farm, "a", keyA).acquire(ctx, devs)
			if err != nil || !strings.Contains(strings.Join(log, "\n"), tt.log) {
				t.Fatalf("start: %v %q, want %q", err, log, tt.log)
			}
			res, _ := farm["/dev/sdb"].nexus("a").ReadReservation(ctx)
			if !res.Held || res.Key != keyA || res.Type != reservationType {
				t.Errorf("reservation %+v, want A's of type 5", res)
			}
		})
	}
}

func TestSCSIReserv_Model_StartStopsAtADeviceWithoutPR(t *testing.T) {
	ctx := context.Background()
	farm := newPRFarm("/dev/sdb")
	_, err := modelNode(farm, "a", keyA).acquire(ctx, []string{"/dev/sdb", "/dev/loop0"})
	if !errors.Is(err, ErrPRNotSupported) || !strings.Contains(err.Error(), "/dev/loop0") {
		t.Errorf("start: %v, want ErrPRNotSupported naming /dev/loop0", err)
	}
}

func TestAssessReservation(t *testing.T) {
	held := func(k uint64) prReservation { return prReservation{Held: true, Key: k, Type: reservationType} }
	tests := []struct {
		name string
		sts  []prState
		want sdk.Status
		log  string
	}{
		{"ours everywhere", []prState{{dev: "x", res: held(keyA)}, {dev: "y", res: held(keyA)}}, sdk.StatusUp, ""},
		{"free everywhere", []prState{{dev: "x"}, {dev: "y"}}, sdk.StatusDown, "no reservation on x"},
		{"another key", []prState{{dev: "x", res: held(keyB)}}, sdk.StatusDown, "reservation on x held by key 0xb2 (this node's key is 0xa1)"},
		{"ours on one only", []prState{{dev: "x", res: held(keyA)}, {dev: "y"}}, sdk.StatusWarn, "no reservation on y"},
		{"ours with another type", []prState{{dev: "x", res: prReservation{Held: true, Key: keyA, Type: prWriteExclusive}}}, sdk.StatusWarn, "want Write Exclusive, registrants only (type 5)"},
		{"unreadable", []prState{{dev: "x", res: held(keyA)}, {dev: "y", err: ErrPRNotSupported}}, sdk.StatusUndef, "cannot read the reservation of y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := assessReservation(keyA, tt.sts)
			if st.Status != tt.want {
				t.Errorf("status %v (%q), want %v", st.Status, st.Log, tt.want)
			}
			if tt.log != "" && !strings.Contains(strings.Join(st.Log, "\n"), tt.log) {
				t.Errorf("log %q does not say %q", st.Log, tt.log)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	up, down, warn, undef := sdk.StatusUp, sdk.StatusDown, sdk.StatusWarn, sdk.StatusUndef
	for _, tt := range []struct{ a, b, want sdk.Status }{
		{up, up, up}, {down, down, down}, {up, down, warn}, {down, up, warn},
		{warn, up, warn}, {warn, down, warn}, {undef, up, undef}, {down, undef, undef},
	} {
		if got := combine(tt.a, tt.b); got != tt.want {
			t.Errorf("combine(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestDriver_SCSIReserv_Model_TakeoverOnRealVG runs two drivers (two
// nodes) over a real volume group on two loop devices, with the model in
// place of the disks' PR support: loop devices refuse SCSI commands, and
// this host has no SCSI target. LVM does not write through the model, so
// the model's refusals are checked with its own Write.
func TestDriver_SCSIReserv_Model_TakeoverOnRealVG(t *testing.T) {
	vg, lvmConfig, devs := sharedVGOn(t, 2)
	ctx := context.Background()
	farm := newPRFarm(devs...)
	newNode := func(host string) *Driver {
		d := New(Config{Hostname: host, LVMConfig: lvmConfig, Logger: hclog.NewNullLogger()})
		d.openPR = farm.opener(host)
		return d
	}
	a, b := newNode("node-a"), newNode("node-b")
	keyOf := func(d *Driver) string { return fmtKey(nodeKey(d.cfg.Hostname)) }
	r := sdk.Resource{RID: "vg#1", Type: "disk.vg", Keywords: map[string]string{KwVGName: vg, KwSCSIReserv: "true"}}
	reasons := func(st sdk.ResourceStatus) string { return strings.Join(st.Log, "\n") }

	if st := a.Status(ctx, r); st.Status != sdk.StatusDown || !strings.Contains(reasons(st), "no reservation on "+devs[0]) {
		t.Fatalf("A before start: %v %q, want down, not reserved", st.Status, st.Log)
	}
	for range 2 { // idempotent
		if log, err := a.Start(ctx, r); err != nil {
			t.Fatalf("start on A: %v %q", err, log)
		}
	}
	if st := a.Status(ctx, r); st.Status != sdk.StatusUp {
		t.Fatalf("A after start: %v %q, want up", st.Status, st.Log)
	}
	if st := b.Status(ctx, r); st.Status != sdk.StatusDown || !strings.Contains(reasons(st), "held by key "+keyOf(a)) {
		t.Fatalf("B while A holds it: %v %q, want down naming A's key", st.Status, st.Log)
	}

	// B takes over from a lost A: A's tag stays on the group until B
	// moves it, and A's status must say its disks are no longer its own.
	rsB, _, err := b.reservation(ctx, r, vg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rsB.acquire(ctx, devs); err != nil {
		t.Fatalf("B's reservation: %v", err)
	}
	st := a.Status(ctx, r)
	if st.Status != sdk.StatusWarn || !strings.Contains(reasons(st), "reservation on "+devs[1]+" held by key "+keyOf(b)) {
		t.Fatalf("A after B preempted: %v %q, want warn naming B's key", st.Status, st.Log)
	}
	log, err := b.Start(ctx, r)
	if err != nil {
		t.Fatalf("start on B: %v %q", err, log)
	}
	if got := tags(t, lvmConfig, vg); got != "node-b" {
		t.Errorf("tags after B's start: %q", got)
	}
	for _, dev := range devs {
		if err := farm[dev].Write("node-a"); !errors.Is(err, ErrReservationConflict) {
			t.Errorf("%s: write from A after the takeover: %v, want a reservation conflict", dev, err)
		}
		if err := farm[dev].Write("node-b"); err != nil {
			t.Errorf("%s: write from B: %v", dev, err)
		}
	}
	if st := b.Status(ctx, r); st.Status != sdk.StatusUp {
		t.Errorf("B after start: %v %q, want up", st.Status, st.Log)
	}
	if st := a.Status(ctx, r); st.Status != sdk.StatusDown || !strings.Contains(reasons(st), "held by key "+keyOf(b)) {
		t.Errorf("A after B's start: %v %q, want down naming B's key", st.Status, st.Log)
	}

	for range 2 { // idempotent
		if log, err := b.Stop(ctx, r); err != nil {
			t.Fatalf("stop on B: %v %q", err, log)
		}
	}
	for _, dev := range devs {
		keys, _ := farm[dev].nexus("x").ReadKeys(ctx)
		res, _ := farm[dev].nexus("x").ReadReservation(ctx)
		if len(keys.Keys) != 0 || res.Held {
			t.Errorf("%s after B's stop: keys %v, reservation %+v; want none", dev, keys.Keys, res)
		}
	}
	if st := b.Status(ctx, r); st.Status != sdk.StatusDown || !strings.Contains(reasons(st), "no reservation on") {
		t.Errorf("B after stop: %v %q, want down, not reserved", st.Status, st.Log)
	}
}

func TestValidate_SCSIReservKey(t *testing.T) {
	d := New(Config{Hostname: "h", Logger: hclog.NewNullLogger()})
	for kw, want := range map[string]int{"": 0, "h=0x1 g=0x2": 0, "0x1": 1, "h=0": 1} {
		r := sdk.Resource{Keywords: map[string]string{KwVGName: "vg", KwSCSIReserv: "true", KwSCSIReservKey: kw}}
		if errs := d.Validate(context.Background(), r); len(errs) != want {
			t.Errorf("%q: %d errors (%+v), want %d", kw, len(errs), errs, want)
		}
	}
}

// A group with a physical volume this node cannot see (LVM confined to
// one of its two devices): the reservation cannot be handled, start
// refuses before it reserves, tags or activates anything, and status says
// why.
func TestDriver_SCSIReserv_MissingPVRefused(t *testing.T) {
	vg, lvmConfig, devs := sharedVGOn(t, 2)
	ctx := context.Background()
	oneDev := fmt.Sprintf(`devices { filter=["a|^%s$|","r|.*|"] global_filter=["a|^%s$|","r|.*|"] use_devicesfile=0 } backup { backup=0 archive=0 }`, devs[0], devs[0])
	farm := newPRFarm(devs...)
	d := New(Config{Hostname: "node-a", LVMConfig: oneDev, Logger: hclog.NewNullLogger()})
	d.openPR = farm.opener("node-a")
	r := sdk.Resource{RID: "vg#1", Type: "disk.vg", Keywords: map[string]string{KwVGName: vg, KwSCSIReserv: "true"}}
	if _, err := d.Start(ctx, r); err == nil || !strings.Contains(err.Error(), "missing physical volume") {
		t.Fatalf("start: %v, want a missing physical volume", err)
	}
	if got := tags(t, lvmConfig, vg); got != "" {
		t.Errorf("tags after the refused start: %q, want none", got)
	}
	for _, dev := range devs {
		if keys, _ := farm[dev].nexus("x").ReadKeys(ctx); len(keys.Keys) != 0 {
			t.Errorf("%s: keys %v after the refused start, want none", dev, keys.Keys)
		}
	}
	if st := d.Status(ctx, r); st.Status != sdk.StatusUndef || !strings.Contains(strings.Join(st.Log, "\n"), "missing physical volume") {
		t.Errorf("status: %v %q, want undef naming the missing physical volume", st.Status, st.Log)
	}
}
