package app

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
	"golang.org/x/sys/unix"
)

// suite is this package's labs: beside the lab's own binaries, svcmgr (the
// validate test) and the app plugin.
var suite = &labtest.Suite{
	Name:  "app",
	Build: []string{"./cmd/svcmgr"},
	Need:  []string{"svcmgr", "vigil-plugin-app"},
	Poll:  50 * time.Millisecond,
}

func TestMain(m *testing.M) { suite.Main(m) }

// requireNginx skips unless the nodes can run heartbeat:nginx.
func requireNginx(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/usr/lib/ocf/resource.d/heartbeat/nginx", "/usr/sbin/nginx", "/bin/busybox"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s (make deps: resource-agents, nginx, busybox-static)", p)
		}
	}
}

// webConf is the nginx configuration kept on the shared filesystem:
// everything nginx writes goes to the node's own run directory, so that
// the node taking over never reads the dead node's pid file.
const webConf = `user root;
worker_processes 1;
pid /run/vigil/nginx-web.pid;
error_log /run/vigil/nginx-web.error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path /run/vigil/nginx-web.body;
	proxy_temp_path /run/vigil/nginx-web.proxy;
	fastcgi_temp_path /run/vigil/nginx-web.fastcgi;
	uwsgi_temp_path /run/vigil/nginx-web.uwsgi;
	scgi_temp_path /run/vigil/nginx-web.scgi;
	server { listen 8080; root %s/www; }
}
`

// webService is the nginx service: an address, the shared filesystem,
// nginx run by its OCF agent from a configuration on that filesystem
// (bench/failover.sh PROFILE=ocf writes the same service).
func webService(addr, dev, mnt string) string {
	return fmt.Sprintf(`[DEFAULT]
nodes = n1 n2
orchestrate = ha

[ip#1]
ipdev = eth0
ipname = %s
netmask = 24

[fs#1]
dev = %s
mnt = %s
type = ext4

[app#1]
type = ocf
agent = heartbeat:nginx
params = configfile=%s/nginx.conf
monitor = true
`, addr, dev, mnt, mnt)
}

// prepareWebDisk writes nginx's configuration and the served file on the
// shared disk, mounted here on the host for the moment (no node runs the
// service yet).
func prepareWebDisk(t *testing.T, dev, mnt, content string) {
	t.Helper()
	tmp := t.TempDir()
	if err := unix.Mount(dev, tmp, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on the host to fill it: %v", dev, err)
	}
	defer unix.Unmount(tmp, 0)
	files := map[string]string{
		"nginx.conf": fmt.Sprintf(webConf, mnt),
		// /v2/ is the path bench/failover.sh's regclient probes.
		"www/v2/index.html": content,
		"www/index.html":    content,
	}
	for name, text := range files {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fetch gets url from the lab's client namespace: this test binary, run
// there as TestHelperFetch (busybox's static wget crashes on this host,
// and curl is not everywhere).
func fetch(l *labtest.Lab, url string) (string, error) {
	ns := l.LabStatus().ClientNS
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperFetch$", "-test.count=1")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_FETCH_URL="+url)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("GET %s from the client: %v: %s", url, err, strings.TrimSpace(string(out)))
	}
	body, ok := strings.CutPrefix(string(out), "BODY:")
	if !ok {
		return "", fmt.Errorf("GET %s from the client: %s", url, strings.TrimSpace(string(out)))
	}
	body, _, _ = strings.Cut(body, ":END")
	return body, nil
}

// TestHelperFetch is not a test: run by fetch in the client namespace, it
// prints the body of one GET between BODY: and :END.
func TestHelperFetch(t *testing.T) {
	url := os.Getenv("VIGIL_TEST_FETCH_URL")
	if url == "" {
		t.Skip("helper process only")
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Println(resp.Status)
		os.Exit(1)
	}
	fmt.Printf("BODY:%s:END", b)
	os.Exit(0)
}

