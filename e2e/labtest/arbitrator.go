package labtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// StartArbitrator runs vigil-arbitrator in the lab's client namespace (a
// namespace of the lab's own: no other lab can clash on port) with the
// lab's secret and the given lease, until the test ends; it returns the
// path of its log, shown when the test failed.
func (l *Lab) StartArbitrator(port int, lease time.Duration) string {
	t := l.T
	t.Helper()
	st := l.State()
	logPath := filepath.Join(t.TempDir(), "arbitrator.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command("nsenter", "--net="+st.NSPath(st.ClientNS()), "--",
		filepath.Join(l.Bin, "vigil-arbitrator"),
		"--listen", fmt.Sprintf("%s:%d", st.ClientAddr(), port),
		"--secret-file", filepath.Join(l.NodeDir("n1"), "etc", "cluster.secret"),
		"--cluster", l.Name, "--lease", lease.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vigil-arbitrator: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("vigil-arbitrator after SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("vigil-arbitrator did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("vigil-arbitrator's log:\n%s", b)
		}
	})
	return logPath
}
