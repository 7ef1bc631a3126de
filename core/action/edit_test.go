package action

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetKeywords_RefusesWhatIsNotAKeyword(t *testing.T) {
	e, _ := newTestEngine(t)
	marker := filepath.Join(t.TempDir(), "m")
	text := "[DEFAULT]\nnodes = n1\n\n" + appSection(1, marker, "")
	for _, tc := range []struct {
		kv     string
		refuse string // "" when it must be set
	}{
		{"orchestrate=ha", ""},
		{"app#1.start_delay=1s", ""},
		{"ORCHESTRATE=ha", ""}, // keywords are case-insensitive
		// Written as a comment line, and answered ok.
		{"#x=1", "#x"},
		{";x=1", ";x"},
		{"app#1.#x=1", "#x"},
		{"x y=1", "x y"},
		{"[DEFAULT]x=1", "[default]x"},
		{"app#1.=1", `""`},
		{"1x=1", "1x"},
		{"app#1 x.y=1", "app#1 x"},
		{"app#1].y=1", "app#1]"},
		{"a#.y=1", "a#"},
		// A section the file lacks: validating it would cite a line past
		// the end of the file.
		{"app#9.file=/x", "has no [app#9] section (its sections: DEFAULT, app#1)"},
		// A value read back cut at its comment.
		{"comment=a # b", "would be read as"},
	} {
		t.Run(tc.kv, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "svc.conf")
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := e.SetKeywords(context.Background(), p, []string{tc.kv})
			if tc.refuse == "" {
				if err != nil {
					t.Fatalf("SetKeywords(%q): %v", tc.kv, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("SetKeywords(%q) answered ok and wrote:\n%s", tc.kv, out)
			}
			if !strings.Contains(err.Error(), tc.refuse) {
				t.Errorf("error %q does not name %s", err, tc.refuse)
			}
		})
	}
}
