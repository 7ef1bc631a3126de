package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// longValueFile is a service file of size bytes or a little less whose
// run_args is one value continued over tens of thousands of lines: the
// shape that made the parser quadratic.
func longValueFile(size int) []byte {
	const head = "[DEFAULT]\nnodes = a\n\n[container#1]\ntype = docker\nrun_image = busybox\nrun_args = -e A=1\n"
	const line = "    -e VARIABLE=some-value\n"
	var b strings.Builder
	b.WriteString(head)
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

func TestParse_ReadsALongMultiLineValueAtTheSizeLimit(t *testing.T) {
	data := longValueFile(MaxFileSize)
	svc, err := Parse("long.env", data, testSchema())
	if err != nil {
		t.Fatal(err)
	}
	args := svc.Resources[0].Keywords["run_args"]
	if n, want := strings.Count(args, "\n"), strings.Count(string(data), "\n    -e"); n != want {
		t.Fatalf("run_args has %d line breaks, want %d", n, want)
	}
	if !strings.HasPrefix(args, "-e A=1\n-e VARIABLE=some-value\n") || !strings.HasSuffix(args, "\n-e VARIABLE=some-value") {
		t.Fatalf("run_args = %.60q...%q", args, args[len(args)-30:])
	}
}

func TestParse_RefusesAFileOverTheSizeLimit(t *testing.T) {
	big := longValueFile(MaxFileSize)
	for len(big) <= MaxFileSize { // blank lines up to one byte over
		big = append(big, '\n')
	}
	want := fmt.Sprintf("big.env is %d bytes; a config may be at most 1 MiB", len(big))
	parsers := []struct {
		name  string
		parse func([]byte) error
	}{
		{"Parse", func(b []byte) error { _, err := Parse("big.env", b, testSchema()); return err }},
		{"ParseINI", func(b []byte) error { _, err := ParseINI("big.env", b); return err }},
	}
	for _, p := range parsers {
		t.Run(p.name, func(t *testing.T) {
			err := p.parse(big)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Fatalf("err = %#v, want one Errors entry", err)
			}
			if !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("err = %q, want it to start %q", err, want)
			}
			if err := p.parse(big[:MaxFileSize]); err != nil {
				t.Fatalf("a file of exactly MaxFileSize bytes: %v", err)
			}
		})
	}
}

func TestLoad_RefusesAFileOverTheSizeLimitWithoutReadingItAll(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		size    int64
		tooBig  bool
		wantMsg string
	}{
		{"at the limit", MaxFileSize, false, ""},
		{"one byte over", MaxFileSize + 1, true, fmt.Sprintf("is %d bytes; a config may be at most 1 MiB", MaxFileSize+1)},
		// Sparse: Load must stop reading after MaxFileSize+1 bytes, and
		// still say how big the file is.
		{"a sparse GiB", 1 << 30, true, fmt.Sprintf("is %d bytes; a config may be at most 1 MiB", 1<<30)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("svc%d.env", i))
			data := longValueFile(MaxFileSize)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, tc.size); err != nil { // pads with NULs
				t.Fatal(err)
			}
			_, err := Load(path, testSchema())
			if got := errors.Is(err, ErrTooLarge); got != tc.tooBig {
				t.Fatalf("Load: err = %v, want too large = %v", err, tc.tooBig)
			}
			if tc.tooBig && !strings.Contains(err.Error(), path+" "+tc.wantMsg) {
				t.Fatalf("Load: err = %q, want %q", err, path+" "+tc.wantMsg)
			}
		})
	}
}

// BenchmarkParse_LongMultiLineValue parses a file at the size limit whose
// one value runs over ~38k lines. parseINI alone is also run on 4 MiB
// (over the limit, so Parse would refuse it) to show the time grows
// linearly: before the fix these took 9.7 s and 130 s.
func BenchmarkParse_LongMultiLineValue(b *testing.B) {
	schema := testSchema()
	b.Run("Parse/1MiB", func(b *testing.B) {
		data := longValueFile(MaxFileSize)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Parse("bench.env", data, schema); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, size := range []int{MaxFileSize, 4 * MaxFileSize} {
		b.Run(fmt.Sprintf("parseINI/%dMiB", size>>20), func(b *testing.B) {
			data := longValueFile(size)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, errs := parseINI("bench.env", data); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}
