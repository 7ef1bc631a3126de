package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vigil-ha/vigil/plugins/sdk/value"
)

func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return n, nil
}

// checkValue reports whether v is a valid value for kw; the message is
// meant to follow "keyword: ".
func checkValue(kw *Keyword, v string) error {
	var err error
	switch kw.Type {
	case Bool:
		_, err = value.ParseBool(v)
	case Int:
		_, err = parseInt(v)
	case Duration:
		_, err = value.ParseDuration(v)
	case Size:
		_, err = value.ParseSize(v)
	case Command:
		err = checkCommand(v)
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
