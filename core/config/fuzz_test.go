package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics and returns exactly one of a
// service or Errors, and that a file ParseINI accepts comes back from
// Bytes unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range seedFiles {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("[DEFAULT]\nnodes = a\n  b\n[subset#vg:x]\nparallel = 1\n[disk#1]\ntype = vg\nname = v\n"))
	schema := testSchema()
	f.Fuzz(func(t *testing.T, data []byte) {
		svc, err := Parse("fuzz.env", data, schema)
		switch {
		case svc == nil && err == nil:
			t.Fatal("neither a service nor an error")
		case svc != nil && err != nil:
			t.Fatalf("both a service and an error: %v", err)
		case err != nil:
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %#v", err)
			}
			_ = err.Error()
		}

		file, err := ParseINI("fuzz.env", data)
		if err != nil {
			return
		}
		if out := file.Bytes(); !bytes.Equal(out, data) && !(len(data) == 0 && out == nil) {
			t.Fatalf("Bytes() = %q, want the input %q", out, data)
		}
		file.Set("DEFAULT", "comment", "x\ny")
		again, err := ParseINI("fuzz.env", file.Bytes())
		if err != nil {
			t.Fatalf("Set made the file unreadable: %v\n%q", err, file.Bytes())
		}
		if e := again.Section("DEFAULT").Entry("comment"); e == nil || e.Value != "x\ny" {
			t.Fatalf("after Set, comment = %+v in %q", e, file.Bytes())
		}
	})
}
