package hbnet

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLiveness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	const timeout = time.Second

	t.Run("never heard is not stale before the timeout since start", func(t *testing.T) {
		l := newLiveness([]string{"b"}, timeout, t0)
		if got := l.due(at(999)); got != nil {
			t.Errorf("due at 999ms = %v", got)
		}
		if got := peersOf(l.due(at(1000))); !slices.Equal(got, []string{"b"}) {
			t.Errorf("due at 1s = %v, want [b]", got)
		}
	})
	t.Run("stale once per silence", func(t *testing.T) {
		l := newLiveness([]string{"b"}, timeout, t0)
		l.beat("b", at(100))
		if got := l.due(at(1099)); got != nil {
			t.Errorf("due 999ms after a beat = %v", got)
		}
		if got := peersOf(l.due(at(1100))); !slices.Equal(got, []string{"b"}) {
			t.Errorf("due 1s after a beat = %v", got)
		}
		if got := l.due(at(5000)); got != nil {
			t.Errorf("reported again during the same silence: %v", got)
		}
		l.beat("b", at(6000))
		if got := peersOf(l.due(at(7000))); !slices.Equal(got, []string{"b"}) {
			t.Errorf("after it came back and went quiet: due = %v", got)
		}
	})
	t.Run("a leave does not shorten the timeout, only explains it", func(t *testing.T) {
		l := newLiveness([]string{"b", "c"}, timeout, t0)
		l.beat("b", at(100))
		l.beat("c", at(100))
		l.left("b", "it left the cluster")
		if got := l.due(at(1099)); got != nil {
			t.Errorf("due before the timeout after a leave = %v", got)
		}
		got := l.due(at(1100))
		slices.SortFunc(got, func(x, y stale) int { return strings.Compare(x.peer, y.peer) })
		if len(got) != 2 || !strings.Contains(got[0].reason, "it left the cluster") || strings.Contains(got[1].reason, "left") {
			t.Errorf("due at the timeout = %+v, want b (saying it left) and c", got)
		}
	})
	t.Run("a beat after a leave forgets the leave", func(t *testing.T) {
		l := newLiveness([]string{"b"}, timeout, t0)
		l.beat("b", at(100))
		l.left("b", "it left the cluster")
		l.beat("b", at(300)) // restarted
		if got := l.due(at(1299)); got != nil {
			t.Errorf("due before the timeout since the restart = %v", got)
		}
		if got := l.due(at(1300)); len(got) != 1 || strings.Contains(got[0].reason, "left") {
			t.Errorf("due = %+v, want b without the old leave", got)
		}
	})
	t.Run("unknown peers are ignored", func(t *testing.T) {
		l := newLiveness([]string{"b"}, timeout, t0)
		l.beat("x", at(0))
		l.left("x", "it left the cluster")
		if got := peersOf(l.due(at(2000))); !slices.Equal(got, []string{"b"}) {
			t.Errorf("due = %v, want only b", got)
		}
	})
}

func peersOf(due []stale) []string {
	var out []string
	for _, s := range due {
		out = append(out, s.peer)
	}
	slices.Sort(out)
	return out
}
