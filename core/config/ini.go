package config

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultSection is the section holding the service's own keywords.
const DefaultSection = "DEFAULT"

// File is a parsed INI file. It keeps the comments and blank lines it read
// so that Bytes writes back what it was given, changed only where Set
// changed it.
type File struct {
	Path     string
	Sections []*Section

	tail  []string // blank and comment lines after the last entry
	noEOL bool     // the last line had no newline
}

// Section is one [name] section. Line is the header's line (0 when the
// section was added by Set).
type Section struct {
	Name    string
	Line    int
	Entries []*Entry

	pre    []string // blank and comment lines above the header
	header string   // the header line as read; "" when added by Set
}

// Entry is one `key = value` line and its continuation lines. Key is
// lowercased. A multi-line value has its lines trimmed and joined with
// "\n", as Python's configparser does.
type Entry struct {
	Key   string
	Value string
	Line  int

	pre     []string // blank and comment lines above the entry
	raw     []string // the lines as read; nil once Set changed the value
	indent  string   // leading whitespace of the key line
	comment string   // the key line's end-of-line comment, kept by Set
}

// ParseINI parses data, read from path (used in messages only). The
// dialect is configparser's with '=' as the only delimiter: a line whose
// first non-blank character is '#' or ';' is a comment, a line indented
// deeper than the key line above it continues that key's value, and a
// blank or comment line ends a value. A '#' or ';' after a space or a tab
// starts an end-of-line comment, on a header, key or continuation line,
// unless it is inside single or double quotes (see InlineComment): so
// `nodes = n1 n2   # placement order` is "n1 n2", while
// `run_args = -e TAG=a#b`, `-e X=a;b` and `sh -c "a ; b"` keep their '#'
// and ';'. Keys are case-insensitive; section
// names are not. A duplicate section or key is an error, and so is a file
// over MaxFileSize (ErrTooLarge). On error the result is nil and the
// error is Errors, listing every problem.
func ParseINI(path string, data []byte) (*File, error) {
	if err := checkSize(path, int64(len(data))); err != nil {
		return nil, err
	}
	f, errs := parseINI(path, data)
	if len(errs) > 0 {
		return nil, errs.err()
	}
	return f, nil
}

// parseINI returns what it could read along with the problems, so that
// Parse can go on checking the rest of the file and report everything at
// once. Sections and keys in error are left out of the file. It takes
// time linear in len(data); callers check the size first (checkSize).
func parseINI(path string, data []byte) (*File, Errors) {
	f := &File{Path: path}
	var errs Errors
	fail := func(line int, section, key, format string, args ...any) {
		errs = append(errs, &Error{File: path, Line: line, Section: section, Keyword: key,
			Msg: fmt.Sprintf(format, args...), Err: ErrSyntax})
	}

	lines := strings.Split(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		f.noEOL = true
	}

	var (
		sec       *Section          // current section; a detached one after a bad header
		keys      map[string]*Entry // sec's entries by key
		cur       *Entry            // entry that an indented line would continue
		curIndent int
		curParts  []string // cur's value lines, joined when cur ends
		pending   []string // blank and comment lines not yet attached
		seen      = map[string]*Section{}
	)
	// Appending each continuation line to cur.Value would copy the value
	// so far on every line: quadratic in the value's length (a 1 MiB
	// value took seconds). The lines are collected and joined once.
	endValue := func() {
		if cur != nil {
			cur.Value = strings.Join(curParts, "\n")
		}
		cur, curParts = nil, nil
	}
	for i, line := range lines {
		n := i + 1
		text := strings.TrimSuffix(line, "\r")
		if trimmed := strings.TrimSpace(text); trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			pending = append(pending, line)
			endValue()
			continue
		}
		comment := ""
		if i := InlineComment(text); i >= 0 {
			text, comment = text[:i], text[i:]
		}
		trimmed := strings.TrimSpace(text)
		indentStr := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
		indent := len(indentStr)

		if cur != nil && indent > curIndent {
			curParts = append(curParts, trimmed)
			cur.raw = append(cur.raw, line)
			continue
		}
		endValue()

		if trimmed[0] == '[' {
			next := &Section{Line: n, pre: pending, header: line}
			pending = nil
			sec, keys = next, map[string]*Entry{} // detached unless the header is good
			if !strings.HasSuffix(trimmed, "]") {
				fail(n, "", "", "section header %q is not closed by ']'", trimmed)
				continue
			}
			next.Name = strings.TrimSpace(trimmed[1 : len(trimmed)-1])
			if next.Name == "" {
				fail(n, "", "", "empty section name")
				continue
			}
			if first, ok := seen[next.Name]; ok {
				errs = append(errs, &Error{File: path, Line: n, Section: next.Name,
					Msg: fmt.Sprintf("duplicate section, first defined on line %d; merge the two", first.Line),
					Err: ErrDuplicate})
				continue
			}
			seen[next.Name] = next
			f.Sections = append(f.Sections, next)
			continue
		}

		key, value, ok := strings.Cut(trimmed, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		value = strings.TrimSpace(value)
		secName := ""
		if sec != nil {
			secName = sec.Name
		}
		switch {
		case !ok:
			fail(n, secName, "", "expected \"key = value\", got %q", trimmed)
			continue
		case key == "":
			fail(n, secName, "", "missing key before '='")
			continue
		case sec == nil:
			fail(n, "", key, "keyword outside any section; put a [DEFAULT] or [<driver>#<n>] header above it")
			continue
		}
		e := &Entry{Key: key, Value: value, Line: n, pre: pending, raw: []string{line}, indent: indentStr, comment: comment}
		pending = nil
		cur, curIndent = e, indent
		if value != "" {
			curParts = append(curParts, value)
		}
		if first := keys[key]; first != nil {
			errs = append(errs, &Error{File: path, Line: n, Section: secName, Keyword: key,
				Msg: fmt.Sprintf("duplicate keyword, first set on line %d; keep one", first.Line),
				Err: ErrDuplicate})
			continue // cur still catches its continuation lines
		}
		keys[key] = e
		sec.Entries = append(sec.Entries, e)
	}
	endValue()
	f.tail = pending
	return f, errs
}

