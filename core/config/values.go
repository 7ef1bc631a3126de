package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseBool reads the boolean spellings configs use. It has the semantics
// of sdk.ParseBool (an empty value is false) so that core and plugins
// agree on what a value means; core must not import the SDK.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1", "y", "t":
		return true, nil
	case "false", "no", "off", "0", "n", "f", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use true or false)", s)
}

// parseDuration reads Go syntax ("1.5s", "200ms") or a bare number of
// seconds ("10"); empty is 0. Same semantics as sdk.ParseDuration.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || math.IsNaN(f) {
			return 0, fmt.Errorf("%q: a duration cannot be negative", s)
		}
		if f*float64(time.Second) > math.MaxInt64 {
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

func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return n, nil
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

// parseSize reads a size in bytes: "512", "10M", "1.5GiB".
func parseSize(s string) (int64, error) {
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
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%q: size too large", s)
	}
	return int64(v), nil
}

// checkValue reports whether v is a valid value for kw; the message is
// meant to follow "keyword: ".
func checkValue(kw *Keyword, v string) error {
	var err error
	switch kw.Type {
	case Bool:
		_, err = parseBool(v)
	case Int:
		_, err = parseInt(v)
	case Duration:
		_, err = parseDuration(v)
	case Size:
		_, err = parseSize(v)
	}
	if err != nil || len(kw.Candidates) == 0 {
		return err
	}
	words := []string{strings.TrimSpace(v)}
	if kw.Type == List {
		words = strings.Fields(v)
	}
	for _, w := range words {
		if !contains(kw.Candidates, w) {
			msg := fmt.Sprintf("%q is not one of %s", w, strings.Join(kw.Candidates, ", "))
			if s := suggest(w, kw.Candidates); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			return fmt.Errorf("%s", msg)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the candidate nearest to word when it is close enough
// to be a typo, else "". Ties go to the earliest candidate.
func suggest(word string, candidates []string) string {
	w := strings.ToLower(word)
	if len(w) > 64 {
		return ""
	}
	limit := len([]rune(w)) / 3
	limit = max(1, min(3, limit))
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := levenshtein(w, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
