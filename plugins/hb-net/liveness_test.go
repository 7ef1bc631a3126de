package hbnet

import (
	"slices"
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
		if l.gone("b", at(500)) {
			t.Error("gone at 500ms reported a peer never heard, before the start grace")
		}
		if got := l.due(at(1000)); !slices.Equal(got, []string{"b"}) {
			t.Errorf("due at 1s = %v, want [b]", got)
		}
	})
	t.Run("stale once per silence", func(t *testing.T) {
		l := newLiveness([]string{"b"}, timeout, t0)
		l.beat("b", at(100))
		if got := l.due(at(1099)); got != nil {
			t.Errorf("due 999ms after a beat = %v", got)
		}
		if got := l.due(at(1100)); !slices.Equal(got, []string{"b"}) {
			t.Errorf("due 1s after a beat = %v", got)
		}
		if got := l.due(at(5000)); got != nil {
			t.Errorf("reported again during the same silence: %v", got)
		}
		if l.gone("b", at(5000)) {
			t.Error("gone reported a peer already stale")
		}
		l.beat("b", at(6000))
		if got := l.due(at(7000)); !slices.Equal(got, []string{"b"}) {
			t.Errorf("after it came back and went quiet: due = %v", got)
		}
	})
	t.Run("gone reports a heard peer at once, then the timeout does not", func(t *testing.T) {
		l := newLiveness([]string{"b", "c"}, timeout, t0)
		l.beat("b", at(100))
		l.beat("c", at(100))
		if !l.gone("b", at(200)) {
			t.Error("gone did not report a heard peer")
		}
		if got := l.due(at(1200)); !slices.Equal(got, []string{"c"}) {
			t.Errorf("due = %v, want only c", got)
		}
	})
	t.Run("unknown peers are ignored", func(t *testing.T) {
		l := newLiveness([]string{"b"}, timeout, t0)
		l.beat("x", at(0))
		if l.gone("x", at(2000)) {
			t.Error("gone reported a peer not in the cluster")
		}
	})
}
