package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// These tests drive real docker daemons: the system one, and private ones
// they start on a bridge of their own with --iptables=false so as not to
// fight the system daemon over docker0. They skip when the host cannot run
// them.

const busyboxPath = "/bin/busybox" // Debian's busybox-static

// requireDocker skips the test unless it runs as root on a host with
// docker, dockerd, busybox-static and an answering system daemon, whose
// client it returns.
func requireDocker(t testing.TB) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("docker tests skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("docker tests need root")
	}
	for _, bin := range []string{"docker", "dockerd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("docker tests need %s in PATH", bin)
		}
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		t.Skipf("docker tests need %s (apt-get install busybox-static)", busyboxPath)
	}
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Skipf("docker client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Skipf("no system docker daemon answers (start one: dockerd > /tmp/dockerd.log 2>&1 &): %v", err)
	}
	return c
}

func randSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// busyboxRootfs is a tar of a root with busybox and the applets the tests
// use.
func busyboxRootfs(t testing.TB) []byte {
	t.Helper()
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, body []byte) {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "data"} {
		write(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	write(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))}, bin)
	for _, applet := range []string{"sh", "date", "sleep", "ls", "cat", "echo", "env", "id", "true", "false", "ps", "hostname"} {
		write(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// importBusybox imports the busybox root into the daemon of c as
// vigiltest/busybox:<random>, with the seed's date loop as its command.
func importBusybox(t testing.TB, c *client.Client, removeOnCleanup bool) string {
	t.Helper()
	ref := "vigiltest/busybox:" + randSuffix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(busyboxRootfs(t)), SourceName: "-"}, ref,
		client.ImageImportOptions{Changes: []string{`CMD ["/bin/sh","-c","trap 'exit 0' TERM; while true; do date; sleep 1 & wait $!; done"]`}})
	if err != nil {
		t.Fatalf("import busybox image: %v", err)
	}
	out, _ := io.ReadAll(resp)
	resp.Close()
	if _, err := c.ImageInspect(ctx, ref); err != nil {
		t.Fatalf("import busybox image: %v (daemon said %s)", err, out)
	}
	if removeOnCleanup {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil {
				t.Logf("remove image %s: %v", ref, err)
			}
		})
	}
	return ref
}

// removeContainerOnCleanup removes a container by name when the test ends,
// whatever happened.
func removeContainerOnCleanup(t *testing.T, c *client.Client, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			t.Logf("remove container %s: %v", name, err)
		}
	})
}

