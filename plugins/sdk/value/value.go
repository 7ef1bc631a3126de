// Package value is the one reading of a keyword's value (booleans,
// durations, sizes), for core's config checks and, through plugins/sdk,
// for every plugin: the two must agree on what a value means. It depends
// on the standard library alone, so the SDK can carry it to vendors.
package value

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseBool reads the boolean spellings configs use; empty is false.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1", "y", "t":
		return true, nil
	case "false", "no", "off", "0", "n", "f", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use true or false)", s)
}

// ParseDuration reads Go syntax ("1.5s", "200ms") or a bare number of
// seconds ("10"); empty is 0.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || math.IsNaN(f) {
			return 0, fmt.Errorf("%q: a duration cannot be negative", s)
		}
		// float64(MaxInt64) rounds up to 2^63, which does not fit: >=.
		if f*float64(time.Second) >= math.MaxInt64 {
			return 0, fmt.Errorf("%q: duration too long", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 10s, 500ms)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q: a duration cannot be negative", s)
	}
	return d, nil
}

// sizeUnits are binary whatever the spelling (k, kb and kib are all 1024),
// as docker's units package reads memory sizes.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
	"p": 1 << 50, "pb": 1 << 50, "pib": 1 << 50,
}

// ParseSize reads a size in bytes: "512", "10M", "1.5GiB".
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult, ok := sizeUnits[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a size (e.g. 512, 10M, 1.5G)", s)
	}
	v := f * mult
	if v >= math.MaxInt64 { // 2^63, as for durations
		return 0, fmt.Errorf("%q: size too large", s)
	}
	return int64(v), nil
}
