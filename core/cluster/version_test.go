package cluster

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConfigVersion_NewerByCounterThenSum(t *testing.T) {
	cases := []struct {
		name string
		a, b ConfigVersion
		want bool
	}{
		{"a higher counter wins", ConfigVersion{Version: 3, Sum: "aa"}, ConfigVersion{Version: 2, Sum: "bb"}, true},
		{"a lower counter loses", ConfigVersion{Version: 2, Sum: "bb"}, ConfigVersion{Version: 3, Sum: "aa"}, false},
		{"the same content is never newer", ConfigVersion{Version: 9, Sum: "aa"}, ConfigVersion{Version: 1, Sum: "aa"}, false},
		{"two changes made apart: the larger sum wins", ConfigVersion{Version: 2, Sum: "bb"}, ConfigVersion{Version: 2, Sum: "aa"}, true},
		{"two changes made apart: the smaller sum loses", ConfigVersion{Version: 2, Sum: "aa"}, ConfigVersion{Version: 2, Sum: "bb"}, false},
	}
	for _, tc := range cases {
		if got := tc.a.Newer(tc.b); got != tc.want {
			t.Errorf("%s: Newer = %v", tc.name, got)
		}
	}
}

func TestExpectation_NewerByCounterThenNode(t *testing.T) {
	a := Expectation{Value: "stopped", Version: 4, By: "n1"}
	b := Expectation{Value: "frozen", Version: 4, By: "n2"}
	if a.Newer(b) == b.Newer(a) {
		t.Fatalf("a tie must have one winner: %v %v", a.Newer(b), b.Newer(a))
	}
	if (Expectation{Version: 5}).Newer(b) != true || b.Newer(b) {
		t.Fatal("counter order or self-comparison wrong")
	}
}

func TestDataset_CarriesConfigVersionsNotFiles(t *testing.T) {
	ds := Dataset{Node: "n1", Services: map[string]*ServiceInstance{"web": {Config: ConfigVersion{Version: 3, Sum: "ab", Content: []byte("PASSWORD=secret")}}}}
	b, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "PASSWORD") || !strings.Contains(string(b), `"sum":"ab"`) {
		t.Fatalf("dataset %s: want the version and sum, never the file", b)
	}
}
