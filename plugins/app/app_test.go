package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// These tests run the real thing: Debian's resource-agents (heartbeat:Dummy,
// heartbeat:anything), real processes, a real plugin process killed by
// SIGKILL. They skip when the host cannot run them.

const ocfRoot = "/usr/lib/ocf"

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the app plugin runs its commands and agents as root")
	}
}

func requireAgent(t *testing.T, agent string) {
	t.Helper()
	requireRoot(t)
	prov, name, _ := strings.Cut(agent, ":")
	if _, err := os.Stat(filepath.Join(ocfRoot, "resource.d", prov, name)); err != nil {
		t.Skipf("needs the OCF agent %s (apt-get install resource-agents, or make deps)", agent)
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// resource is one app resource of a throwaway service.
func resource(t *testing.T, typ string, kw map[string]string) sdk.Resource {
	t.Helper()
	run := t.TempDir()
	return sdk.Resource{
		Service:  sdk.Service{Name: "apptest-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), RunDir: run, VarDir: run},
		RID:      "app#1",
		Type:     typ,
		Keywords: kw,
	}
}

func wantStatus(t *testing.T, d *Driver, r sdk.Resource, want sdk.Status) sdk.ResourceStatus {
	t.Helper()
	st := d.Status(testCtx(t, 30*time.Second), r)
	if st.Status != want {
		t.Fatalf("status = %s %v, want %s", st.Status, st.Log, want)
	}
	return st
}

func TestOCF_DummyStartStatusStopAndFailingMonitor(t *testing.T) {
	requireAgent(t, "heartbeat:Dummy")
	state := filepath.Join(t.TempDir(), "dummy.state")
	r := resource(t, TypeOCF, map[string]string{"agent": "heartbeat:Dummy", "params": "state=" + state})
	d := New(Config{})
	ctx := testCtx(t, 2*time.Minute)
	t.Cleanup(func() { _, _ = d.Stop(context.Background(), r) })

	if errs := d.Validate(ctx, r); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs)
	}
	wantStatus(t, d, r, sdk.StatusDown)
	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("the agent did not get OCF_RESKEY_state: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusUp)
	if log, err := d.Start(ctx, r); err != nil || !strings.Contains(strings.Join(log, " "), "already running") {
		t.Fatalf("a second Start = %v, %v; want already running", log, err)
	}

	// The monitor fails (OCF_NOT_RUNNING) once the agent's state is gone,
	// and a start brings it back.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, r, sdk.StatusDown)
	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start after the failed monitor: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusUp)

	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusDown)
	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}
}

// A test agent of our own (not one of resource-agents) for the return
// codes Dummy never gives: its monitor exits with the code in its
// parameter.
const codeAgent = `#!/bin/sh
case "$1" in
meta-data) cat <<'EOF'
<?xml version="1.0"?>
<resource-agent name="code" version="1.0">
<parameters><parameter name="code" required="1"><content type="integer"/></parameter></parameters>
<actions><action name="start" timeout="7s"/><action name="stop" timeout="9s"/>
<action name="monitor" timeout="11s" interval="10s" depth="0"/><action name="monitor" timeout="99s" depth="10"/></actions>
</resource-agent>
EOF
exit 0;;
monitor) echo "monitor of $OCF_RESOURCE_INSTANCE says $OCF_RESKEY_code" >&2; exit "$OCF_RESKEY_code";;
start|stop) echo "$1 timeout $OCF_RESKEY_CRM_meta_timeout"; exit 0;;
*) exit 3;;
esac
`

func codeAgentRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "resource.d", "vigiltest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "code"), []byte(codeAgent), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestOCF_MonitorCodesMapToStatus(t *testing.T) {
	requireRoot(t)
	d := New(Config{OCFRoot: codeAgentRoot(t)})
	for _, tc := range []struct {
		code   int
		want   sdk.Status
		reason string
	}{
		{0, sdk.StatusUp, ""},
		{7, sdk.StatusDown, ""},
		{8, sdk.StatusUp, ""},
		{1, sdk.StatusWarn, "OCF_ERR_GENERIC"},
		{5, sdk.StatusWarn, "OCF_ERR_INSTALLED"},
		{6, sdk.StatusWarn, "OCF_ERR_CONFIGURED"},
		{190, sdk.StatusWarn, "OCF_DEGRADED"},
		{42, sdk.StatusWarn, "not an OCF return code"},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			r := resource(t, TypeOCF, map[string]string{"agent": "vigiltest:code", "params": fmt.Sprintf("code=%d", tc.code)})
			st := wantStatus(t, d, r, tc.want)
			if got := strings.Join(st.Log, " "); !strings.Contains(got, tc.reason) {
				t.Errorf("reason = %q, want it to say %q", got, tc.reason)
			}
		})
	}
}

