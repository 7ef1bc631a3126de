package action

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindService_UnknownNameSuggestsTheClosest(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"tour.conf", "registry.env"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"toru", "did you mean tour?"},
		{"registr", "did you mean registry?"},
		{"zzzzzzzz", "(services: registry, tour)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FindService(dir, tc.name)
			if !errors.Is(err, ErrNoService) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("FindService(%q) = %v, want ErrNoService saying %q", tc.name, err, tc.want)
			}
		})
	}
}
