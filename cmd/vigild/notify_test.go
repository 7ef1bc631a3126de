package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVigild_TellsSystemdItIsReady runs vigild as systemd runs a
// Type=notify unit: READY=1 arrives on $NOTIFY_SOCKET once it serves its
// API (the socket exists then), and STOPPING=1 when it is stopped.
func TestVigild_TellsSystemdItIsReady(t *testing.T) {
	base := t.TempDir()
	bin := filepath.Join(base, "vigild")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build vigild: %v\n%s", err, out)
	}
	notify := filepath.Join(base, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	run, err := os.MkdirTemp("", "vn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	for _, d := range []string{"etc", "lib", "plugins"} {
		os.MkdirAll(filepath.Join(base, d), 0o700)
	}
	cmd := exec.Command(bin, "--config-dir", filepath.Join(base, "etc"), "--state-dir", filepath.Join(base, "lib"),
		"--run-dir", run, "--plugin-dir", filepath.Join(base, "plugins"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify, "VIGIL_ALLOW_NONROOT=1")
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	read := func(want string) {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 256)
		n, err := ln.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("notification %q, %v; want %q\nvigild:\n%s", buf[:n], err, want, logs.String())
		}
	}
	read("READY=1")
	if _, err := os.Stat(filepath.Join(run, "vigild.sock")); err != nil {
		t.Fatalf("READY=1 before the API socket: %v", err)
	}
	cmd.Process.Signal(os.Interrupt)
	read("STOPPING=1")
}

func TestSdNotify_AbstractSocketAndNone(t *testing.T) {
	name := "@vigil-notify-test-" + filepath.Base(t.TempDir())
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name[1:], Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := ln.Read(buf); err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, want nothing done", err)
	}
}