func TestOCF_StartRecoversAFailedResourceAndTimeoutsComeFromMetaData(t *testing.T) {
	requireRoot(t)
	d := New(Config{OCFRoot: codeAgentRoot(t)})
	r := resource(t, TypeOCF, map[string]string{"agent": "vigiltest:code", "params": "code=1"})
	log, err := d.Start(testCtx(t, time.Minute), r)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	got := strings.Join(log, "\n")
	if !strings.Contains(got, "stopping it before the start") || !strings.Contains(got, "start timeout 7000") {
		t.Errorf("Start's log = %q; want a stop before the start, and the agent's 7s start timeout", got)
	}
	r.Keywords["start_timeout"] = "3s"
	if log, err = d.Start(testCtx(t, time.Minute), r); err != nil || !strings.Contains(strings.Join(log, " "), "start timeout 3000") {
		t.Errorf("Start with start_timeout = 3s: %v, %v; want the agent told 3000 ms", log, err)
	}
	s, errs := d.ocfSpec(context.Background(), r)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := s.md.actionTimeout("monitor"); got != 11*time.Second {
		t.Errorf("monitor timeout = %s, want the depth-0 monitor's 11s", got)
	}
}

func TestOCF_ValidateChecksParamsAgainstMetaData(t *testing.T) {
	requireAgent(t, "heartbeat:anything")
	requireAgent(t, "heartbeat:Dummy")
	d := New(Config{})
	for _, tc := range []struct {
		name, agent, params string
		want                []string // keyword: message fragment
	}{
		{"a missing required parameter", "heartbeat:anything", "", []string{"params: heartbeat:anything requires parameter binfile"}},
		{"an unknown parameter", "heartbeat:Dummy", "stat=/tmp/x", []string{`params: unknown parameter "stat" of heartbeat:Dummy; it takes state, fake`}},
		{"a word that is not name=value", "heartbeat:Dummy", "state", []string{`params: "state": write name=value`}},
		{"an agent that is not installed", "heartbeat:NoSuchAgent", "", []string{"agent: no agent /usr/lib/ocf/resource.d/heartbeat/NoSuchAgent: install"}},
		{"an agent without a provider", "Dummy", "", []string{`agent: "Dummy": write PROVIDER:AGENT`}},
		{"quoted values", "heartbeat:anything", `binfile=/bin/sleep cmdline_options="1000 2000"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := resource(t, TypeOCF, map[string]string{"agent": tc.agent, "params": tc.params})
			var got []string
			for _, e := range d.Validate(testCtx(t, 30*time.Second), r) {
				got = append(got, e.Keyword+": "+e.Message)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Validate = %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("Validate[%d] = %q, want it to contain %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestForking_CheckExitCodes(t *testing.T) {
	requireRoot(t)
	marker := filepath.Join(t.TempDir(), "up")
	r := resource(t, TypeForking, map[string]string{
		"start": "/usr/bin/touch " + marker,
		"stop":  "/bin/rm -f " + marker,
		"check": `/bin/sh -c 'test -e "$0" || exit 1; c=$(cat "$0"); echo "says $c"; exit "${c:-0}"' ` + marker,
	})
	d := New(Config{})
	ctx := testCtx(t, time.Minute)
	wantStatus(t, d, r, sdk.StatusDown)
	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusUp)
	if err := os.WriteFile(marker, []byte("3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := wantStatus(t, d, r, sdk.StatusWarn); !strings.Contains(strings.Join(st.Log, " "), "check exited 3 says 3") {
		t.Errorf("warn reason = %v, want the exit code and the output", st.Log)
	}
	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusDown)
}

func TestForking_StartThatLeavesADaemonReturns(t *testing.T) {
	requireRoot(t)
	// The daemon keeps the start's stdout open: start must return all
	// the same (its output goes to a file, not a pipe).
	pidf := filepath.Join(t.TempDir(), "daemon.pid")
	r := resource(t, TypeForking, map[string]string{
		"shell": "true",
		"start": "/bin/sleep 600 & echo $! > " + pidf + "; echo started",
		"stop":  "kill $(cat " + pidf + ")",
		// A killed daemon may linger as a zombie of whoever adopted it.
		"check": "p=$(cat " + pidf + "); test -e /proc/$p/status && ! grep -q '^State:.Z' /proc/$p/status",
	})
	d := New(Config{})
	t.Cleanup(func() { _, _ = d.Stop(context.Background(), r) })
	log, err := d.Start(testCtx(t, 20*time.Second), r)
	if err != nil || !strings.Contains(strings.Join(log, " "), "started") {
		t.Fatalf("Start = %v, %v", log, err)
	}
	wantStatus(t, d, r, sdk.StatusUp)
	if _, err := d.Stop(testCtx(t, 20*time.Second), r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusDown)
}

func TestCommand_ValidateRefusesWhatCannotRun(t *testing.T) {
	d := New(Config{})
	for _, tc := range []struct {
		name string
		kw   map[string]string
		want string
	}{
		{"a bare program name without a shell", map[string]string{"start": "sleep 10"}, `start: "sleep" is not a path`},
		{"an open quote", map[string]string{"start": "/bin/echo 'x"}, "start: unterminated quote"},
		{"an unknown user", map[string]string{"start": "/bin/true", "user": "no-such-user-vigil"}, `user: no user "no-such-user-vigil"`},
		{"a relative cwd", map[string]string{"start": "/bin/true", "cwd": "srv"}, `cwd: "srv" is not an absolute path`},
		{"an environment word without =", map[string]string{"start": "/bin/true", "environment": "A=1 B"}, `environment: "B": write NAME=VALUE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := resource(t, TypeSimple, tc.kw)
			errs := d.Validate(context.Background(), r)
			if len(errs) != 1 || !strings.Contains(errs[0].Keyword+": "+errs[0].Message, tc.want) {
				t.Fatalf("Validate = %v, want one error containing %q", errs, tc.want)
			}
		})
	}
}

