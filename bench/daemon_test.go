package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/plugin"
	"github.com/vigil-ha/vigil/core/plugin/plugintest"
)

const (
	benchServices  = 200
	benchResources = 7
)

// manyServices writes benchServices service files of benchResources
// app.test resources each (half of them up) and a plugin directory with
// the test plugin.
func manyServices(b *testing.B) (etc, plugins string) {
	base := b.TempDir()
	etc, plugins = filepath.Join(base, "etc"), plugintest.Dir(b)
	os.MkdirAll(etc, 0o700)
	for s := range benchServices {
		var conf strings.Builder
		conf.WriteString("[DEFAULT]\nnodes = n1\n")
		for r := 1; r <= benchResources; r++ {
			marker := filepath.Join(base, fmt.Sprintf("m-%d-%d", s, r))
			if r%2 == 0 {
				os.WriteFile(marker, nil, 0o600)
			}
			fmt.Fprintf(&conf, "\n[app#%d]\ntype = test\nfile = %s\n", r, marker)
		}
		os.WriteFile(filepath.Join(etc, fmt.Sprintf("svc%03d.conf", s)), []byte(conf.String()), 0o600)
	}
	return etc, plugins
}

// BenchmarkFullRefresh200x7 times one evaluation of every resource of 200
// services of 7 resources, as the daemon's status loop does it (concurrent
// plugin calls under the daemon's default bound): one op is a full refresh.
func BenchmarkFullRefresh200x7(b *testing.B) {
	etc, plugins := manyServices(b)
	host := plugin.New(plugin.Config{Dir: plugins, Logger: hclog.NewNullLogger()})
	defer host.Close()
	eng := action.New(action.Config{Plugins: host, RunDir: b.TempDir(), StateDir: b.TempDir(), Logger: hclog.NewNullLogger()})
	ctx := context.Background()
	names, _ := action.ListServices(etc)
	svcs := make([]*config.Service, 0, len(names))
	for _, n := range names {
		s, err := eng.Load(ctx, filepath.Join(etc, n+".conf"))
		if err != nil {
			b.Fatal(err)
		}
		svcs = append(svcs, s)
	}
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for _, s := range svcs {
			wg.Add(1)
			go func() { defer wg.Done(); eng.Status(ctx, s) }()
		}
		wg.Wait()
	}
}

// BenchmarkDaemonRSS200x7 runs vigild with 200 services of 7 resources,
// waits for every one to be evaluated, and reports the daemon's resident
// memory (and its plugin's) as custom metrics.
func BenchmarkDaemonRSS200x7(b *testing.B) {
	vigild := ""
	if bin := os.Getenv("VIGIL_BIN_DIR"); bin != "" {
		vigild = filepath.Join(bin, "vigild")
	} else {
		vigild = filepath.Join(b.TempDir(), "vigild")
		if out, err := exec.Command("go", "build", "-o", vigild, "../cmd/vigild").CombinedOutput(); err != nil {
			b.Fatalf("build vigild: %v\n%s", err, out)
		}
	}
	etc, plugins := manyServices(b)
	run, _ := os.MkdirTemp("", "vb")
	defer os.RemoveAll(run)
	for range b.N {
		cmd := exec.Command(vigild, "--config-dir", etc, "--plugin-dir", plugins, "--run-dir", run, "--state-dir", b.TempDir(), "--log-level", "error")
		cmd.Env = append(os.Environ(), "VIGIL_ALLOW_NONROOT=1")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var c *api.Client
		var err error
		for c == nil {
			if c, err = api.Dial(filepath.Join(run, api.SocketName)); err != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
		for {
			st, err := c.Status(context.Background())
			if err == nil {
				done := 0
				for _, inst := range st.Node[st.Local].Services {
					if !inst.Updated.IsZero() {
						done++
					}
				}
				if done == benchServices {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-to-first-full-status")
		time.Sleep(2 * time.Second) // settle
		b.ReportMetric(rssMiB(cmd.Process.Pid), "MiB-vigild-rss")
		for _, pid := range childPIDs(cmd.Process.Pid) {
			b.ReportMetric(rssMiB(pid), "MiB-plugin-rss")
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

func childPIDs(parent int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(parent) {
			pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
			out = append(out, pid)
		}
	}
	return out
}
