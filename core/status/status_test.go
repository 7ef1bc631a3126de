package status

import (
	"encoding/json"
	"math/rand"
	"testing"
)

func TestString_RoundTripsThroughParse(t *testing.T) {
	want := map[Status]string{
		Undef: "undef", Up: "up", Down: "down", Warn: "warn",
		NA: "n/a", StdbyUp: "stdby up", StdbyDown: "stdby down",
	}
	for _, s := range All() {
		t.Run(want[s], func(t *testing.T) {
			if got := s.String(); got != want[s] {
				t.Fatalf("String() = %q, want %q", got, want[s])
			}
			back, err := Parse(s.String())
			if err != nil || back != s {
				t.Fatalf("Parse(%q) = %v, %v", s.String(), back, err)
			}
		})
	}
}

func TestValues_MirrorWireEnum(t *testing.T) {
	// plugins/sdk/proto Status: UNDEF=0 UP=1 DOWN=2 WARN=3 NA=4 STDBY_UP=5 STDBY_DOWN=6.
	want := []Status{Undef, Up, Down, Warn, NA, StdbyUp, StdbyDown}
	for i, s := range want {
		if int(s) != i {
			t.Errorf("%s = %d, want %d", s, int(s), i)
		}
	}
	var zero Status
	if zero != Undef {
		t.Errorf("zero value = %s, want undef", zero)
	}
}

func TestParse_RejectsUnknownName(t *testing.T) {
	for _, in := range []string{"", "UP", "na", "stdby_up", "standby up"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q): want error", in)
		}
	}
}

func TestString_InvalidValue(t *testing.T) {
	if got := Status(42).String(); got != "Status(42)" {
		t.Fatalf("got %q", got)
	}
}

