package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Kinds of configuration problems. Every *Error wraps one of them, so a
// caller can branch with errors.Is on the Errors that Parse returns.
var (
	ErrSyntax          = errors.New("syntax error")
	ErrDuplicate       = errors.New("duplicate")
	ErrUnknownSection  = errors.New("unknown section")
	ErrUnknownType     = errors.New("unknown resource type")
	ErrUnknownKeyword  = errors.New("unknown keyword")
	ErrInvalidValue    = errors.New("invalid value")
	ErrMissingKeyword  = errors.New("missing required keyword")
	ErrAliasConflict   = errors.New("keyword set twice through an alias")
	ErrBadServiceName  = errors.New("bad service name")
	ErrSchemaConflict  = errors.New("schema conflict")
	ErrSchemaKeyword   = errors.New("bad keyword declaration")
	ErrNotResourceType = errors.New("not a resource type")
)

// Error is one problem in a configuration file. Line is 1-based; 0 means
// the file as a whole. Section and Keyword are empty when they do not
// apply.
type Error struct {
	File    string
	Line    int
	Section string
	Keyword string
	Msg     string
	// Err is the kind of problem, one of the Err* sentinels.
	Err error
}

// Error formats the problem as `file:line: [section] keyword: message`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Section != "" {
		fmt.Fprintf(&b, "[%s] ", e.Section)
	}
	if e.Keyword != "" {
		b.WriteString(e.Keyword)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the kind of problem.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one file. Parse returns it as its error
// when there is at least one; find it with errors.As.
type Errors []*Error

// Error prints one problem per line, in line order.
func (es Errors) Error() string {
	sorted := append(Errors(nil), es...)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, e := range sorted {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems, so that errors.Is and errors.As
// see each *Error and its kind.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		return es[i].Line < es[j].Line
	})
}

// err returns es as an error, or a true nil when there is nothing to
// report (a nil Errors in an error interface is not nil).
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	es.sort()
	return es
}
