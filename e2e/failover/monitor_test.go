package failover

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// 5. The registry's container monitored with a restart budget of one:
// killed once, it is restarted in place on n1; killed again and again,
// faster than it can recover, the budget runs out and the registry fails
// over to n2 while busybox stays on n1. A lab of its own: the failed-over
// registry leaves n1's instance out of the candidates.
func TestFailover_MonitoredContainerRestartsThenFailsOver(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Client("n1").ConfigSet(ctx, labtest.Registry, []string{"container#1.monitor=true", "container#1.restart=1"}); err != nil {
		t.Fatalf("n1: set container#1.monitor=true container#1.restart=1: %v", err)
	}
	l.WaitFor("n1 to report container#1 monitored", 30*time.Second, func() (bool, string) {
		inst := l.Instance("n1", "n1", labtest.Registry)
		if inst == nil {
			return false, "no status"
		}
		for _, r := range inst.Status.Resources {
			if r.RID == "container#1" {
				return r.Monitor, "monitor=" + strconv.FormatBool(r.Monitor)
			}
		}
		return false, "no container#1"
	})
	l.requireOn("n1")

	name := labtest.Registry + ".container.1"
	before, err := l.containerState("n1", labtest.Registry, name)
	if err != nil {
		t.Fatal(err)
	}
	off1, off2 := l.LogSize("n1"), l.LogSize("n2")
	if err := l.killContainer("n1"); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	reRestart := regexp.MustCompile(`monitored resource down: restarting it in place: .*service=` + regexp.QuoteMeta(labtest.Registry))
	l.WaitFor("n1 to restart the killed registry container in place (a \"monitored resource down: restarting it in place\" line in n1's log; is vigild's monitor there?)",
		60*time.Second, func() (bool, string) {
			_, got := matching(l.LogSince("n1", off1), reRestart)
			return len(got) > 0, "no such line"
		})
	var after string
	l.WaitFor("the registry container running again on n1", 60*time.Second, func() (bool, string) {
		after, _ = l.containerState("n1", labtest.Registry, name)
		f := strings.Fields(after)
		return after != before && len(f) == 2 && f[0] != "0", "container " + strconv.Quote(after)
	})
	l.WaitAvail("n1", "n1", labtest.Registry, status.Up, 60*time.Second)
	t.Logf("container killed (was %s), running again on n1 %s later (%s)", before, time.Since(killedAt).Round(time.Millisecond), after)
	if got := l.Avail("n2", "n2", labtest.Registry); got == "up" {
		t.Fatalf("the registry is up on n2 after one kill: the restart budget was 1")
	}
	if _, got := matching(l.LogSince("n2", off2), reStarted(labtest.Registry)); len(got) > 0 {
		t.Fatalf("n2 started the registry after one kill:\n%s", strings.Join(got, "\n"))
	}

	// Past the budget: kill it whenever it runs until the registry is on n2.
	off1 = l.LogSize("n1")
	begin := time.Now()
	kills := 0
	l.WaitFor("the registry to fail over to n2 once its container is down past its restart budget", 2*time.Minute, func() (bool, string) {
		if l.Avail("n2", "n2", labtest.Registry) == "up" {
			return true, ""
		}
		if st, _ := l.containerState("n1", labtest.Registry, name); st != "" && !strings.HasPrefix(st, "0 ") {
			if err := l.killContainer("n1"); err == nil {
				kills++
			}
		}
		_, got := matching(l.LogSince("n1", off1), regexp.MustCompile(`down past its`))
		return false, strconv.Itoa(kills) + " kills; budget line on n1: " + strconv.FormatBool(len(got) > 0)
	})
	t.Logf("registry up on n2 %s after the repeated kills began (%d kills)", time.Since(begin).Round(time.Millisecond), kills)
	lines1 := l.LogSince("n1", off1)
	if _, got := matching(lines1, regexp.MustCompile(`down past its \d+ restart\(s\)`)); len(got) == 0 {
		t.Errorf("n1's log does not say the container went past its restart budget:\n%s", excerpt(lines1, regexp.MustCompile(`monitor`)))
	} else {
		t.Logf("n1: %s", got[0])
	}
	l.WaitAvail("n1", "n1", labtest.Registry, status.Down, 60*time.Second)
	if inst := l.Instance("n1", "n1", labtest.Registry); inst != nil {
		t.Logf("n1's registry instance: %s/%s", inst.Status.Avail, inst.State)
	}
	if _, got := matching(l.LogSince("n2", off2), reStarted(labtest.Registry)); len(got) != 1 {
		t.Errorf("n2 started the registry %d times, want once:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := l.Avail("n1", "n1", labtest.Busybox); got != "up" {
		t.Errorf("busybox is %q on n1: only the registry should have moved", got)
	}
}

// killContainer SIGKILLs the registry container's main process inside
// the node, as a crash would (not through docker).
func (l *lab) killContainer(node string) error {
	svcmgr := filepath.Join(l.Bin, "svcmgr")
	script := `set -e; for id in $(` + svcmgr + ` -s ` + labtest.Registry + ` docker ps -q); do ` +
		`pid=$(` + svcmgr + ` -s ` + labtest.Registry + ` docker inspect -f '{{.State.Pid}}' "$id"); ` +
		`[ "$pid" -gt 0 ] && kill -9 "$pid"; done`
	out, err := l.Exec(node, "sh", "-c", script)
	if err != nil {
		return fmt.Errorf("kill the registry container in %s: %w: %s", node, err, strings.TrimSpace(out))
	}
	return nil
}
