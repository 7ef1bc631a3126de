package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/core/config"
)

// trig is a trigger that appends its name (and what Vigil told it) to log,
// then exits with code.
func trig(log, name string, code int) string {
	return fmt.Sprintf(`/bin/sh -c 'echo "%s $VIGIL_SVCNAME $VIGIL_RID $VIGIL_ACTION" >> %s; exit %d'`, name, log, code)
}

func readLog(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestTriggers_RunAroundServiceAndResourceActionsInOrder(t *testing.T) {
	e, _ := newTestEngine(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	var def, res strings.Builder
	for _, n := range config.Triggers {
		fmt.Fprintf(&def, "%s = %s\n", n, trig(log, "svc."+n, 0))
		fmt.Fprintf(&res, "%s = %s\n", n, trig(log, "res."+n, 0))
	}
	svc := loadText(t, e, "trg", "[DEFAULT]\nnodes = n1\n"+def.String()+appSection(1, filepath.Join(dir, "m"), res.String()))
	if err := e.Start(context.Background(), svc, Options{}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := e.Stop(context.Background(), svc, Options{}); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	want := strings.Join([]string{
		"svc.pre_start trg  start", "svc.blocking_pre_start trg  start",
		"res.pre_start trg app#1 start", "res.blocking_pre_start trg app#1 start", "res.post_start trg app#1 start",
		"svc.post_start trg  start",
		"svc.pre_stop trg  stop", "svc.blocking_pre_stop trg  stop",
		"res.pre_stop trg app#1 stop", "res.blocking_pre_stop trg app#1 stop", "res.post_stop trg app#1 stop",
		"svc.post_stop trg  stop",
	}, "\n")
	if got := readLog(t, log); got != want {
		t.Errorf("triggers ran:\n%s\nwant:\n%s", got, want)
	}

	// A restart of one resource (the monitor's) is not a service start.
	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background(), svc, Options{RIDs: []string{"app#1"}}); err != nil {
		t.Fatalf("Start app#1: %v", err)
	}
	if got := readLog(t, log); strings.Contains(got, "svc.") || !strings.Contains(got, "res.pre_start") {
		t.Errorf("a resource restart ran:\n%s\nwant the resource's triggers only", got)
	}
}

func TestTriggers_BlockingFailureAbortsTheActionOthersDoNot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		section  string // "DEFAULT" or "app#1"
		trigger  string
		verb     string
		wantErr  string
		wantUp   bool // the resource's marker after the action
		startsUp bool
	}{
		{"a failing pre_start is logged and the start goes on", "app#1", "pre_start", "start", "", true, false},
		{"a failing blocking_pre_start of a resource aborts the start", "app#1", "blocking_pre_start", "start", "blocking_pre_start: /bin/sh exited 3", false, false},
		{"a failing blocking_pre_start of the service aborts the start", "DEFAULT", "blocking_pre_start", "start", "blocking_pre_start: /bin/sh exited 3", false, false},
		{"a failing post_start does not fail the start", "app#1", "post_start", "start", "", true, false},
		{"a failing blocking_pre_stop of a resource aborts the stop", "app#1", "blocking_pre_stop", "stop", "blocking_pre_stop: /bin/sh exited 3", true, true},
		{"a failing blocking_pre_stop of the service aborts the stop", "DEFAULT", "blocking_pre_stop", "stop", "blocking_pre_stop: /bin/sh exited 3", true, true},
		{"a failing pre_stop is logged and the stop goes on", "app#1", "pre_stop", "stop", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newTestEngine(t)
			dir := t.TempDir()
			marker, log := filepath.Join(dir, "m"), filepath.Join(dir, "log")
			line := fmt.Sprintf("%s = %s\n", tc.trigger, trig(log, tc.trigger, 3))
			def, res := "", ""
			if tc.section == "DEFAULT" {
				def = line
			} else {
				res = line
			}
			svc := loadText(t, e, "blk", "[DEFAULT]\nnodes = n1\n"+def+appSection(1, marker, res))
			if tc.startsUp {
				if err := os.WriteFile(marker, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			if tc.verb == "start" {
				err = e.Start(context.Background(), svc, Options{})
			} else {
				err = e.Stop(context.Background(), svc, Options{})
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("%s: %v, want it to go on", tc.verb, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("%s = %v, want an error containing %q", tc.verb, err, tc.wantErr)
			}
			if exists(marker) != tc.wantUp {
				t.Errorf("after the %s, app#1 up = %v, want %v", tc.verb, exists(marker), tc.wantUp)
			}
			if !strings.Contains(strings.Join(rec.lines(), "\n"), tc.trigger+" ") {
				t.Errorf("no step reported for the trigger: %v", rec.lines())
			}
		})
	}
}

func TestTriggers_BadQuotingRefusedWithItsLine(t *testing.T) {
	e, _ := newTestEngine(t)
	p := filepath.Join(t.TempDir(), "q.conf")
	text := "[DEFAULT]\nnodes = n1\n" + appSection(1, "/tmp/x", "post_start = /bin/echo 'unclosed")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.Load(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), p+":6: [app#1] post_start") || !strings.Contains(err.Error(), "unterminated quote") {
		t.Fatalf("Load = %v, want the bad quote refused at line 6", err)
	}
}