// resourceStatus is rid's status in svc's instance on node, as observer
// sees it.
func resourceStatus(l *labtest.Lab, observer, node, svc, rid string) string {
	inst := l.Instance(observer, node, svc)
	if inst == nil {
		return "?"
	}
	for _, r := range inst.Status.Resources {
		if r.RID == rid {
			return r.Status.String()
		}
	}
	return "?"
}

// appPid reads the simple app's pid file in node (the pid in the node's
// pid namespace), 0 when there is none.
func appPid(l *labtest.Lab, node, svc string) int {
	b, err := os.ReadFile(filepath.Join(l.NodeDir(node), "run", "services", svc, "app", "app-1.pid"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// TestApp_Lab runs both lab scenarios on one lab (a lab costs a minute):
// first the simple app, which ends on n2, then the nginx service, which
// starts on n1 and is failed over by n1's power-off.
func TestApp_Lab(t *testing.T) {
	requireNginx(t)
	l := suite.New(t, labtest.Options{Prefix: "app", Nodes: 2, NoSeed: true})
	l.WaitReady("n1", "n2", labtest.RejoinTimeout)
	l.WaitReady("n2", "n1", labtest.RejoinTimeout)

	t.Run("a simple app outlives a plugin restart; killed under monitor it is restarted in place, then failed over", func(t *testing.T) {
		l.T = t
		const svc = "sleeper"
		off := l.LogSize("n1")
		l.InstallService("n1", svc, "[DEFAULT]\nnodes = n1 n2\norchestrate = ha\n\n[app#1]\ntype = simple\nstart = /bin/sleep 100000\nmonitor = true\nrestart = 1\nrestart_delay = 0\n")
		// The start's end, not the first status read up: a kill while the
		// start still watches the process is a failed start, not a
		// monitor's business.
		reDone := regexp.MustCompile(`action done: .*service=` + svc + ` action=start`)
		l.WaitFor("n1 to finish starting "+svc, labtest.StartTimeout, func() (bool, string) {
			for _, line := range l.LogSince("n1", off) {
				if reDone.MatchString(line) {
					return true, ""
				}
			}
			return false, "no action done line in n1's log"
		})
		l.WaitAvail("n1", "n1", svc, status.Up, labtest.StartTimeout)
		first := appPid(l, "n1", svc)
		if first == 0 {
			t.Fatal("no pid file for the simple app on n1")
		}

		// The plugin killed: the app outlives it, and the restarted
		// plugin finds it again (same pid, nothing spawned, still up).
		out, err := l.Exec("n1", "/bin/busybox", "pidof", "vigil-plugin-app")
		plugin := strings.TrimSpace(out)
		if err != nil || plugin == "" || strings.Contains(plugin, " ") {
			t.Fatalf("the app plugin's pid on n1: %q, %v", out, err)
		}
		off = l.LogSize("n1")
		if out, err := l.Exec("n1", "/bin/busybox", "kill", "-9", plugin); err != nil {
			t.Fatalf("kill the app plugin on n1: %v\n%s", err, out)
		}
		rePluginBack := regexp.MustCompile(`plugin exited; restarting: .*vigil-plugin-app`)
		l.WaitFor("n1 to restart the app plugin", 60*time.Second, func() (bool, string) {
			for _, line := range l.LogSince("n1", off) {
				if rePluginBack.MatchString(line) {
					return true, ""
				}
			}
			return false, "no plugin restart line in n1's log"
		})
		l.WaitFor("the restarted plugin to read the app up", 60*time.Second, func() (bool, string) {
			now, _ := l.Exec("n1", "/bin/busybox", "pidof", "vigil-plugin-app")
			st := resourceStatus(l, "n1", "n1", svc, "app#1")
			return strings.TrimSpace(now) != plugin && st == "up", fmt.Sprintf("plugin pid %q, app#1 %s", strings.TrimSpace(now), st)
		})
		if now := appPid(l, "n1", svc); now != first {
			t.Fatalf("the app's pid went from %d to %d across a plugin restart", first, now)
		}
		for _, line := range l.LogSince("n1", off) {
			if strings.Contains(line, "simple app started") {
				t.Fatalf("the restarted plugin started the app again: %s", line)
			}
		}

		off = l.LogSize("n1")
		if out, err := l.Exec("n1", "/bin/busybox", "kill", "-9", strconv.Itoa(first)); err != nil {
			t.Fatalf("kill the app on n1: %v\n%s", err, out)
		}
		reRestart := regexp.MustCompile(`monitored resource down: restarting it in place: .*service=` + svc)
		l.WaitFor("n1 to restart the killed app in place", 60*time.Second, func() (bool, string) {
			for _, line := range l.LogSince("n1", off) {
				if reRestart.MatchString(line) {
					return true, ""
				}
			}
			return false, "no restart line in n1's log"
		})
		var second int
		l.WaitFor("the app running again on n1 with a new process", 60*time.Second, func() (bool, string) {
			second = appPid(l, "n1", svc)
			st := resourceStatus(l, "n1", "n1", svc, "app#1")
			return second != 0 && second != first && st == "up", fmt.Sprintf("pid %d, app#1 %s", second, st)
		})
		if a := l.Avail("n2", "n2", svc); a == "up" {
			t.Fatalf("%s up on n2 after a restart in place on n1", svc)
		}

		// The budget (restart = 1) is spent: the next kill fails it over.
		if out, err := l.Exec("n1", "/bin/busybox", "kill", "-9", strconv.Itoa(second)); err != nil {
			t.Fatalf("kill the app on n1 again: %v\n%s", err, out)
		}
		l.WaitAvail("n2", "n2", svc, status.Up, labtest.FailoverTimeout)
		l.WaitAvail("n1", "n1", svc, status.Down, labtest.FailoverTimeout)
		if appPid(l, "n2", svc) == 0 {
			t.Error("no pid file for the app on n2 after the failover")
		}
	})

	t.Run("nginx by its OCF agent serves a file from the shared filesystem across a power-off", func(t *testing.T) {
		l.T = t
		const svc = "web"
		addr := l.Subnet() + ".61"
		dev := l.LoopDev("registry-data") // unused without the seed's services
		// In the lab's directory, which its teardown removes.
		mnt := filepath.Join(filepath.Dir(filepath.Dir(l.NodeDir("n1"))), "web")
		content := "served from the shared disk of " + l.Name + "\n"
		prepareWebDisk(t, dev, mnt, content)
		l.InstallService("n1", svc, webService(addr, dev, mnt))
		l.WaitAvail("n1", "n1", svc, status.Up, labtest.StartTimeout)
		l.WaitAvail("n2", "n2", svc, status.Down, labtest.StartTimeout)
		url := "http://" + addr + ":8080/index.html"
		got, err := fetch(l, url)
		if err != nil || got != content {
			t.Fatalf("before the power-off: %q, %v; want %q", got, err, content)
		}

		l.MustLab("poweroff", "n1")
		l.WaitAvail("n2", "n2", svc, status.Up, labtest.FailoverTimeout)
		l.WaitFor("the client to fetch the file from n2", 60*time.Second, func() (bool, string) {
			got, err := fetch(l, url)
			if err != nil {
				return false, err.Error()
			}
			return got == content, fmt.Sprintf("%q", got)
		})
		if st := resourceStatus(l, "n2", "n2", svc, "app#1"); st != "up" {
			t.Errorf("app#1 on n2: %s, want up (the agent's monitor)", st)
		}
		l.MustLab("poweron", "n1")
		l.WaitReady("n2", "n1", labtest.RejoinTimeout)
		if a := l.Avail("n1", "n1", svc); a == "up" {
			t.Errorf("%s up on n1 after it rejoined: no failback expected", svc)
		}
	})
}
