package daemon

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
)

func TestFlight_PhasesLaidEndToEndSumToTheTotal(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pf := &pendingFlight{f: api.Flight{Service: "web", Kind: "takeover", From: []string{"n1"}},
		peers: []peerTimes{{lastBeat: at(0), lost: at(1000), fenceAsked: at(1010), fenced: at(1060)}},
		claim: at(1070), startBegin: at(1080), startEnd: at(3500), up: at(3500)}
	pf.f.End = at(4000)
	f := pf.build()
	want := []string{"detect", "fence_wait", "fence", "decide", "claim_window", "start", "first_monitor"}
	if len(f.Phases) != len(want) {
		t.Fatalf("phases %+v, want %v", f.Phases, want)
	}
	sum := 0.0
	for i, p := range f.Phases {
		if p.Name != want[i] {
			t.Errorf("phase %d is %s, want %s", i, p.Name, want[i])
		}
		if p.Name != "first_monitor" {
			sum += p.Seconds
		}
	}
	if !f.Begin.Equal(at(0)) || math.Abs(f.Total-3.5) > 1e-9 || math.Abs(sum-f.Total) > 1e-9 {
		t.Errorf("begin %s total %.3f, phases up to the service up sum to %.3f", f.Begin, f.Total, sum)
	}
}

func TestEntryOf_NamesEachEventsKind(t *testing.T) {
	for _, tc := range []struct {
		ev   api.Event
		kind string
		ok   bool
	}{
		{api.Event{Kind: "peer", Message: "lost"}, "lost", true},
		{api.Event{Kind: "peer", Message: "found"}, "joined", true},
		{api.Event{Kind: "fence", Message: "fenced"}, "fence", true},
		{api.Event{Kind: "fence", Message: "failed: bmc timeout"}, "fence_failed", true},
		{api.Event{Kind: "action", Message: "start: ok"}, "start", true},
		{api.Event{Kind: "peer", Message: "odd"}, "", false},
	} {
		t.Run(tc.ev.Kind+" "+tc.ev.Message, func(t *testing.T) {
			e, ok := entryOf(tc.ev)
			if ok != tc.ok || (ok && e.Kind != tc.kind) {
				t.Errorf("entryOf = %q %v, want %q %v", e.Kind, ok, tc.kind, tc.ok)
			}
		})
	}
}

func TestLineDiff_ListsRemovedAndAddedLines(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		want       string
	}{
		{"one keyword changed", "[DEFAULT]\nnodes = n1 n2\norchestrate = no\n", "[DEFAULT]\nnodes = n1 n2\norchestrate = ha\n", "-orchestrate = no|+orchestrate = ha"},
		{"a line added", "a\nb\n", "a\nx\nb\n", "+x"},
		{"a line removed", "a\nb\nc\n", "a\nc\n", "-b"},
		{"same", "a\n", "a\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(lineDiff(tc.a, tc.b), "|"); got != tc.want {
				t.Errorf("lineDiff = %q, want %q", got, tc.want)
			}
		})
	}
}
