package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/api"
)

func TestDrawFlight_ABarPerPhaseOnOneScale(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ph := func(name string, from, to float64) api.Phase {
		return api.Phase{Name: name, Start: t0.Add(time.Duration(from * float64(time.Second))), End: t0.Add(time.Duration(to * float64(time.Second))), Seconds: to - from}
	}
	f := api.Flight{Service: "web", Node: "n2", Kind: "takeover", From: []string{"n1"}, Begin: t0, Total: 4,
		Phases:    []api.Phase{ph("detect", 0, 1), ph("fence", 1, 2), ph("start", 2, 4)},
		Resources: []api.Phase{ph("fs#1", 2, 2.5), ph("container#1", 2.5, 4)}}
	var b bytes.Buffer
	drawFlight(&b, f)
	out := b.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], "takeover from n1, 4.000s") {
		t.Fatalf("timeline:\n%s", out)
	}
	// On the 50-column scale: detect is the first quarter, start the second half.
	bar := func(line string) (from, n int) {
		r := []rune(line)
		for i, c := range r {
			if c == '█' {
				if n == 0 {
					from = i
				}
				n++
			}
		}
		return from, n
	}
	d0, dn := bar(lines[1])
	s0, sn := bar(lines[3])
	near := func(a, b int) bool { return a-b <= 1 && b-a <= 1 }
	if !near(dn, 12) || !near(sn, 25) || !near(s0-d0, 25) {
		t.Errorf("bars not on one scale (detect at %d×%d, start at %d×%d):\n%s", d0, dn, s0, sn, out)
	}
}