func TestSimple_KeptRunningAndStoppedByProcessGroup(t *testing.T) {
	requireRoot(t)
	out := filepath.Join(t.TempDir(), "env")
	r := resource(t, TypeSimple, map[string]string{
		"start":       `/bin/sh -c 'echo "$GREETING $VIGIL_RID $(pwd)" > ` + out + `; /bin/sleep 600 & wait'`,
		"environment": `GREETING="hello there"`,
		"cwd":         "/tmp",
	})
	d := New(Config{})
	ctx := testCtx(t, time.Minute)
	t.Cleanup(func() { _, _ = d.Stop(context.Background(), r) })
	wantStatus(t, d, r, sdk.StatusDown)
	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusUp)
	if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != "hello there app#1 /tmp" {
		t.Errorf("the app saw %q, want its environment and cwd", b)
	}
	p, _ := running(mustStateDir(t, r), r.RID)

	// Killed behind Vigil's back: down, with the reason; start respawns it.
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(p, 10*time.Second)
	if st := wantStatus(t, d, r, sdk.StatusDown); !strings.Contains(strings.Join(st.Log, " "), "the process exited") {
		t.Errorf("down reason = %v, want the process exited", st.Log)
	}
	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start after the kill: %v", err)
	}
	p2, ok := running(mustStateDir(t, r), r.RID)
	if !ok || p2 == p {
		t.Fatalf("no new process after the restart (%v, %v)", p2, ok)
	}
	children := childrenOf(p2.pid)
	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusDown)
	for _, c := range children {
		if _, alive := startTime(c); alive {
			t.Errorf("the app's child pid %d outlived its stop", c)
		}
	}
}

