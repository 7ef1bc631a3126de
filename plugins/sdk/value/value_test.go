package value

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	bools := []struct {
		in   string
		want bool
		ok   bool
	}{{"yes", true, true}, {" On ", true, true}, {"", false, true}, {"f", false, true}, {"maybe", false, false}}
	for _, tt := range bools {
		got, err := ParseBool(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBool(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	durations := []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"10", 10 * time.Second, true}, {"1.5s", 1500 * time.Millisecond, true}, {"200ms", 200 * time.Millisecond, true},
		{"", 0, true}, {"-1s", 0, false}, {"-3", 0, false}, {"NaN", 0, false}, {"1e30", 0, false}, {"soon", 0, false},
		// 2^63 ns exactly, after rounding: one past the largest duration.
		{"9223372036.854775807", 0, false}}
	for _, tt := range durations {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	sizes := []struct {
		in   string
		want int64
		ok   bool
	}{{"512", 512, true}, {"1.5k", 1536, true}, {"1MiB", 1 << 20, true}, {"2 kb", 2048, true}, {"1p", 1 << 50, true},
		{"M", 0, false}, {"10X", 0, false}, {"1e30", 0, false}, {"-1", 0, false},
		// 2^63 bytes: one past the largest int64, not a negative size.
		{"8192p", 0, false}, {"9223372036854775808", 0, false}}
	for _, tt := range sizes {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
