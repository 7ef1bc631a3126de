package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// What a takeover asks of a private daemon: a dockerd started on the data
// root a powered-off node left (its containers recorded as running, its
// endpoints, its containerd metadata), then the service's container
// recreated and started. BenchmarkPrivateDaemonTakeover times that against
// the same start on a data root whose daemon stopped cleanly, and prints
// ms per phase:
//
//	go test ./plugins/docker -run '^$' -bench PrivateDaemonTakeover -benchtime 5x
//
// VIGIL_BENCH_PROXY=docker publishes with dockerd's docker-proxy instead
// of the plugin's; VIGIL_BENCH_DOCKERD_ARGS adds dockerd flags and
// VIGIL_BENCH_DOCKERD runs another dockerd (a wrapper that traces it);
// VIGIL_BENCH_DOCKERD_DEBUG=1 runs the daemons with --debug and keeps
// their logs (the path is printed) to see where the time goes.

// registryRootfs is a tar of busybox and, when the host has it, Debian's
// docker-registry with its libraries (the lab's registry image); without
// it, busybox httpd plays the server on :5000.
func registryRootfs(tb testing.TB) (tarball []byte, cmd string) {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name, src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			tb.Fatal(err)
		}
	}
	dirs := []string{"bin", "dev", "etc", "proc", "sys", "tmp", "www", "registrydata", "etc/docker", "etc/docker/registry", "usr", "usr/bin", "lib", "lib64", "lib/x86_64-linux-gnu"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			tb.Fatal(err)
		}
	}
	add("bin/busybox", busyboxPath)
	for _, a := range []string{"sh", "httpd", "sleep", "env"} {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: time.Unix(0, 0)}); err != nil {
			tb.Fatal(err)
		}
	}
	cmd = `CMD ["/bin/sh","-c","mkdir -p /www/v2 && echo ok > /www/v2/index.html && exec httpd -f -p 5000 -h /www"]`
	if bin, err := exec.LookPath("docker-registry"); err == nil {
		out, _ := exec.Command("ldd", bin).Output()
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				real, err := filepath.EvalSymlinks(f)
				if err == nil {
					add(strings.TrimPrefix(f, "/"), real)
				}
			}
		}
		add("usr/bin/docker-registry", bin)
		cfg := []byte("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /registrydata\nhttp:\n  addr: :5000\n")
		if err := tw.WriteHeader(&tar.Header{Name: "etc/docker/registry/config.yml", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(cfg)), ModTime: time.Unix(0, 0)}); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(cfg); err != nil {
			tb.Fatal(err)
		}
		cmd = `CMD ["/usr/bin/docker-registry","serve","/etc/docker/registry/config.yml"]`
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), cmd
}

func importRegistry(tb testing.TB, c *client.Client) string {
	tb.Helper()
	tarball, cmd := registryRootfs(tb)
	ref := "vigiltest/registry:" + randSuffix(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(tarball), SourceName: "-"}, ref,
		client.ImageImportOptions{Changes: []string{cmd, "EXPOSE 5000"}})
	if err != nil {
		tb.Fatalf("import the registry image: %v", err)
	}
	_, _ = io.ReadAll(resp)
	resp.Close()
	return ref
}

// powerOff kills a private daemon as a power-off does: every process of
// it (dockerd, its containerd, the shims, the containers) stopped first so
// that none runs a cleanup, then SIGKILLed; then the mounts and network
// namespaces it held are dropped, as the dead node's kernel took them.
func powerOff(tb testing.TB, p daemonPaths, svc string, under ...string) {
	tb.Helper()
	pid := runningDaemonPid(p)
	if pid == 0 {
		tb.Fatal("power off: no daemon runs")
	}
	pids := daemonTree(pid, "vigil-"+svc)
	for _, q := range pids {
		_ = syscall.Kill(q, syscall.SIGSTOP)
	}
	for _, q := range pids {
		_ = syscall.Kill(q, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, q := range pids {
		for syscall.Kill(q, 0) == nil && time.Now().Before(deadline) {
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", q)); err == nil {
				if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
					break // a zombie of our own test process (the dockerd we spawned): dead
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, dir := range under {
		unmountUnder(tb, dir)
	}
}

// daemonTree is dockerd's pid, its descendants, and the containerd shims
// of its namespace with theirs.
func daemonTree(root int, namespace string) []int {
	parent := map[int]int{}
	var shims []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		pid, _ := strconv.Atoi(filepath.Base(dir))
		st, err := os.ReadFile(dir + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st[i+2:]))
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
		cmdline, _ := os.ReadFile(dir + "/cmdline")
		if bytes.Contains(cmdline, []byte("containerd-shim")) && bytes.Contains(cmdline, []byte("\x00"+namespace+"\x00")) {
			shims = append(shims, pid)
		}
	}
	in := map[int]bool{root: true}
	for _, s := range shims {
		in[s] = true
	}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if in[pp] && !in[pid] {
				in[pid] = true
				changed = true
			}
		}
	}
	out := make([]int, 0, len(in))
	for pid := range in {
		out = append(out, pid)
	}
	return out
}

// takeoverService is a private service whose data root outlives its run
// directory: each "node" gets a run directory of its own, as /run is.
type takeoverService struct {
	*privateService
	base, port, addr string
}

func newTakeoverService(tb testing.TB) *takeoverService {
	s := newPrivateService(tb, 1)
	ts := &takeoverService{privateService: s, base: filepath.Dir(s.runDir)}
	ts.addr = bridgeAddr(tb, s.bridge)
	ts.port = strconv.Itoa(freePort(tb))
	return ts
}

