package config

import (
	"strings"

	"github.com/vigil-ha/vigil/plugins/sdk/value"
)

// Command is a keyword holding a command line: an argv quoted as in a
// shell, run without a shell.
const Command KeywordType = "command"

// Triggers are the action triggers (OpenSVC's names), in the order they
// run around an action. A service's run around the whole service action,
// a resource's around that resource's; a blocking one that fails aborts
// the action, the others are logged and the action goes on.
var Triggers = []string{"pre_start", "blocking_pre_start", "post_start", "pre_stop", "blocking_pre_stop", "post_stop"}

// triggerKeywords declares the triggers, for [DEFAULT] and for every
// resource section.
func triggerKeywords(of string) []Keyword {
	kws := make([]Keyword, 0, len(Triggers))
	for _, name := range Triggers {
		when, verb, _ := strings.Cut(strings.TrimPrefix(name, "blocking_"), "_")
		help := "A command run " + map[string]string{"pre": "before", "post": "after"}[when] + " " + of + " " + verb +
			" (an argv, quoted as in a shell; write /bin/sh -c '...' for a shell)"
		if strings.HasPrefix(name, "blocking_") {
			help += "; its failure aborts the " + verb + "."
		} else {
			help += "; its failure is logged and the " + verb + " goes on."
		}
		kws = append(kws, Keyword{Name: name, Type: Command, Help: help})
	}
	return kws
}

func checkCommand(v string) error {
	_, err := value.SplitWords(v)
	return err
}

// LineOf returns the line where the resource sets keyword kw (its
// canonical name), or the section's line.
func (r *Resource) LineOf(kw string) int {
	if l := r.KeywordLines[kw]; l > 0 {
		return l
	}
	return r.Line
}

// entryLines maps canonical keyword names to the lines that set them.
func entryLines(seen map[string]*Entry) map[string]int {
	out := make(map[string]int, len(seen))
	for k, e := range seen {
		out[k] = e.Line
	}
	return out
}