// Section returns the section named name, or nil.
func (f *File) Section(name string) *Section {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Entry returns the entry for key (case-insensitive), or nil.
func (s *Section) Entry(key string) *Entry {
	key = strings.ToLower(key)
	for _, e := range s.Entries {
		if e.Key == key {
			return e
		}
	}
	return nil
}

// Set sets key in section to value, adding the section (DEFAULT first,
// others last) or the key (after the section's last key) when absent.
// Lines of a multi-line value are trimmed and blank ones dropped, as
// parsing would; the key line's end-of-line comment stays. Set does not
// validate (a key with '=', or a value CheckValue refuses, cannot be
// written back as such): parse Bytes() with Parse before writing it
// anywhere.
func (f *File) Set(section, key, value string) {
	key = strings.ToLower(strings.TrimSpace(key))
	var parts []string
	for _, l := range strings.Split(value, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	value = strings.Join(parts, "\n")
	f.noEOL = false

	sec := f.Section(section)
	if sec == nil {
		sec = &Section{Name: section}
		switch {
		case len(f.Sections) == 0:
			f.Sections = []*Section{sec}
		case section == DefaultSection:
			// Leading comments describe the file: keep them on top.
			first := f.Sections[0]
			sec.pre, first.pre = first.pre, []string{""}
			f.Sections = append([]*Section{sec}, f.Sections...)
		default:
			sec.pre = []string{""}
			f.Sections = append(f.Sections, sec)
		}
	}
	if e := sec.Entry(key); e != nil {
		e.Value, e.raw = value, nil
		return
	}
	e := &Entry{Key: key, Value: value}
	if n := len(sec.Entries); n > 0 {
		e.indent = sec.Entries[n-1].indent
	}
	sec.Entries = append(sec.Entries, e)
	// A header indented deeper than the new key, right below it, would
	// read as a continuation of its value: a blank line keeps it apart.
	if i := slices.Index(f.Sections, sec); i+1 < len(f.Sections) {
		next := f.Sections[i+1]
		lead := len(next.header) - len(strings.TrimLeft(next.header, " \t"))
		if len(next.pre) == 0 && lead > len(e.indent) {
			next.pre = []string{""}
		}
	}
}

// Bytes renders the file. An unchanged file comes back byte for byte.
func (f *File) Bytes() []byte {
	var lines []string
	for _, s := range f.Sections {
		lines = append(lines, s.pre...)
		if s.header != "" {
			lines = append(lines, s.header)
		} else {
			lines = append(lines, "["+s.Name+"]")
		}
		for _, e := range s.Entries {
			lines = append(lines, e.pre...)
			if e.raw != nil {
				lines = append(lines, e.raw...)
				continue
			}
			vals := strings.Split(e.Value, "\n")
			first := e.indent + e.Key + " ="
			if vals[0] != "" {
				first += " " + vals[0]
			}
			if e.comment != "" {
				first += " " + strings.TrimLeft(e.comment, " \t")
			}
			lines = append(lines, first)
			for _, v := range vals[1:] {
				lines = append(lines, e.indent+"    "+v)
			}
		}
	}
	lines = append(lines, f.tail...)
	if len(lines) == 0 {
		return nil
	}
	out := strings.Join(lines, "\n")
	if !f.noEOL {
		out += "\n"
	}
	return []byte(out)
}

// InlineComment returns the index in line of the '#' or ';' that starts
// its end-of-line comment, or -1: the first one preceded by a space or a
// tab and outside quotes ('...' or "...", as a shell would read them, so
// command lines keep theirs). A line whose first non-blank character is
// '#' or ';' is a comment line, which ParseINI tells apart before this.
func InlineComment(line string) int {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case (c == '#' || c == ';') && i > 0 && (line[i-1] == ' ' || line[i-1] == '\t'):
			return i
		}
	}
	return -1
}

// CheckValue says whether v, written as a keyword's value, reads back as
// itself: a '#' or ';' after a blank (or first) would start a comment.
func CheckValue(v string) error {
	if i := InlineComment(" " + v); i >= 0 {
		return fmt.Errorf("%q would be read as %q and a comment: a '#' or ';' after a blank starts one; quote that part or drop the blank", v, strings.TrimSpace(v[:i-1]))
	}
	return nil
}
