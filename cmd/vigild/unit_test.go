package main

import (
	"os"
	"strings"
	"testing"
)

// TestUnit_NotifyOOMAndTheDefaultKillMode: the unit waits for READY=1,
// keeps vigild last in the OOM killer's choice, and keeps systemd's
// default KillMode (services run in vigil-services.slice, not here).
func TestUnit_NotifyOOMAndTheDefaultKillMode(t *testing.T) {
	b, err := os.ReadFile("vigild.service")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[") {
			keys = append(keys, l)
		}
	}
	unit := "\n" + strings.Join(keys, "\n") + "\n"
	for _, want := range []string{"\nType=notify\n", "\nNotifyAccess=main\n", "\nOOMScoreAdjust=-900\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(unit, "\nKillMode=") {
		t.Error("the unit sets KillMode: keep the default (control-group); services run in their own scopes")
	}
}