func TestJSON_EncodesAsName(t *testing.T) {
	type doc struct {
		S Status            `json:"s"`
		M map[string]Status `json:"m"`
	}
	in := doc{S: StdbyDown, M: map[string]Status{"hb": NA}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"s":"stdby down","m":{"hb":"n/a"}}`; string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.S != in.S || out.M["hb"] != NA {
		t.Fatalf("round trip = %+v", out)
	}
}

func TestJSON_RejectsNonString(t *testing.T) {
	for _, in := range []string{`1`, `{}`, `[]`} {
		var s Status
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("Unmarshal(%s): want error", in)
		}
	}
	s := Up
	if err := json.Unmarshal([]byte(`null`), &s); err != nil || s != Up {
		t.Errorf("Unmarshal(null) = %s, %v; want unchanged", s, err)
	}
}

// An open enum must not fail a whole dataset: a value from a newer peer, or
// one a plugin got wrong, reads (and writes) as undef.
func TestText_UnknownValuesAreUndef(t *testing.T) {
	for _, s := range []Status{Status(9), Status(-1), Status(1 << 20)} {
		t.Run("marshal "+s.String(), func(t *testing.T) {
			b, err := s.MarshalText()
			if err != nil || string(b) != "undef" {
				t.Fatalf("MarshalText = %q, %v; want undef", b, err)
			}
			j, err := json.Marshal(s)
			if err != nil || string(j) != `"undef"` {
				t.Fatalf("json.Marshal = %s, %v; want \"undef\"", j, err)
			}
		})
	}
	for _, word := range []string{"bogus", "", "UP", "stdby frozen"} {
		t.Run("unmarshal "+word, func(t *testing.T) {
			s := Up
			if err := s.UnmarshalText([]byte(word)); err != nil || s != Undef {
				t.Fatalf("UnmarshalText(%q) = %s, %v; want undef", word, s, err)
			}
		})
	}
}

func TestJSON_PeerDatasetWithUnknownValueDecodesWhole(t *testing.T) {
	in := `{"name":"web","overall":"up","avail":"degraded","groups":{"ip":"up","app":"frozen"},` +
		`"resources":[{"rid":"ip#1","group":"ip","status":"up"},{"rid":"app#1","group":"app","status":"paused"}]}`
	var svc Service
	if err := json.Unmarshal([]byte(in), &svc); err != nil {
		t.Fatalf("one unknown value dropped the whole dataset: %v", err)
	}
	if svc.Overall != Up || svc.Avail != Undef || svc.Groups["ip"] != Up || svc.Groups["app"] != Undef {
		t.Errorf("decoded %+v", svc)
	}
	if len(svc.Resources) != 2 || svc.Resources[0].Status != Up || svc.Resources[1].Status != Undef {
		t.Errorf("resources %+v", svc.Resources)
	}
	svc.Resources[1].Status = Status(77)
	if _, err := json.Marshal(svc); err != nil {
		t.Errorf("a service holding an unknown value does not marshal: %v", err)
	}
}

func TestMerge_Table(t *testing.T) {
	const (
		u  = Undef
		up = Up
		dn = Down
		w  = Warn
		na = NA
		su = StdbyUp
		sd = StdbyDown
	)
	// Every unordered pair once; symmetry is checked separately.
	tests := []struct{ a, b, want Status }{
		{u, u, u}, {u, na, u}, {na, na, na},
		{u, up, up}, {u, dn, dn}, {u, w, w}, {u, su, su}, {u, sd, sd},
		{na, up, up}, {na, dn, dn}, {na, w, w}, {na, su, su}, {na, sd, sd},
		{w, w, w}, {w, up, w}, {w, dn, w}, {w, su, w}, {w, sd, w},
		{up, up, up}, {up, dn, w}, {up, su, up}, {up, sd, w},
		{dn, dn, dn}, {dn, su, su}, {dn, sd, dn},
		{su, su, su}, {su, sd, w},
		{sd, sd, sd},
	}
	if len(tests) != 7*8/2 {
		t.Fatalf("table covers %d pairs, want %d", len(tests), 7*8/2)
	}
	for _, tt := range tests {
		t.Run(tt.a.String()+"+"+tt.b.String(), func(t *testing.T) {
			if got := Merge(tt.a, tt.b); got != tt.want {
				t.Errorf("Merge(%s, %s) = %s, want %s", tt.a, tt.b, got, tt.want)
			}
			if got := Merge(tt.b, tt.a); got != tt.want {
				t.Errorf("Merge(%s, %s) = %s, want %s", tt.b, tt.a, got, tt.want)
			}
			if got := MergeAll(tt.a, tt.b); got != tt.want {
				t.Errorf("MergeAll(%s, %s) = %s, want %s", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestMerge_IsSymmetric(t *testing.T) {
	for _, a := range All() {
		for _, b := range All() {
			if Merge(a, b) != Merge(b, a) {
				t.Errorf("Merge(%s, %s) = %s but Merge(%s, %s) = %s", a, b, Merge(a, b), b, a, Merge(b, a))
			}
		}
	}
}

func TestMerge_InvalidCountsAsUndef(t *testing.T) {
	if got := Merge(Status(-1), Up); got != Up {
		t.Errorf("Merge(invalid, up) = %s", got)
	}
	if got := MergeAll(Status(99)); got != Undef {
		t.Errorf("MergeAll(invalid) = %s", got)
	}
}

func TestMergeAll_IsOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	all := All()
	for i := 0; i < 2000; i++ {
		ss := make([]Status, rng.Intn(6))
		for j := range ss {
			ss[j] = all[rng.Intn(len(all))]
		}
		want := MergeAll(ss...)
		rng.Shuffle(len(ss), func(a, b int) { ss[a], ss[b] = ss[b], ss[a] })
		if got := MergeAll(ss...); got != want {
			t.Fatalf("MergeAll(%v) = %s, shuffled = %s", ss, want, got)
		}
	}
}

func TestMergeAll_Cases(t *testing.T) {
	tests := []struct {
		name string
		in   []Status
		want Status
	}{
		{"nothing is n/a", nil, NA},
		{"passive node with standby up", []Status{Down, StdbyUp, Down}, StdbyUp},
		{"standby down next to standby up then up", []Status{Down, StdbyUp, Up}, Warn},
		{"active node with standby", []Status{Up, StdbyUp, Up, NA}, Up},
		{"missing standby on passive node", []Status{Down, StdbyUp, StdbyDown}, Warn},
		{"only undef", []Status{Undef, Undef}, Undef},
		{"undef hidden by a real status", []Status{Undef, Down}, Down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MergeAll(tt.in...); got != tt.want {
				t.Errorf("MergeAll(%v) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
