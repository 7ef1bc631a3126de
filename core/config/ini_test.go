package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseINI_ReadsSectionsEntriesAndLines(t *testing.T) {
	data := "# leading comment\n" +
		"[DEFAULT]\n" +
		"Nodes = a b\n" +
		"; another comment\n" +
		"\n" +
		"[container#1]\n" +
		"run_args = -v /a:/b  -e X=1 # an end-of-line comment\n" +
		"    -p 5000:5000\n" +
		"\t--rm\n" +
		"type=docker\n" +
		"empty =\n" +
		"[ fs#1 ]  \r\n" +
		"dev = /dev/sda1\r\n"
	f, err := ParseINI("x.env", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	type kv struct {
		key, value string
		line       int
	}
	want := []struct {
		name    string
		line    int
		entries []kv
	}{
		{"DEFAULT", 2, []kv{{"nodes", "a b", 3}}},
		{"container#1", 6, []kv{
			{"run_args", "-v /a:/b  -e X=1\n-p 5000:5000\n--rm", 7},
			{"type", "docker", 10},
			{"empty", "", 11},
		}},
		{"fs#1", 12, []kv{{"dev", "/dev/sda1", 13}}},
	}
	if len(f.Sections) != len(want) {
		t.Fatalf("got %d sections, want %d", len(f.Sections), len(want))
	}
	for i, w := range want {
		s := f.Sections[i]
		if s.Name != w.name || s.Line != w.line || len(s.Entries) != len(w.entries) {
			t.Fatalf("section %d = %q line %d with %d entries, want %q line %d with %d",
				i, s.Name, s.Line, len(s.Entries), w.name, w.line, len(w.entries))
		}
		for j, we := range w.entries {
			e := s.Entries[j]
			if e.Key != we.key || e.Value != we.value || e.Line != we.line {
				t.Errorf("[%s] entry %d = %q=%q line %d, want %q=%q line %d",
					s.Name, j, e.Key, e.Value, e.Line, we.key, we.value, we.line)
			}
		}
	}
}

func TestParseINI_IndentedFileKeepsKeysApart(t *testing.T) {
	// The tutorial shows files indented as a whole: lines at the key's own
	// indentation are keys, not continuations.
	data := "        [DEFAULT]\n        app = X\n        nodes = a\n            b\n"
	f, err := ParseINI("x.env", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section("DEFAULT")
	if got := s.Entry("app").Value; got != "X" {
		t.Errorf("app = %q, want X", got)
	}
	if got := s.Entry("nodes").Value; got != "a\nb" {
		t.Errorf("nodes = %q, want a\\nb", got)
	}
}

func TestParseINI_ReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // one substring per expected error, in order
		kind error
	}{
		{"duplicate section", "[fs#1]\ndev = a\n[fs#1]\ndev = b\n",
			[]string{"x.env:3: [fs#1] duplicate section, first defined on line 1"}, ErrDuplicate},
		{"duplicate key", "[fs#1]\ndev = a\nDEV = b\n",
			[]string{"x.env:3: [fs#1] dev: duplicate keyword, first set on line 2"}, ErrDuplicate},
		{"key outside section", "dev = a\n[fs#1]\n",
			[]string{"x.env:1: dev: keyword outside any section"}, ErrSyntax},
		{"unclosed header", "[fs#1\ndev = a\n",
			[]string{"x.env:1: section header \"[fs#1\" is not closed"}, ErrSyntax},
		{"empty header", "[ ]\n", []string{"x.env:1: empty section name"}, ErrSyntax},
		{"no delimiter", "[fs#1]\ndev: a\n", []string{`x.env:2: [fs#1] expected "key = value"`}, ErrSyntax},
		{"no key", "[fs#1]\n = a\n", []string{"x.env:2: [fs#1] missing key"}, ErrSyntax},
		{"several", "a = 1\n[s#1]\nb\n[s#1]\n",
			[]string{"x.env:1:", "x.env:3:", "x.env:4:"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseINI("x.env", []byte(tt.data))
			if f != nil {
				t.Error("got a file along with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v is not Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.kind)
			}
		})
	}
}

func TestFileBytes_UnchangedFileRoundTrips(t *testing.T) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.env"))
	inputs := map[string]string{
		"comments and continuation": "# top\n\n[DEFAULT]\nnodes = a\n  b\n; c\n\n[fs#1]\ndev = x\n# tail\n",
		"crlf":                      "[DEFAULT]\r\napp = X\r\n",
		"no final newline":          "[DEFAULT]\napp = X",
		"empty":                     "",
		"only comments":             "# a\n\n",
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(p)] = string(b)
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			f, err := ParseINI("x.env", []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Bytes(); !bytes.Equal(got, []byte(in)) {
				t.Errorf("Bytes() =\n%q\nwant\n%q", got, in)
			}
		})
	}
}