func testResource(svc, rid, image string) sdk.Resource {
	return sdk.Resource{
		Service:  sdk.Service{Name: svc, Keywords: map[string]string{}},
		RID:      rid,
		Type:     TypeName,
		Keywords: map[string]string{KwRunImage: image},
		Siblings: map[string]map[string]string{rid: {KwRunImage: image}},
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func wantStatus(t *testing.T, got sdk.ResourceStatus, want sdk.Status) {
	t.Helper()
	if got.Status != want {
		t.Fatalf("status = %v (label %q, log %q), want %v", got.Status, got.Label, got.Log, want)
	}
}

func inspect(t *testing.T, c *client.Client, name string) client.ContainerInspectResult {
	t.Helper()
	res, err := c.ContainerInspect(testCtx(t, 10*time.Second), name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return res
}

func TestStartStatusStop_SystemDaemon(t *testing.T) {
	c := requireDocker(t)
	img := importBusybox(t, c, true)
	svc := "vigiltest-" + randSuffix(t)
	r := testResource(svc, "container#1", img)
	name := ContainerName(svc, "container#1")
	removeContainerOnCleanup(t, c, name)
	d := New(testConfig)
	ctx := testCtx(t, 60*time.Second)

	st := d.Status(ctx, r)
	wantStatus(t, st, sdk.StatusDown)
	if st.Label != img {
		t.Errorf("down label = %q, want the run_image %q", st.Label, img)
	}

	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	first := inspect(t, c, name).Container
	st = d.Status(ctx, r)
	wantStatus(t, st, sdk.StatusUp)
	if want := first.ID[:12] + "@" + img; st.Label != want {
		t.Errorf("up label = %q, want %q", st.Label, want)
	}
	if first.Config.Labels[LabelService] != svc || first.Config.Labels[LabelRID] != "container#1" {
		t.Errorf("vigil labels missing: %v", first.Config.Labels)
	}

	log, err := d.Start(ctx, r)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if again := inspect(t, c, name).Container; again.ID != first.ID {
		t.Errorf("second Start replaced the running container (%s -> %s)", first.ID[:12], again.ID[:12])
	}
	if !slices.ContainsFunc(log, func(l string) bool { return strings.Contains(l, "already running") }) {
		t.Errorf("second Start log = %q, want it to say already running", log)
	}

	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := c.ContainerInspect(ctx, name, client.ContainerInspectOptions{}); !isNotFound(err) {
		t.Errorf("container still exists after Stop (inspect err %v)", err)
	}
	wantStatus(t, d.Status(ctx, r), sdk.StatusDown)
	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStart_ReplacesStoppedContainer(t *testing.T) {
	c := requireDocker(t)
	img := importBusybox(t, c, true)
	svc := "vigiltest-" + randSuffix(t)
	r := testResource(svc, "container#2", img)
	name := ContainerName(svc, "container#2")
	removeContainerOnCleanup(t, c, name)
	d := New(testConfig)
	ctx := testCtx(t, 60*time.Second)

	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	first := inspect(t, c, name).Container.ID
	zero := 0
	if _, err := c.ContainerStop(ctx, name, client.ContainerStopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	st := d.Status(ctx, r)
	wantStatus(t, st, sdk.StatusDown)
	if len(st.Log) != 1 || !strings.Contains(st.Log[0], "exited") {
		t.Errorf("status log of a stopped container = %q, want it to say exited", st.Log)
	}

	r.Keywords[KwRunCommand] = "sleep 300" // a config change the new container must pick up
	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start of a stopped container: %v", err)
	}
	ctr := inspect(t, c, name).Container
	if ctr.ID == first {
		t.Errorf("Start restarted the stopped container instead of recreating it")
	}
	if !slices.Equal(ctr.Config.Cmd, []string{"sleep", "300"}) {
		t.Errorf("Cmd = %q, want the new run_command", ctr.Config.Cmd)
	}
	wantStatus(t, d.Status(ctx, r), sdk.StatusUp)
	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestRunArgs_AppliedToContainer(t *testing.T) {
	c := requireDocker(t)
	img := importBusybox(t, c, true)
	svc := "vigiltest-" + randSuffix(t)
	r := testResource(svc, "container#1", img)
	name := ContainerName(svc, "container#1")
	removeContainerOnCleanup(t, c, name)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "hello"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostPort := freePort(t)
	r.Keywords[KwRunArgs] = fmt.Sprintf(`-v %s:/data:ro -e FOO=bar -e "MSG=hello world" -p 127.0.0.1:%d:8080 --label team=ops --stop-timeout 2`, hostDir, hostPort)
	r.Keywords[KwRunCommand] = `sh -c 'cat /data/hello; sleep 300'`
	d := New(testConfig)
	ctx := testCtx(t, 60*time.Second)

	if _, err := d.Start(ctx, r); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctr := inspect(t, c, name).Container
	if !slices.Contains(ctr.HostConfig.Binds, hostDir+":/data:ro") {
		t.Errorf("binds = %q", ctr.HostConfig.Binds)
	}
	for _, e := range []string{"FOO=bar", "MSG=hello world"} {
		if !slices.Contains(ctr.Config.Env, e) {
			t.Errorf("env %q lacks %q", ctr.Config.Env, e)
		}
	}
	bs := ctr.HostConfig.PortBindings[network.MustParsePort("8080/tcp")]
	if len(bs) != 1 || bs[0].HostIP.String() != "127.0.0.1" || bs[0].HostPort != strconv.Itoa(hostPort) {
		t.Errorf("port bindings of 8080/tcp = %+v", bs)
	}
	if ctr.Config.Labels["team"] != "ops" || ctr.Config.Labels[LabelService] != svc {
		t.Errorf("labels = %v", ctr.Config.Labels)
	}
	if !slices.Equal(ctr.Config.Cmd, []string{"sh", "-c", "cat /data/hello; sleep 300"}) {
		t.Errorf("cmd = %q", ctr.Config.Cmd)
	}
	wantStatus(t, d.Status(ctx, r), sdk.StatusUp)
	start := time.Now()
	if _, err := d.Stop(ctx, r); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("Stop took %v: --stop-timeout 2 was not honoured", el)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// privateService is a service with a private daemon, in a short temp dir
// (unix socket paths are limited to 107 bytes).
type privateService struct {
	name, runDir, dataDir, image string
	bridge                       string
	paths                        daemonPaths
	siblings                     map[string]map[string]string
}

func newPrivateService(t testing.TB, containers int) *privateService {
	t.Helper()
	bridge := testBridge(t) // first: its cleanup runs after the daemon's
	base, err := os.MkdirTemp("", "vgd")
	if err != nil {
		t.Fatal(err)
	}
	s := &privateService{
		name:     "vt" + randSuffix(t),
		bridge:   bridge,
		runDir:   filepath.Join(base, "run"),
		dataDir:  filepath.Join(base, "data"),
		siblings: map[string]map[string]string{},
	}
	s.paths = pathsFor(s.runDir)
	if err := os.MkdirAll(s.runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Registered early, so it runs late: kill the daemon this test
	// started (by the pid in its pid file, checked against its command
	// line), then undo its mounts and remove everything.
	t.Cleanup(func() {
		if pid := runningDaemonPid(s.paths); pid != 0 {
			t.Logf("cleanup: stopping private dockerd pid %d", pid)
			if err := terminate(context.Background(), pid, s.paths, 20*time.Second); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		unmountUnder(t, base)
		if err := os.RemoveAll(base); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	for i := 1; i <= containers; i++ {
		s.siblings[fmt.Sprintf("container#%d", i)] = map[string]string{}
	}
	return s
}

// testBridge creates a bridge of the test's own for a private daemon.
// Not --bridge=none: dockerd 20.10 then deletes docker0, the system
// daemon's bridge, at start-up.
func testBridge(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("private daemon tests need ip (iproute2)")
	}
	b := make([]byte, 1)
	for used := true; used; {
		// A /24 no interface of the host holds: two bridges on one subnet
		// (a benchmark's iterations, another test's) make routes ambiguous.
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		used = subnetInUse(fmt.Sprintf("198.18.%d.0/24", b[0]))
	}
	name := "vgb" + randSuffix(t)
	for _, args := range [][]string{
		{"link", "add", name, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("198.18.%d.1/24", b[0]), "dev", name},
		{"link", "set", name, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			exec.Command("ip", "link", "del", name).Run()
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
			t.Logf("cleanup: delete bridge %s: %v: %s", name, err, out)
		}
	})
	return name
}

// subnetInUse tells whether an address of the host's is in cidr.
func subnetInUse(cidr string) bool {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && n.Contains(ip.IP) {
			return true
		}
	}
	return false
}

func (s *privateService) resource(rid string) sdk.Resource {
	return sdk.Resource{
		Service: sdk.Service{Name: s.name, RunDir: s.runDir, Keywords: map[string]string{
			KwDockerDataDir:    s.dataDir,
			KwDockerDaemonArgs: "--bridge=" + s.bridge + " --iptables=false",
		}},
		RID:      rid,
		Type:     TypeName,
		Keywords: map[string]string{KwRunImage: s.image},
		Siblings: s.siblings,
	}
}

// unmountUnder detaches whatever a killed dockerd left mounted under dir.
func unmountUnder(t testing.TB, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mps = append(mps, fields[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			t.Logf("cleanup: unmount %s: %v", mp, err)
		}
	}
}

// daemonsWithPidFile counts the dockerd processes started with pidFile.
func daemonsWithPidFile(t *testing.T, p daemonPaths) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && isOurDaemon(pid, p) {
			n++
		}
	}
	return n
}

func TestPrivateDaemon_Lifecycle(t *testing.T) {
	requireDocker(t)
	s := newPrivateService(t, 4)
	ctx := testCtx(t, 110*time.Second)
	rids := []string{"container#1", "container#2", "container#3", "container#4"}

	// Load the image into the service's data root: start its daemon, import,
	// stop it. The data root keeps the image for the daemon Start spawns.
	{
		seeder := New(testConfig)
		r := s.resource(rids[0])
		if _, err := seeder.ensureDaemon(ctx, r, s.paths); err != nil {
			t.Fatalf("seed daemon: %v", err)
		}
		pc, err := seeder.clientFor(s.paths, true)
		if err != nil {
			t.Fatal(err)
		}
		s.image = importBusybox(t, pc, false)
		if _, err := seeder.stopDaemonIfIdle(ctx, r, s.paths); err != nil {
			t.Fatalf("stop the seed daemon: %v", err)
		}
		if pid := runningDaemonPid(s.paths); pid != 0 {
			t.Fatalf("seed daemon pid %d still runs", pid)
		}
	}

	d := New(testConfig)
	t.Run("status while the daemon is down", func(t *testing.T) {
		st := d.Status(ctx, s.resource(rids[0]))
		wantStatus(t, st, sdk.StatusDown)
		if !slices.Equal(st.Log, []string{MsgDaemonNotRunning}) || st.Label != s.image {
			t.Errorf("status = %+v, want log %q and label %q", st, MsgDaemonNotRunning, s.image)
		}
	})

	t.Run("parallel starts spawn one daemon", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, len(rids))
		for i, rid := range rids {
			wg.Go(func() { _, errs[i] = d.Start(ctx, s.resource(rid)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Start %s: %v", rids[i], err)
			}
		}
		if n := d.spawned.Load(); n != 1 {
			t.Errorf("%d dockerd spawned, want 1", n)
		}
		if n := daemonsWithPidFile(t, s.paths); n != 1 {
			t.Errorf("%d dockerd running for the service, want 1", n)
		}
		for _, rid := range rids {
			st := d.Status(ctx, s.resource(rid))
			wantStatus(t, st, sdk.StatusUp)
			if !strings.HasSuffix(st.Label, "@"+s.image) {
				t.Errorf("%s label = %q", rid, st.Label)
			}
		}
	})
	pid := runningDaemonPid(s.paths)
	if pid == 0 {
		t.Fatal("no private daemon runs after the starts")
	}

	// A new Driver is what a restarted plugin process has: no memory.
	d2 := New(testConfig)
	t.Run("a restarted plugin finds the daemon and containers", func(t *testing.T) {
		for _, rid := range rids {
			wantStatus(t, d2.Status(ctx, s.resource(rid)), sdk.StatusUp)
		}
		if _, err := d2.Start(ctx, s.resource(rids[0])); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if n := d2.spawned.Load(); n != 0 || runningDaemonPid(s.paths) != pid {
			t.Errorf("Start spawned %d daemons (pid %d -> %d), want the running one reused", n, pid, runningDaemonPid(s.paths))
		}
	})

	t.Run("the daemon outlives all but the last container", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i, rid := range rids[:3] {
			wg.Go(func() { _, errs[i] = d2.Stop(ctx, s.resource(rid)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Stop %s: %v", rids[i], err)
			}
		}
		if got := runningDaemonPid(s.paths); got != pid {
			t.Fatalf("daemon pid %d -> %d after stopping 3 of 4 containers, want it still running", pid, got)
		}
		wantStatus(t, d2.Status(ctx, s.resource(rids[0])), sdk.StatusDown)
		wantStatus(t, d2.Status(ctx, s.resource(rids[3])), sdk.StatusUp)
	})

	t.Run("stopping the last container stops the daemon", func(t *testing.T) {
		log, err := d2.Stop(ctx, s.resource(rids[3]))
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if daemonsWithPidFile(t, s.paths) != 0 {
			t.Fatalf("dockerd still runs after the last container stopped (log %q)", log)
		}
		for _, f := range []string{s.paths.sock, s.paths.pid} {
			if _, err := os.Stat(f); !os.IsNotExist(err) {
				t.Errorf("%s left behind (stat err %v)", f, err)
			}
		}
		st := d2.Status(ctx, s.resource(rids[3]))
		if st.Status != sdk.StatusDown || !slices.Equal(st.Log, []string{MsgDaemonNotRunning}) {
			t.Errorf("status after stop = %+v", st)
		}
		if _, err := d2.Stop(ctx, s.resource(rids[3])); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})
}

func TestPrivateDaemon_StartFailureShowsLog(t *testing.T) {
	requireDocker(t)
	s := newPrivateService(t, 1)
	s.image = "vigiltest/none:" + randSuffix(t)
	r := s.resource("container#1")
	r.Service.Keywords[KwDockerDaemonArgs] += " --no-such-dockerd-flag"
	d := New(Config{DaemonStartTimeout: 20 * time.Second})
	_, err := d.Start(testCtx(t, 30*time.Second), r)
	if err == nil {
		t.Fatal("Start succeeded with a bad dockerd flag")
	}
	if !strings.Contains(err.Error(), "no-such-dockerd-flag") || !strings.Contains(err.Error(), s.paths.log) {
		t.Errorf("error = %v, want the tail of dockerd.log naming the bad flag", err)
	}
	if testing.Verbose() {
		t.Logf("the operator sees: %v", err)
	}
	if runningDaemonPid(s.paths) != 0 {
		t.Error("a failed daemon was left running")
	}
}

// testConfig stops containers fast: busybox sh as pid 1 ignores SIGTERM,
// so each stop would otherwise wait out the 10s default.
var testConfig = Config{StopTimeout: time.Second}

// TestHelperPluginCrash is not a test: run by
// TestPrivateDaemon_SurvivesPluginCrash in a child process, it plays a
// plugin that starts a service's daemon and is then SIGKILLed.
func TestHelperPluginCrash(t *testing.T) {
	runDir := os.Getenv("VIGIL_TEST_CRASH_RUNDIR")
	if runDir == "" {
		t.Skip("helper process only")
	}
	s := &privateService{name: os.Getenv("VIGIL_TEST_CRASH_SVC"), runDir: runDir, dataDir: os.Getenv("VIGIL_TEST_CRASH_DATADIR"),
		bridge: os.Getenv("VIGIL_TEST_CRASH_BRIDGE"), paths: pathsFor(runDir)}
	if _, err := New(testConfig).ensureDaemon(context.Background(), s.resource("container#1"), s.paths); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

func TestPrivateDaemon_SurvivesPluginCrash(t *testing.T) {
	requireDocker(t)
	s := newPrivateService(t, 1)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPluginCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_CRASH_RUNDIR="+s.runDir, "VIGIL_TEST_CRASH_SVC="+s.name, "VIGIL_TEST_CRASH_DATADIR="+s.dataDir, "VIGIL_TEST_CRASH_BRIDGE="+s.bridge)
	out, err := cmd.CombinedOutput()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper plugin did not die by SIGKILL after starting the daemon: %v\n%s", err, out)
	}
	pid := runningDaemonPid(s.paths)
	if pid == 0 {
		t.Fatalf("the private daemon died with the plugin that started it\n%s", logTail(s.paths, 10))
	}
	d := New(testConfig)
	ctx := testCtx(t, 60*time.Second)
	if _, err := d.ensureDaemon(ctx, s.resource("container#1"), s.paths); err != nil {
		t.Fatalf("a new plugin cannot use the daemon: %v", err)
	}
	if n := d.spawned.Load(); n != 0 || runningDaemonPid(s.paths) != pid {
		t.Fatalf("a new plugin spawned %d daemons instead of reusing pid %d", n, pid)
	}
	if _, err := d.Stop(ctx, s.resource("container#1")); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if runningDaemonPid(s.paths) != 0 {
		t.Errorf("daemon pid %d still runs after the service's only container stopped", pid)
	}
}
