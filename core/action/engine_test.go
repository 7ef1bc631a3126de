package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/plugin"
	"github.com/vigil-ha/vigil/core/plugin/plugintest"
	"github.com/vigil-ha/vigil/core/status"
)

type recorder struct {
	mu    sync.Mutex
	steps []Step
}

func (r *recorder) add(s Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, s)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.steps {
		out = append(out, s.Action+" "+s.RID+" "+s.Phase)
	}
	return out
}

func newTestEngine(t *testing.T) (*Engine, *recorder) {
	t.Helper()
	host := plugin.New(plugin.Config{Dir: plugintest.Dir(t), Logger: hclog.NewNullLogger()})
	t.Cleanup(host.Close)
	rec := &recorder{}
	base := t.TempDir()
	e := New(Config{Plugins: host, RunDir: filepath.Join(base, "run"), StateDir: filepath.Join(base, "lib"),
		Logger: hclog.NewNullLogger(), Progress: rec.add})
	return e, rec
}

// loadText writes a service file and loads it through the engine.
func loadText(t *testing.T, e *Engine, name, text string) *config.Service {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	svc, err := e.Load(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func appSection(n int, file string, extra string) string {
	return fmt.Sprintf("[app#%d]\ntype = test\nfile = %s\n%s\n", n, file, extra)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestStart_FailedResourceRollsBackWhatStarted(t *testing.T) {
	e, rec := newTestEngine(t)
	dir := t.TempDir()
	m := func(i int) string { return filepath.Join(dir, fmt.Sprint(i)) }
	svc := loadText(t, e, "rb", "[DEFAULT]\nnodes = n1\n"+appSection(1, m(1), "")+appSection(2, m(2), "")+appSection(3, m(3), "fail = true"))
	err := e.Start(context.Background(), svc, Options{})
	var re *ResourceError
	if !errors.As(err, &re) || re.RID != "app#3" || re.Action != "start" {
		t.Fatalf("want the failure of app#3 named, got %v", err)
	}
	if exists(m(1)) || exists(m(2)) {
		t.Fatal("rollback left started resources up")
	}
	got := strings.Join(rec.lines(), "\n")
	want := "rollback app#2 done\nrollback app#1 begin"
	if !strings.Contains(strings.ReplaceAll(got, "rollback app#1 begin\nrollback app#1 done", "rollback app#1 begin"), want) {
		t.Fatalf("rollback not in reverse order:\n%s", got)
	}
}

func TestStart_OptionalFailureDoesNotRollBack(t *testing.T) {
	e, _ := newTestEngine(t)
	dir := t.TempDir()
	svc := loadText(t, e, "opt", "[DEFAULT]\nnodes = n1\n"+appSection(1, filepath.Join(dir, "1"), "")+
		appSection(2, filepath.Join(dir, "2"), "fail = true\noptional = true"))
	if err := e.Start(context.Background(), svc, Options{}); err != nil {
		t.Fatalf("optional failure failed the start: %v", err)
	}
	if !exists(filepath.Join(dir, "1")) {
		t.Fatal("app#1 rolled back for an optional failure")
	}
}

func TestStart_ParallelSubsetStartsTogether(t *testing.T) {
	e, rec := newTestEngine(t)
	dir := t.TempDir()
	text := "[DEFAULT]\nnodes = n1\n[subset#app.test:par]\nparallel = true\n"
	for i := 1; i <= 4; i++ {
		text += appSection(i, filepath.Join(dir, fmt.Sprint(i)), "subset = par\nstart_delay = 200ms")
	}
	svc := loadText(t, e, "par", text)
	if err := e.Start(context.Background(), svc, Options{}); err != nil {
		t.Fatal(err)
	}
	// Every start began before any finished: they ran as one wave.
	lines := rec.lines()
	for i, l := range lines[:4] {
		if !strings.HasSuffix(l, " begin") {
			t.Fatalf("step %d is %q: the subset did not start as one wave:\n%s", i, l, strings.Join(lines, "\n"))
		}
	}
}

func TestStop_RunsInReverseOrderAndSkipsStandby(t *testing.T) {
	e, rec := newTestEngine(t)
	dir := t.TempDir()
	svc := loadText(t, e, "rev", "[DEFAULT]\nnodes = n1\n"+appSection(1, filepath.Join(dir, "1"), "")+
		appSection(2, filepath.Join(dir, "2"), "")+appSection(3, filepath.Join(dir, "3"), "standby = true"))
	ctx := context.Background()
	if err := e.Start(ctx, svc, Options{}); err != nil {
		t.Fatal(err)
	}
	rec.steps = nil
	if err := e.Stop(ctx, svc, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.lines(), ","); got != "stop app#2 begin,stop app#2 done,stop app#1 begin,stop app#1 done" {
		t.Fatalf("stop order: %s", got)
	}
	st := e.Status(ctx, svc)
	if st.Resources[2].Status != status.StdbyUp || st.Avail != status.StdbyUp {
		t.Fatalf("standby resource should stay up and read stdby up: %+v", st)
	}
}

func TestStart_UnknownRIDRefusedBeforeAnything(t *testing.T) {
	e, rec := newTestEngine(t)
	svc := loadText(t, e, "rid", "[DEFAULT]\nnodes = n1\n"+appSection(1, filepath.Join(t.TempDir(), "1"), ""))
	err := e.Start(context.Background(), svc, Options{RIDs: []string{"app#9"}})
	if err == nil || !strings.Contains(err.Error(), "no resource app#9") || len(rec.lines()) != 0 {
		t.Fatalf("want a refusal naming app#9 and nothing run, got %v, %v", err, rec.lines())
	}
}

func TestLock_SecondActionRefusedThenWaits(t *testing.T) {
	e, _ := newTestEngine(t)
	ctx := context.Background()
	unlock, err := e.Lock(ctx, "svc", "start", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Lock(ctx, "svc", "stop", false)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "start by pid") || !strings.Contains(err.Error(), "--wait") {
		t.Fatalf("second action: want ErrLocked naming the holder, got %v", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := e.Lock(ctx, "svc", "stop", true)
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("waiting lock returned while held: %v", err)
	case <-time.After(150 * time.Millisecond):
	}
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("waiting lock: %v", err)
	}
	// A waiting lock gives up with its context.
	unlock, _ = e.Lock(ctx, "svc", "start", false)
	defer unlock()
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := e.Lock(cctx, "svc", "stop", true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
}

func TestLoad_UnknownTypeNamesPluginDirectory(t *testing.T) {
	e, _ := newTestEngine(t)
	p := filepath.Join(t.TempDir(), "x.conf")
	os.WriteFile(p, []byte("[DEFAULT]\nnodes = n1\n[app#1]\ntype = nosuch\n"), 0o600)
	_, err := e.Load(context.Background(), p)
	var errs config.Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "x.conf:4") {
		t.Fatalf("want a config error at the type line, got %v", err)
	}
}

func TestStart_RIDsLimitTheAction(t *testing.T) {
	e, rec := newTestEngine(t)
	dir := t.TempDir()
	svc := loadText(t, e, "some", "[DEFAULT]\nnodes = n1\n"+appSection(1, filepath.Join(dir, "1"), "")+
		appSection(2, filepath.Join(dir, "2"), "")+appSection(3, filepath.Join(dir, "3"), ""))
	if err := e.Start(context.Background(), svc, Options{RIDs: []string{"app#1", "app#2"}}); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, "3")) {
		t.Fatalf("app#3 started though not asked: %v", rec.lines())
	}
	if !exists(filepath.Join(dir, "1")) || !exists(filepath.Join(dir, "2")) {
		t.Fatal("asked resources not started")
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}

// The start schedule, with real plugin calls: the address and the disk
// start together, a filesystem only once both are up, two filesystems
// side by side on a third together after it, and the stop in reverse.
func TestStart_AddressBesideDiskFilesystemsTogether(t *testing.T) {
	e, rec := newTestEngine(t)
	dir := t.TempDir()
	m := func(rid string) string { return filepath.Join(dir, strings.ReplaceAll(rid, "#", "")) }
	sec := func(rid, extra string) string {
		delay := "100ms"
		if rid == "ip#1" {
			// The probe outlasts the disk: a filesystem that did not
			// wait for the address would begin before it is done.
			delay = "400ms"
		}
		return fmt.Sprintf("[%s]\ntype = test\nfile = %s\nstart_delay = %s\n%s\n", rid, m(rid), delay, extra)
	}
	svc := loadText(t, e, "sched", "[DEFAULT]\nnodes = n1\n"+
		sec("ip#1", "")+sec("disk#1", "")+
		sec("fs#1", "mnt = /srv/reg")+sec("fs#2", "mnt = /srv/reg/docker")+sec("fs#3", "mnt = /srv/reg/data")+
		sec("app#1", ""))
	if err := e.Start(context.Background(), svc, Options{}); err != nil {
		t.Fatal(err)
	}
	lines := rec.lines()
	at := func(l string) int {
		for i, x := range lines {
			if x == l {
				return i
			}
		}
		t.Fatalf("no %q in:\n%s", l, strings.Join(lines, "\n"))
		return -1
	}
	before := func(a, b string) {
		t.Helper()
		if at(a) > at(b) {
			t.Errorf("%q after %q:\n%s", a, b, strings.Join(lines, "\n"))
		}
	}
	before("start disk#1 begin", "start ip#1 done") // together
	before("start ip#1 begin", "start disk#1 done")
	before("start ip#1 done", "start fs#1 begin")
	before("start disk#1 done", "start fs#1 begin")
	before("start fs#1 done", "start fs#2 begin")
	before("start fs#3 begin", "start fs#2 done") // together
	before("start fs#2 begin", "start fs#3 done")
	before("start fs#2 done", "start app#1 begin")
	before("start fs#3 done", "start app#1 begin")

	rec.steps = nil
	if err := e.Stop(context.Background(), svc, Options{}); err != nil {
		t.Fatal(err)
	}
	lines = rec.lines()
	before("stop app#1 done", "stop fs#2 begin")
	before("stop fs#2 done", "stop fs#1 begin")
	before("stop fs#3 done", "stop fs#1 begin")
	before("stop fs#1 done", "stop disk#1 begin")
	before("stop fs#1 done", "stop ip#1 begin")
	for _, rid := range []string{"ip#1", "disk#1", "fs#1", "fs#2", "fs#3", "app#1"} {
		if exists(m(rid)) {
			t.Errorf("%s still up after the stop", rid)
		}
	}
}

// A resource that fails while another runs beside it: the other finishes,
// nothing further begins, and both are rolled back.
func TestStart_FailureBesideARunningStartRollsBackBoth(t *testing.T) {
	e, rec := newTestEngine(t)
	dir := t.TempDir()
	svc := loadText(t, e, "fail", "[DEFAULT]\nnodes = n1\n"+
		fmt.Sprintf("[ip#1]\ntype = test\nfile = %s\nfail = true\n", filepath.Join(dir, "ip"))+
		fmt.Sprintf("[disk#1]\ntype = test\nfile = %s\nstart_delay = 200ms\n", filepath.Join(dir, "disk"))+
		fmt.Sprintf("[fs#1]\ntype = test\nfile = %s\n", filepath.Join(dir, "fs")))
	err := e.Start(context.Background(), svc, Options{})
	var re *ResourceError
	if !errors.As(err, &re) || re.RID != "ip#1" {
		t.Fatalf("want the failure of ip#1 named, got %v", err)
	}
	got := strings.Join(rec.lines(), "\n")
	for _, want := range []string{"start disk#1 done", "rollback disk#1 done", "rollback ip#1 done"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "start fs#1") {
		t.Errorf("fs#1 began after ip#1 failed:\n%s", got)
	}
	if exists(filepath.Join(dir, "disk")) {
		t.Error("disk#1 left up")
	}
}
