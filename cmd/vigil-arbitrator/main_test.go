package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/arbitrator"
)

const testSecret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var buildOnce = sync.OnceValues(func() (string, error) {
	var err error
	if binDir, err = os.MkdirTemp("", "vigil-arbitrator-test-"); err != nil {
		return "", err
	}
	bin := filepath.Join(binDir, "vigil-arbitrator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// build compiles the command, once for the package's tests.
func build(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the arbitrator takes secret files owned by root only")
	}
}

func writeSecret(t *testing.T, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.secret")
	if err := os.WriteFile(p, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

var listening = regexp.MustCompile(`listening: addr=(\S+)`)

func TestArbitrator_GrantsOverTCPAndStopsOnSIGTERM(t *testing.T) {
	needRoot(t)
	bin := build(t)
	for _, tc := range []struct {
		name string
		args func(secret string) []string
	}{
		{"secret file and cluster name", func(secret string) []string {
			return []string{"--secret-file", secret, "--cluster", "c1"}
		}},
		{"a copy of cluster.conf", func(secret string) []string {
			conf := filepath.Join(filepath.Dir(secret), "cluster.conf")
			os.WriteFile(conf, []byte("[cluster]\nname = c1\nnodes = a b\nsecret_file = cluster.secret\n\n[hb#1]\ntype = net\nport = 10000\n"), 0o644)
			return []string{"--cluster-conf", conf}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--listen", "127.0.0.1:0", "--lease", "300ms", "--log-level", "debug"}, tc.args(writeSecret(t, 0o600))...)
			cmd := exec.Command(bin, args...)
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			lines := bufio.NewScanner(stderr)
			addr := ""
			for addr == "" && lines.Scan() {
				t.Log(lines.Text())
				if m := listening.FindStringSubmatch(lines.Text()); m != nil {
					addr = m[1]
				}
			}
			if addr == "" {
				t.Fatal("the arbitrator never said where it listens")
			}
			logs := make(chan string, 1)
			go func() {
				var b strings.Builder
				for lines.Scan() {
					b.WriteString(lines.Text() + "\n")
				}
				io.Copy(io.Discard, stderr)
				logs <- b.String()
			}()
			s, _ := arbitrator.ParseSecret([]byte(testSecret))
			c := arbitrator.NewClient(arbitrator.ClientConfig{Addr: addr, Key: arbitrator.Key(s, "c1"), Cluster: "c1", Node: "a"})
			deadline := time.Now().Add(30 * time.Second)
			for {
				v, err := c.Ask(context.Background(), []string{"a"})
				if err != nil {
					t.Fatal(err)
				}
				if v.Granted {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("never granted: %s", v.Reason)
				}
				time.Sleep(50 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			// Every line first (EOF comes with the exit), then Wait: Wait
			// closes the pipe and would drop what is not read yet.
			out := <-logs
			if err := cmd.Wait(); err != nil {
				t.Fatalf("after SIGTERM: %v", err)
			}
			t.Log(out)
			if !strings.Contains(out, "vote granted") || !strings.Contains(out, "stopped") {
				t.Fatal("the log shows no grant or no clean stop")
			}
		})
	}
}

func TestArbitrator_RefusesALooseSecretFile(t *testing.T) {
	needRoot(t)
	bin := build(t)
	for _, tc := range []struct {
		name string
		mode os.FileMode
		uid  int
		want string
	}{
		{"group-readable", 0o640, 0, "has mode 0640"},
		{"world-readable", 0o644, 0, "chmod 600"},
		{"not owned by root", 0o600, 65534, "chown 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeSecret(t, tc.mode)
			if err := os.Chown(p, tc.uid, -1); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--listen", "127.0.0.1:0", "--secret-file", p, "--cluster", "c1").CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %v, output %q: want a refusal saying %q", err, out, tc.want)
			}
		})
	}
}
