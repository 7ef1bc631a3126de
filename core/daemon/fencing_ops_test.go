package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/journal"
	"github.com/vigil-ha/vigil/core/plugin"
)

// fakeAgent is a fence agent speaking the fence-agents protocol (options
// on stdin, action=off|status): off records the power-off in
// $VIGIL_TEST_FENCE_DIR, status reads it back. The broken one fails every
// action, as an agent whose BMC does not answer.
const fakeAgent = `#!/bin/sh
action=$(grep '^action=' | cut -d= -f2)
state=$VIGIL_TEST_FENCE_DIR/off
case $action in
off) touch $state; echo "Success: Powered OFF"; exit 0 ;;
status) if [ -e $state ]; then echo "Status: OFF"; exit 2; fi; echo "Status: ON"; exit 0 ;;
esac
exit 1
`

const brokenAgent = "#!/bin/sh\necho 'ERROR: Unable to connect/login to fencing device' >&2\nexit 1\n"

// fenceAgentDaemon is a daemon whose node n2 has two fencing methods
// through the real fence_agent plugin: level 1 broken, level 2 working.
func fenceAgentDaemon(t *testing.T) (*Daemon, string) {
	t.Helper()
	plugins, agents, state := t.TempDir(), t.TempDir(), t.TempDir()
	os.Chmod(plugins, 0o755)
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "vigil-plugin-stonith-fence-agent"), "./plugins/stonith-fence-agent/cmd/vigil-plugin-stonith-fence-agent")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the fence agent plugin: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(agents, "fence_vigiltest"), []byte(fakeAgent), 0o755)
	os.WriteFile(filepath.Join(agents, "fence_vigilbroken"), []byte(brokenAgent), 0o755)
	t.Setenv("PATH", agents+":"+os.Getenv("PATH"))
	t.Setenv("VIGIL_TEST_FENCE_DIR", state)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &testLog{t}})
	d := testDaemon(t, "a")
	d.log = log
	sockets := t.TempDir()
	os.Chmod(sockets, 0o700)
	d.host = plugin.New(plugin.Config{Dir: plugins, Logger: log, SocketDir: sockets})
	t.Cleanup(func() { d.host.Close() })
	d.node.FenceLevels = map[string][]cluster.StonithConfig{"b": {
		{Node: "b", Name: "stonith#b", Level: 1, Type: "stonith.fence_agent", Keywords: map[string]string{"agent": "fence_vigilbroken"}},
		{Node: "b", Name: "stonith#pdu-b", Level: 2, Type: "stonith.fence_agent", Keywords: map[string]string{"agent": "fence_vigiltest"}},
	}}
	d.node.Stonith["b"] = d.node.FenceLevels["b"][0]
	d.metrics = newMetrics(d)
	var err error
	if d.ops, err = newOpsIn(d, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	return d, state
}

func TestFenceLevels_NextLevelTriedWhenTheFirstFails(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the plugin host runs plugins only from a root-owned directory: run as root")
	}
	d, state := fenceAgentDaemon(t)
	lines, err := d.fenceLevels(context.Background(), "b")
	if err != nil {
		t.Fatalf("fence with a working level 2: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "off")); err != nil {
		t.Error("level 2's agent never powered b off")
	}
	if !strings.Contains(strings.Join(lines, "\n"), "confirmed by stonith#pdu-b") {
		t.Errorf("lines %q do not say which level confirmed", lines)
	}
	for _, tc := range []struct {
		method, result string
		want           float64
	}{{"stonith#b", "failed", 1}, {"stonith#b", "ok", 0}, {"stonith#pdu-b", "ok", 1}, {"stonith#pdu-b", "failed", 0}} {
		var m dto.Metric
		d.metrics.fences.WithLabelValues("b", tc.method, tc.result).Write(&m)
		if got := m.GetCounter().GetValue(); got != tc.want {
			t.Errorf("vigil_fences_total{target=b,method=%s,result=%s} = %v, want %v", tc.method, tc.result, got, tc.want)
		}
	}
}

func TestCheckFencing_EveryLevelAskedAndAFailureJournaled(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the plugin host runs plugins only from a root-owned directory: run as root")
	}
	d, state := fenceAgentDaemon(t)
	d.node.Nodes = []string{"a", "b"}
	checks := d.checkFencing(context.Background(), "")
	if len(checks) != 2 || checks[0].OK || !checks[1].OK || checks[1].Power != "on" {
		t.Fatalf("checks %+v: want level 1 failed, level 2 ok with power on", checks)
	}
	if _, err := os.Stat(filepath.Join(state, "off")); err == nil {
		t.Error("a status check powered the node off")
	}
	var progress []string
	err := d.testFence(context.Background(), "b", func(s string) { progress = append(progress, s) })
	if err == nil || !strings.Contains(err.Error(), "stonith#b failed") {
		t.Errorf("fence test: %v, want it to name the failing method", err)
	}
	entries, _ := d.ops.journal.Read(journalFilter("fence_check"))
	if len(entries) != 1 || !strings.Contains(entries[0].Message, "stonith#b failed") {
		t.Errorf("journal %+v: want one fence_check failure (not one per check)", entries)
	}
}

func journalFilter(kind string) journal.Filter { return journal.Filter{Kinds: []string{kind}} }
