package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrLocked: another action holds the service's lock.
var ErrLocked = errors.New("another action is running on this service")

// Lock takes the service's action lock, shared by every process on the
// node (svcmgr and vigild alike). Without wait it fails at once with
// ErrLocked, naming the holder; with wait it waits until ctx ends. The
// returned func releases the lock.
func (e *Engine) Lock(ctx context.Context, name, what string, wait bool) (func(), error) {
	if err := e.ensureDirs(name); err != nil {
		return nil, err
	}
	path := filepath.Join(e.ServiceRunDir(name), "action.lock")
	// O_NOFOLLOW: a symlink planted in the lock's place would have root
	// truncate and write whatever it points to.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("service %s: lock %s is a symlink: remove it (vigil makes its own lock file)", name, path)
	}
	if err != nil {
		return nil, fmt.Errorf("service %s: open lock: %w", name, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("service %s: lock %s: %w", name, path, err)
		}
		if !wait {
			holder, _ := os.ReadFile(path)
			f.Close()
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "unknown holder"
			}
			return nil, fmt.Errorf("service %s: %w (%s); retry later or pass --wait-lock", name, ErrLocked, h)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("service %s: waiting for the action lock: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%s by pid %d since %s\n", what, os.Getpid(), time.Now().Format(time.RFC3339))), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