func TestFileSet_ChangesOnlyWhatItSets(t *testing.T) {
	in := "# svc\n[DEFAULT]\napp = X\n  # c\n\n[fs#1]\ndev = a\nmnt = /m\n\n[ip#1]\nipdev = eth0"
	tests := []struct {
		name                string
		section, key, value string
		want                string
	}{
		{"update", "DEFAULT", "app", "Y",
			"# svc\n[DEFAULT]\napp = Y\n  # c\n\n[fs#1]\ndev = a\nmnt = /m\n\n[ip#1]\nipdev = eth0\n"},
		{"update is case-insensitive", "fs#1", "DEV", "b",
			"# svc\n[DEFAULT]\napp = X\n  # c\n\n[fs#1]\ndev = b\nmnt = /m\n\n[ip#1]\nipdev = eth0\n"},
		{"add key after the section's last", "fs#1", "mnt_opt", "rw",
			"# svc\n[DEFAULT]\napp = X\n  # c\n\n[fs#1]\ndev = a\nmnt = /m\nmnt_opt = rw\n\n[ip#1]\nipdev = eth0\n"},
		{"add section", "vg#1", "vgname", "vg0",
			"# svc\n[DEFAULT]\napp = X\n  # c\n\n[fs#1]\ndev = a\nmnt = /m\n\n[ip#1]\nipdev = eth0\n\n[vg#1]\nvgname = vg0\n"},
		{"multi-line value", "DEFAULT", "nodes", " a \n\n b ",
			"# svc\n[DEFAULT]\napp = X\nnodes = a\n    b\n  # c\n\n[fs#1]\ndev = a\nmnt = /m\n\n[ip#1]\nipdev = eth0\n"},
		{"empty value", "DEFAULT", "app", "",
			"# svc\n[DEFAULT]\napp =\n  # c\n\n[fs#1]\ndev = a\nmnt = /m\n\n[ip#1]\nipdev = eth0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseINI("x.env", []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			f.Set(tt.section, tt.key, tt.value)
			got := string(f.Bytes())
			if got != tt.want {
				t.Fatalf("Bytes() =\n%s\nwant\n%s", got, tt.want)
			}
			g, err := ParseINI("x.env", []byte(got))
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			want := strings.Join(strings.Fields(tt.value), "\n")
			if e := g.Section(tt.section).Entry(tt.key); e == nil || e.Value != want {
				t.Errorf("re-parsed %s.%s = %+v, want %q", tt.section, tt.key, e, want)
			}
		})
	}
}

func TestFileSet_AddsDefaultSectionFirst(t *testing.T) {
	f, err := ParseINI("x.env", []byte("# svc\n[fs#1]\ndev = a\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.Set("DEFAULT", "nodes", "n1")
	want := "# svc\n[DEFAULT]\nnodes = n1\n\n[fs#1]\ndev = a\n"
	if got := string(f.Bytes()); got != want {
		t.Errorf("Bytes() =\n%s\nwant\n%s", got, want)
	}

	empty, err := ParseINI("x.env", nil)
	if err != nil {
		t.Fatal(err)
	}
	empty.Set("DEFAULT", "app", "X")
	if got := string(empty.Bytes()); got != "[DEFAULT]\napp = X\n" {
		t.Errorf("Bytes() of a new file = %q", got)
	}
}
