package value

import (
	"strings"
	"testing"
)

// FuzzParse feeds the same bytes to every parser: none panics, and a value
// that parses is never negative (a size or timeout read from a config must
// not wrap around), nor an error silent about its input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "yes", "10", "1.5s", "200ms", "1.5GiB", "2 kb", "8192p", "9223372036.854775807", "NaN", "-0", "1e30", ".5", "1.", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := ParseBool(s); err != nil && !strings.Contains(err.Error(), "boolean") {
			t.Errorf("ParseBool(%q) error %q does not say what was expected", s, err)
		}
		if d, err := ParseDuration(s); err == nil && d < 0 {
			t.Errorf("ParseDuration(%q) = %d: negative", s, d)
		}
		if n, err := ParseSize(s); err == nil && n < 0 {
			t.Errorf("ParseSize(%q) = %d: negative", s, n)
		}
	})
}
