package action

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The lock file lives in a directory root writes in: a symlink planted in
// its place must not make vigil truncate and write the file it points to.
func TestLock_DoesNotFollowASymlink(t *testing.T) {
	e, _ := newTestEngine(t)
	if err := e.ensureDirs("svc"); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(e.ServiceRunDir("svc"), "action.lock")); err != nil {
		t.Fatal(err)
	}
	unlock, err := e.Lock(context.Background(), "svc", "start", false)
	if err == nil {
		unlock()
		t.Error("Lock took a lock through a symlink")
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the symlink's target was written: %q", b)
	}
}
