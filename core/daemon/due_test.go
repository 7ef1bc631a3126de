package daemon

import (
	"testing"
	"time"
)

func TestOrchDue_OncePerIntervalByTheDecisionsTime(t *testing.T) {
	o := newOrch()
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true},              // the first occasion
		{time.Second, false},   // within the interval
		{splitStopRetry, true}, // one interval after the last
		{splitStopRetry + time.Second, false},
		{3 * splitStopRetry, true},
	} {
		if got := o.due("splitstop/web", splitStopRetry, t0.Add(tc.at)); got != tc.want {
			t.Errorf("due at +%s = %v, want %v", tc.at, got, tc.want)
		}
	}
	if !o.due("splitstop/db", splitStopRetry, t0.Add(time.Second)) {
		t.Error("another key shares the first one's schedule")
	}
}
