package value

// SplitWords is the docker plugin's splitter (plugins/docker/words.go),
// shared here so that core reads a trigger's command line as the plugins
// read theirs.

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnterminatedQuote is returned by SplitWords for a quote left open.
var ErrUnterminatedQuote = errors.New("unterminated quote")

// SplitWords splits s into words the way a POSIX shell does, without any
// expansion: blanks separate words, 'single quotes' are literal, "double
// quotes" honour backslash before \ " $ ` and newline, and a backslash
// outside quotes escapes the next character. A command line is read as the
// operator typed it in a terminal; $VAR is kept as is because no shell
// runs.
func SplitWords(s string) ([]string, error) {
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