func TestSimple_ExitingAtOnceFailsStartWithItsOutput(t *testing.T) {
	requireRoot(t)
	r := resource(t, TypeSimple, map[string]string{"start": `/bin/sh -c 'echo no config file >&2; exit 2'`})
	_, err := New(Config{}).Start(testCtx(t, 30*time.Second), r)
	if err == nil || !strings.Contains(err.Error(), "no config file") {
		t.Fatalf("Start = %v, want the app's own words", err)
	}
}

func mustStateDir(t *testing.T, r sdk.Resource) string {
	t.Helper()
	dir, err := stateDir(r)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func childrenOf(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		var c int
		fmt.Sscan(f, &c)
		out = append(out, c)
	}
	return out
}

// TestHelperPluginCrash is not a test: run by
// TestSimple_SurvivesPluginCrash in a child process, it plays a plugin that
// starts a simple app and is then SIGKILLed.
func TestHelperPluginCrash(t *testing.T) {
	runDir := os.Getenv("VIGIL_TEST_APP_RUNDIR")
	if runDir == "" {
		t.Skip("helper process only")
	}
	r := sdk.Resource{Service: sdk.Service{Name: "crash", RunDir: runDir}, RID: "app#1", Type: TypeSimple,
		Keywords: map[string]string{"start": "/bin/sleep 600"}}
	if _, err := New(Config{}).Start(context.Background(), r); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

func TestSimple_SurvivesPluginCrashAndIsFoundByPidAndStartTime(t *testing.T) {
	requireRoot(t)
	runDir := t.TempDir()
	r := sdk.Resource{Service: sdk.Service{Name: "crash", RunDir: runDir}, RID: "app#1", Type: TypeSimple,
		Keywords: map[string]string{"start": "/bin/sleep 600"}}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPluginCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_APP_RUNDIR="+runDir)
	out, err := cmd.CombinedOutput()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the helper plugin did not die by SIGKILL after starting the app: %v\n%s", err, out)
	}
	dir := filepath.Join(runDir, "app")
	p, ok := running(dir, r.RID)
	if !ok {
		t.Fatal("the app died with the plugin that started it")
	}
	t.Cleanup(func() { _ = syscall.Kill(p.pid, syscall.SIGKILL) })

	// A new Driver is what a restarted plugin process has: no memory.
	d := New(Config{})
	wantStatus(t, d, r, sdk.StatusUp)
	if log, err := d.Start(testCtx(t, 30*time.Second), r); err != nil || !strings.Contains(strings.Join(log, " "), fmt.Sprintf("pid %d", p.pid)) {
		t.Fatalf("Start on a restarted plugin = %v, %v; want the running pid %d found", log, err, p.pid)
	}

	// A pid file whose pid now names another process (same pid, another
	// start time) is not the app: never signalled.
	if err := writeProc(pidFile(dir, r.RID), proc{pid: p.pid, start: p.start + 1}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, r, sdk.StatusDown)
	if _, err := d.Stop(testCtx(t, 30*time.Second), r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !p.alive() {
		t.Fatal("Stop signalled a process the pid file names with another start time")
	}
	if err := writeProc(pidFile(dir, r.RID), p); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stop(testCtx(t, 30*time.Second), r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if p.alive() {
		t.Error("the app still runs after Stop")
	}
}

// nginxConf is an nginx configuration serving root on addr, with every
// file it writes under dir.
func nginxConf(dir, addr, root string) string {
	return fmt.Sprintf(`user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server { listen %[2]s; root %[3]s; }
}
`, dir, addr, root)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestOCF_NginxAgentServesAFile(t *testing.T) {
	requireAgent(t, "heartbeat:nginx")
	if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
		t.Skip("needs nginx (make deps)")
	}
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served by nginx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, addr, www)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := resource(t, TypeOCF, map[string]string{"agent": "heartbeat:nginx", "params": "configfile=" + conf})
	d := New(Config{})
	ctx := testCtx(t, 3*time.Minute)
	t.Cleanup(func() { _, _ = d.Stop(context.Background(), r) })
	wantStatus(t, d, r, sdk.StatusDown)
	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusUp)
	resp, err := http.Get("http://" + addr + "/index.html")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "served by nginx\n" {
		t.Errorf("GET = %q", body)
	}
	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStatus(t, d, r, sdk.StatusDown)
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Error("nginx still answers after Stop")
	}
}