func (s *takeoverService) res(extraDaemonArgs string) sdk.Resource {
	r := s.resource("container#1")
	r.Service.Keywords[KwDockerDaemonArgs] += " --ip " + s.addr + extraDaemonArgs
	r.Keywords[KwRunArgs] = fmt.Sprintf("-v %s:/registrydata -e STORAGE_PATH=/registrydata -p %s:5000", filepath.Join(s.base, "registrydata"), s.port)
	return r
}

// node moves the service to a new run directory: a peer's, or the node's
// own after a reboot emptied /run.
func (s *takeoverService) node(tb testing.TB, name string) {
	s.runDir = filepath.Join(s.base, name)
	s.paths = pathsFor(s.runDir)
	if err := os.MkdirAll(s.runDir, 0o700); err != nil {
		tb.Fatal(err)
	}
}

func bridgeAddr(tb testing.TB, bridge string) string {
	tb.Helper()
	ifc, err := net.InterfaceByName(bridge)
	if err != nil {
		tb.Fatal(err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	tb.Fatalf("bridge %s has no IPv4 address", bridge)
	return ""
}

// waitAPI waits for GET /v2/ to answer on addr and counts the
// connections accepted and then closed without an answer on the way.
func waitAPI(ctx context.Context, addr string) (resets int, err error) {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		resp, err := hc.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return resets, nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			resets++
		}
		select {
		case <-ctx.Done():
			return resets, fmt.Errorf("no answer from %s: %w (last: %v)", addr, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func BenchmarkPrivateDaemonTakeover(b *testing.B) {
	requireDocker(b)
	debug := ""
	if os.Getenv("VIGIL_BENCH_DOCKERD_DEBUG") == "1" {
		debug = " --debug"
	}
	cfg := testConfig
	cfg.DockerdPath = os.Getenv("VIGIL_BENCH_DOCKERD") // a wrapper, to trace it
	if os.Getenv("VIGIL_BENCH_PROXY") == "docker" {
		cfg.ProxyPath = "" // dockerd's docker-proxy
	}
	extra := os.Getenv("VIGIL_BENCH_DOCKERD_ARGS")
	if extra != "" {
		extra = " " + extra
	}
	for _, killed := range []bool{false, true} {
		name := "clean"
		if killed {
			name = "killed"
		}
		b.Run(name, func(b *testing.B) {
			var ready, start, api, resets time.Duration
			var nresets int
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s := newTakeoverService(b)
				ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
				r := func() sdk.Resource { return s.res(debug + extra) }
				// The first node: load the image, run the container.
				s.node(b, "n1")
				d1 := New(cfg)
				if _, err := d1.ensureDaemon(ctx, r(), s.paths); err != nil {
					b.Fatal(err)
				}
				c1, _ := d1.clientFor(s.paths, true)
				s.image = importRegistry(b, c1)
				if _, err := d1.Start(ctx, r()); err != nil {
					b.Fatal(err)
				}
				if _, err := waitAPI(ctx, net.JoinHostPort(s.addr, s.port)); err != nil {
					b.Fatal(err)
				}
				if killed {
					powerOff(b, s.paths, s.name, s.base)
				} else if _, err := d1.Stop(ctx, r()); err != nil {
					b.Fatal(err)
				}
				// The peer.
				s.node(b, "n2")
				d2 := New(cfg)
				b.StartTimer()
				t0 := time.Now()
				if _, err := d2.ensureDaemon(ctx, r(), s.paths); err != nil {
					b.Fatalf("daemon on the %s data root: %v\n%s", name, err, logTail(s.paths, 30))
				}
				t1 := time.Now()
				go func() { _, _ = d2.Start(ctx, r()) }()
				nr, err := waitAPI(ctx, net.JoinHostPort(s.addr, s.port))
				t3 := time.Now()
				b.StopTimer()
				if err != nil {
					b.Fatalf("%v\n%s", err, logTail(s.paths, 30))
				}
				// The container's start as the driver saw it.
				c2, _ := d2.clientFor(s.paths, true)
				ins, err := c2.ContainerInspect(ctx, ContainerName(s.name, "container#1"), client.ContainerInspectOptions{})
				if err != nil {
					b.Fatal(err)
				}
				started, _ := time.Parse(time.RFC3339Nano, ins.Container.State.StartedAt)
				ready += t1.Sub(t0)
				start += started.Sub(t1)
				api += t3.Sub(t1)
				nresets += nr
				if nr > 0 {
					resets++
				}
				if debug != "" {
					keep := filepath.Join(os.TempDir(), fmt.Sprintf("dockerd-%s-%d.log", name, i))
					if out, err := exec.Command("cp", s.paths.log, keep).CombinedOutput(); err != nil {
						b.Logf("keep the log: %v %s", err, out)
					}
					fmt.Fprintf(os.Stderr, "%s run %d: ready %.0f ms, start %.0f ms, api %.0f ms, resets %d; log %s\n", name, i,
						ms(t1.Sub(t0)), ms(started.Sub(t1)), ms(t3.Sub(t1)), nr, keep)
				}
				if _, err := d2.Stop(ctx, r()); err != nil {
					b.Fatal(err)
				}
				cancel()
			}
			n := float64(b.N)
			b.ReportMetric(ms(ready)/n, "ready-ms")
			b.ReportMetric(ms(start)/n, "start-ms")
			b.ReportMetric(ms(api)/n, "api-ms")
			b.ReportMetric(float64(nresets)/n, "resets")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
