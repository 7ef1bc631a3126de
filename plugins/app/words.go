package app

// This splitter is the docker plugin's (plugins/docker/words.go), copied:
// a plugin builds against the SDK alone, and the SDK has no splitter yet.

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnterminatedQuote is returned by splitWords for a quote left open.
var ErrUnterminatedQuote = errors.New("unterminated quote")

// splitWords splits s into words the way a POSIX shell does, without any
// expansion: blanks separate words, 'single quotes' are literal, "double
// quotes" honour backslash before \ " $ ` and newline, and a backslash
// outside quotes escapes the next character. start, stop, check and params
// are read so, as the operator would type them in a terminal; $VAR is kept
// as is because no shell runs unless the resource sets shell = true.
func splitWords(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	// Bytes, not runes: every special character is ASCII and other bytes
	// (even invalid UTF-8) pass through untouched.
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			flush()
		case '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("trailing backslash at the end of %q: escape it as \\\\ or remove it", s)
			}
			i++
			if s[i] == '\n' { // line continuation
				continue
			}
			cur.WriteByte(s[i])
			inWord = true
		case '\'':
			end := -1
			for j := i + 1; j < len(s); j++ {
				if s[j] == '\'' {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, fmt.Errorf("%w: the single quote at offset %d is never closed", ErrUnterminatedQuote, i)
			}
			cur.WriteString(s[i+1 : end])
			inWord = true
			i = end
		case '"':
			j := i + 1
			closed := false
			for ; j < len(s); j++ {
				if s[j] == '"' {
					closed = true
					break
				}
				if s[j] == '\\' && j+1 < len(s) {
					switch s[j+1] {
					case '\\', '"', '$', '`':
						cur.WriteByte(s[j+1])
						j++
						continue
					case '\n':
						j++
						continue
					}
				}
				cur.WriteByte(s[j])
			}
			if !closed {
				return nil, fmt.Errorf("%w: the double quote at offset %d is never closed", ErrUnterminatedQuote, i)
			}
			inWord = true
			i = j
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}
