package ha

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// suite is this package's labs: beside the lab's own binaries, the
// fence agent plugin, for the labs whose STONITH is fence_ipmilan.
var suite = &labtest.Suite{
	Name: "ha",
	Need: []string{"vigil-plugin-stonith-fence-agent"},
	Poll: 100 * time.Millisecond,
}

func TestMain(m *testing.M) { suite.Main(m) }

// lab is one vigil-lab lab.
type lab struct {
	*labtest.Lab
}

// newLab builds a lab at the scenarios' starting point (see
// labtest.Suite.New).
func newLab(t *testing.T, opts labtest.Options) *lab {
	t.Helper()
	return &lab{suite.New(t, opts)}
}

// mounted reports whether mnt is mounted in node's mount namespace (false
// when the node is off).
func (l *lab) mounted(node, mnt string) bool {
	l.T.Helper()
	pid := l.LabNode(node).InitPid
	if pid == 0 {
		return false
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mounts", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 1 && fields[1] == mnt {
			return true
		}
	}
	return false
}

// logLine is one line of a vigild log.
type logLine struct {
	at   time.Time
	text string
}

// logSince returns node's log lines after offset, with their timestamps.
func (l *lab) logSince(node string, offset int64) []logLine {
	var out []logLine
	for _, s := range l.LogSince(node, offset) {
		if s == "" {
			continue
		}
		ts, _, _ := strings.Cut(s, " ")
		at, _ := time.Parse(time.RFC3339Nano, ts)
		out = append(out, logLine{at: at, text: s})
	}
	return out
}

// find returns the index of the first line matching re, or -1.
func find(lines []logLine, re *regexp.Regexp) int {
	for i, ln := range lines {
		if re.MatchString(ln.text) {
			return i
		}
	}
	return -1
}

// count counts the lines matching re.
func count(lines []logLine, re *regexp.Regexp) int {
	n := 0
	for _, ln := range lines {
		if re.MatchString(ln.text) {
			n++
		}
	}
	return n
}

// secsAfter is the time from t0 to line i's timestamp, for t.Logf.
func secsAfter(lines []logLine, i int, t0 time.Time) string {
	if i < 0 || lines[i].at.IsZero() {
		return "?"
	}
	return fmt.Sprintf("%.2fs", lines[i].at.Sub(t0).Seconds())
}

// Log patterns the scenarios look for.
var (
	reFenced = func(node string) *regexp.Regexp {
		return regexp.MustCompile(`node fenced: power-off confirmed.*target=` + node + `\b`)
	}
	reFenceFailed = func(node string) *regexp.Regexp {
		return regexp.MustCompile(`fencing failed: no takeover until it succeeds.*target=` + node + `\b`)
	}
	reStarted = func(svc string) *regexp.Regexp {
		return regexp.MustCompile(`action done:.*service=` + regexp.QuoteMeta(svc) + ` action=start`)
	}
	rePeerLost   = regexp.MustCompile(`peer lost`)
	reQuorumLost = regexp.MustCompile(`quorum lost`)
)

func regexpStopped(svc string) *regexp.Regexp {
	return regexp.MustCompile(`action done:.*service=` + regexp.QuoteMeta(svc) + ` action=stop`)
}

func regexpLiteral(s string) *regexp.Regexp { return regexp.MustCompile(regexp.QuoteMeta(s)) }

func itoa(i int) string { return strconv.Itoa(i) }

// waitStarted waits until both seed services are up on node, in its own
// view, and their starts are in its log after offset: the status can read
// up a moment before the start action logs its end.
func (l *lab) waitStarted(node string, offset int64) {
	l.T.Helper()
	for _, svc := range labtest.SeedServices {
		l.WaitAvail(node, node, svc, status.Up, labtest.FailoverTimeout)
	}
	l.WaitFor("both starts in "+node+"'s log", 60*time.Second, func() (bool, string) {
		lines := l.logSince(node, offset)
		for _, svc := range labtest.SeedServices {
			if find(lines, reStarted(svc)) < 0 {
				return false, "no \"action done\" start line for " + svc
			}
		}
		return true, ""
	})
}

// with is the same lab for a subtest: its failures are the subtest's.
func (l *lab) with(t *testing.T) *lab {
	c := *l.Lab
	c.T = t
	return &lab{&c}
}
