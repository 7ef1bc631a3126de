package config

import (
	"strings"
	"testing"
)

func TestParseINI_EndOfLineCommentsAfterABlank(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
	}{
		{"hash after spaces", "k = n1 n2   # placement order", "n1 n2"},
		{"semicolon after a tab", "k = none\t; or stop", "none"},
		{"hash inside a word stays", "k = -e TAG=a#b", "-e TAG=a#b"},
		{"semicolon inside a word stays", "k = -e X=a;b", "-e X=a;b"},
		{"hash in double quotes stays", `k = sh -c "echo # hi" # comment`, `sh -c "echo # hi"`},
		{"semicolon in single quotes stays", "k = sh -c 'a ; b'", "sh -c 'a ; b'"},
		{"value that is only a comment is empty", "k = # nothing yet", ""},
		{"url fragment stays", "k = http://h/p#frag", "http://h/p#frag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseINI("x.conf", []byte("[DEFAULT]\n"+tc.line+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Section(DefaultSection).Entry("k").Value; got != tc.want {
				t.Errorf("value = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("header and continuation lines", func(t *testing.T) {
		data := "[stonith#n1]   # how to fence n1\nk = a   # first\n    b ; second\n"
		f, err := ParseINI("x.conf", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		sec := f.Section("stonith#n1")
		if sec == nil {
			t.Fatalf("sections %v, want stonith#n1", f.Sections)
		}
		if got := sec.Entry("k").Value; got != "a\nb" {
			t.Errorf("value = %q, want %q", got, "a\nb")
		}
		if string(f.Bytes()) != data {
			t.Errorf("Bytes() = %q, want the file back unchanged", f.Bytes())
		}
	})
}

func TestSet_KeepsTheKeyLinesComment(t *testing.T) {
	f, err := ParseINI("x.conf", []byte("[DEFAULT]\nsplit_action = none   # or stop\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.Set(DefaultSection, "split_action", "stop")
	if got, want := string(f.Bytes()), "[DEFAULT]\nsplit_action = stop # or stop\n"; got != want {
		t.Errorf("Bytes() = %q, want %q", got, want)
	}
}

func TestCheckValue_RefusesAValueThatWouldReadAsCut(t *testing.T) {
	for _, v := range []string{"a # b", "#x", "a ;b"} {
		if err := CheckValue(v); err == nil || !strings.Contains(err.Error(), "comment") {
			t.Errorf("CheckValue(%q) = %v, want a refusal naming the comment", v, err)
		}
	}
	for _, v := range []string{"a#b", `sh -c "a ; b"`, "x;y", ""} {
		if err := CheckValue(v); err != nil {
			t.Errorf("CheckValue(%q) = %v, want nil", v, err)
		}
	}
}
