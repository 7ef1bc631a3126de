package cluster

import "testing"

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
