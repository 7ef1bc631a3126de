package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/status"
)

// buildPlugin compiles testdata/<src> into dir as vigil-plugin-<name>.
func buildPlugin(t testing.TB, dir, src, name string) string {
	t.Helper()
	out := filepath.Join(dir, BinaryPrefix+name)
	cmd := exec.Command("go", "build", "-o", out, "./testdata/"+src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", src, err, b)
	}
	return out
}

func newTestHost(t testing.TB, dir string) *Host {
	t.Helper()
	h := New(Config{Dir: dir, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})})
	t.Cleanup(h.Close)
	return h
}

func testRequest(file string, kw map[string]string) Request {
	k := map[string]string{"file": file}
	for a, b := range kw {
		k[a] = b
	}
	return Request{Service: ServiceEnv{Name: "svc"}, RID: "app#1", Type: "app.test", Keywords: k}
}

func TestHost_ListsPluginVersionProtocolAndTypes(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "testplugin", "test")
	h := newTestHost(t, dir)
	infos, errs, err := h.Plugins(context.Background())
	if err != nil || len(errs) != 0 {
		t.Fatalf("Plugins: %v %v", err, errs)
	}
	if len(infos) != 1 {
		t.Fatalf("want 1 plugin, got %+v", infos)
	}
	in := infos[0]
	if in.Name != "test" || in.Version != "9.9.9" || in.Protocol != 1 || len(in.Types) != 4 || in.Types[0].Type != "app.test" {
		t.Fatalf("unexpected info %+v", in)
	}
	if len(in.Types[0].Keywords) != 4 || in.Types[0].Keywords[1].Type != "duration" {
		t.Fatalf("keywords not carried: %+v", in.Types[0].Keywords)
	}
}

func TestHost_RefusesUnknownProtocolVersion(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "badproto", "future")
	h := newTestHost(t, dir)
	_, errs, err := h.Plugins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	perr := errs[BinaryPrefix+"future"]
	if perr == nil {
		t.Fatal("a plugin speaking protocol 99 was accepted")
	}
	if !errors.Is(perr, ErrProtocol) || !strings.Contains(perr.Error(), "version 99") || !strings.Contains(perr.Error(), "version 1") {
		t.Fatalf("error should name both versions: %v", perr)
	}
	if _, err := h.Driver(context.Background(), "app.test"); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("want ErrUnknownType, got %v", err)
	}
}

func TestHost_PluginKilledDuringStart_CallFailsAndNextCallWorks(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "testplugin", "test")
	h := newTestHost(t, dir)
	ctx := context.Background()
	d, err := h.Driver(ctx, "app.test")
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "marker")
	done := make(chan error, 1)
	go func() {
		_, err := d.Start(ctx, testRequest(marker, map[string]string{"start_delay": "30s"}))
		done <- err
	}()
	pid := h.PIDs()[BinaryPrefix+"test"]
	if pid == 0 {
		t.Fatal("plugin not running")
	}
	time.Sleep(200 * time.Millisecond) // let the start reach the plugin
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the start in flight did not fail after the plugin died")
	}
	if !errors.Is(err, ErrPluginDied) || !strings.Contains(err.Error(), "start app#1") {
		t.Fatalf("want a clear plugin-died error, got %v", err)
	}
	// The next call restarts the plugin and works.
	if _, err := d.Start(ctx, testRequest(marker, nil)); err != nil {
		t.Fatalf("start after restart: %v", err)
	}
	if st := d.Status(ctx, testRequest(marker, nil)); st.Status != status.Up {
		t.Fatalf("status after restart: %+v", st)
	}
	if got := h.Restarts()[BinaryPrefix+"test"]; got != 1 {
		t.Fatalf("want 1 restart, got %d", got)
	}
	if newPID := h.PIDs()[BinaryPrefix+"test"]; newPID == pid || newPID == 0 {
		t.Fatalf("plugin not restarted: pid %d then %d", pid, newPID)
	}
}

func TestHost_StatusOfUnreachablePluginReadsUndef(t *testing.T) {
	dir := t.TempDir()
	bin := buildPlugin(t, dir, "testplugin", "test")
	h := newTestHost(t, dir)
	ctx := context.Background()
	d, err := h.Driver(ctx, "app.test")
	if err != nil {
		t.Fatal(err)
	}
	// The binary vanishes and the process dies: the restart cannot happen.
	pid := h.PIDs()[BinaryPrefix+"test"]
	os.Remove(bin)
	syscall.Kill(pid, syscall.SIGKILL)
	waitGone(t, pid)
	st := d.Status(ctx, testRequest(filepath.Join(dir, "m"), nil))
	if st.Status != status.Undef || len(st.Log) == 0 {
		t.Fatalf("want undef with a reason, got %+v", st)
	}
}

// TestHost_PluginsDieWithKilledHost runs a host in a child process, kills it
// with SIGKILL, and checks its plugin process goes too.
func TestHost_PluginsDieWithKilledHost(t *testing.T) {
	if dir := os.Getenv("VIGIL_TEST_HOST_DIR"); dir != "" {
		h := New(Config{Dir: dir})
		if _, err := h.Driver(context.Background(), "app.test"); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("pid", h.PIDs()[BinaryPrefix+"test"])
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := t.TempDir()
	buildPlugin(t, dir, "testplugin", "test")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHost_PluginsDieWithKilledHost$")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HOST_DIR="+dir)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	pid := 0
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "pid" {
			pid, _ = strconv.Atoi(f[1])
			break
		} else if len(f) > 0 && f[0] == "error" {
			t.Fatal(sc.Text())
		}
	}
	if pid == 0 {
		t.Fatal("host child did not report its plugin pid")
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitGone(t, pid)
}

// waitGone waits for a process to disappear (a zombie counts as gone).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("process %d still alive", pid)
}
