package cluster

import (
	"testing"

	"github.com/vigil-ha/vigil/core/config"
)

func TestConfSum_SameForFilesThatSayTheSame(t *testing.T) {
	const base = "[cluster]\nname = c1\nnodes = n1 n2\n\n[hb#1]\ntype = net\nport = 10000\n"
	tests := []struct {
		name  string
		other string
		same  bool
	}{
		{"identical", base, true},
		{"comments and blank lines", "# written by hand\n[cluster]\nname = c1\n\nnodes = n1 n2\n[hb#1]\n; net\ntype = net\nport = 10000\n", true},
		{"sections and keywords reordered", "[hb#1]\nport = 10000\ntype = net\n[cluster]\nnodes = n1 n2\nname = c1\n", true},
		{"its own node keyword", "[cluster]\nname = c1\nnode = n2\nnodes = n1 n2\n\n[hb#1]\ntype = net\nport = 10000\n", true},
		{"another port", "[cluster]\nname = c1\nnodes = n1 n2\n\n[hb#1]\ntype = net\nport = 10001\n", false},
		{"another node order", "[cluster]\nname = c1\nnodes = n2 n1\n\n[hb#1]\ntype = net\nport = 10000\n", false},
		{"one more section", base + "\n[stonith#n1]\ntype = ipmi\n", false},
	}
	sum := func(t *testing.T, s string) string {
		t.Helper()
		f, err := config.ParseINI("cluster.conf", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return ConfSum(f)
	}
	want := sum(t, base)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sum(t, tc.other) == want; got != tc.same {
				t.Errorf("same sum = %v, want %v", got, tc.same)
			}
		})
	}
}
