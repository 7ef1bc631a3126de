package docker

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A plugin at vigild's raised priority starts the service's dockerd back
// at niceness 0, through the real nice(1).
func TestAtNormalPriority(t *testing.T) {
	argv := []string{"sh", "-c", "nice"} // nice without arguments prints the niceness
	if got := atNormalPriority(0, argv); !slices.Equal(got, argv) {
		t.Errorf("at niceness 0: %q, want %q unchanged", got, argv)
	}
	if os.Geteuid() != 0 {
		t.Skip("raising a priority needs root")
	}
	// As vigild's plugin would run it: at -10.
	cmd := append([]string{"nice", "-n", "-10"}, atNormalPriority(-10, argv)...)
	out, err := exec.Command(cmd[0], cmd[1:]...).Output()
	if err != nil {
		t.Fatalf("%q: %v", cmd, err)
	}
	if got := strings.TrimSpace(string(out)); got != "0" {
		t.Errorf("the daemon would run at niceness %s, want 0", got)
	}
}
