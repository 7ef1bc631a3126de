package arbitrator

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/core/status"
	"github.com/vigil-ha/vigil/e2e/labtest"
)

// suite is this package's labs: beside the lab's own binaries, the
// arbitrator.
var suite = &labtest.Suite{
	Name:  "arbitrator",
	Build: []string{"./cmd/vigil-arbitrator"},
	Need:  []string{"vigil-arbitrator"},
	Poll:  100 * time.Millisecond,
}

func TestMain(m *testing.M) { suite.Main(m) }

// arbitratorPort is where the lab's arbitrator listens, in the client
// namespace (a namespace of the lab's own: no other lab can clash).
const arbitratorPort = 7400

// lease is the arbitrator's: a side's takeover waits up to this long after
// the split, for the grant both nodes held together to expire.
const lease = 3 * time.Second

// linesSince returns the lines of a file after offset.
func linesSince(path string, off int64) []string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b[off:])), "\n")
}

func size(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func matching(lines []string, re *regexp.Regexp) []string {
	var out []string
	for _, s := range lines {
		if re.MatchString(s) {
			out = append(out, s)
		}
	}
	return out
}

var (
	reRegained = regexp.MustCompile(`quorum regained`)
	reLost     = regexp.MustCompile(`quorum lost`)
	rePeerLost = regexp.MustCompile(`peer lost`)
	// reActs are the lines of a node that orchestrates: a start claimed,
	// started or ordered, a fence begun or done.
	reActs   = regexp.MustCompile(`claiming the start|orchestrated start|action done:.*action=start|node fenced|waiting the fence delay|fencing failed`)
	reFenced = func(node string) *regexp.Regexp {
		return regexp.MustCompile(`node fenced: power-off confirmed.*target=` + node + `\b`)
	}
	reGrantedFor = func(set string) *regexp.Regexp {
		return regexp.MustCompile(`arbitrator vote granted.*set="?` + regexp.QuoteMeta(set) + `"?\s*$`)
	}
)

// Two nodes and an arbitrator, the nodes' heartbeats to each other cut
// (network by routes, so both still reach the arbitrator; the disk on
// n2): both see their peer lost, both lose quorum, and the arbitrator's
// vote goes to one side only. That side regains quorum, fences the other
// and runs the services; the other never regains quorum and starts or
// fences nothing.
func TestSplit_TwoNodesAndArbitrator_OnlyOneSideHasQuorum(t *testing.T) {
	l := suite.New(t, labtest.Options{Prefix: "ar", Nodes: 2, ArbitratorPort: arbitratorPort})
	arbLog := l.StartArbitrator(arbitratorPort, lease)
	st := l.State()

	l.WaitFor("both nodes granted the arbitrator's vote for n1,n2", 60*time.Second, func() (bool, string) {
		for _, n := range l.Nodes {
			if len(matching(l.LogSince(n, 0), reGrantedFor("n1,n2"))) == 0 {
				return false, n + " has no grant for n1,n2 in its log"
			}
		}
		return true, ""
	})
	off := map[string]int64{}
	for _, n := range l.Nodes {
		off[n] = l.LogSize(n)
	}
	arbOff := size(arbLog)

	// The split: each node drops its packets to the other (the
	// arbitrator, the BMCs and the service addresses stay reachable), and
	// n2 loses the heartbeat disk.
	for a, b := range map[string]int{"n1": 2, "n2": 1} {
		if out, err := exec.Command("ip", "-n", st.NodeNS(a), "route", "add", "blackhole", st.NodeAddr(b)+"/32").CombinedOutput(); err != nil {
			t.Fatalf("%s: blackhole n%d: %v\n%s", a, b, err, out)
		}
	}
	l.MustLab("cut", "n2", "--link", "disk")
	t0 := time.Now()
	t.Logf("split at %s: n1 and n2 no longer hear each other, both reach the arbitrator", t0.Format(time.RFC3339Nano))

	other := map[string]string{"n1": "n2", "n2": "n1"}
	winner := ""
	l.WaitFor("one side to regain quorum", labtest.FailoverTimeout, func() (bool, string) {
		var got []string
		for _, n := range l.Nodes {
			if len(matching(l.LogSince(n, off[n]), reRegained)) > 0 {
				got = append(got, n)
			}
		}
		switch len(got) {
		case 0:
			return false, "neither side regained quorum"
		case 1:
			winner = got[0]
			return true, ""
		}
		t.Fatalf("both sides regained quorum after the split: %v", got)
		return false, ""
	})
	loser := other[winner]
	t.Logf("%s regained quorum %s after the split (arbitrator lease %s)", winner, time.Since(t0).Round(time.Millisecond), lease)

	// The winner fences the loser and runs both services.
	l.WaitFor(winner+" to fence "+loser, labtest.FailoverTimeout, func() (bool, string) {
		return len(matching(l.LogSince(winner, off[winner]), reFenced(loser))) > 0, "no \"node fenced\" line for " + loser
	})
	for _, svc := range labtest.SeedServices {
		l.WaitAvail(winner, winner, svc, status.Up, labtest.FailoverTimeout)
	}

	// What each side did since the split.
	win, lose := l.LogSince(winner, off[winner]), l.LogSince(loser, off[loser])
	for n, lines := range map[string][]string{winner: win, loser: lose} {
		if len(matching(lines, rePeerLost)) == 0 {
			t.Errorf("%s never saw its peer lost: the split did not happen as meant", n)
		}
		if len(matching(lines, reLost)) == 0 {
			t.Errorf("%s never lost quorum: the grant both held for n1,n2 must stop counting at the split", n)
		}
	}
	if r := matching(lose, reRegained); len(r) > 0 {
		t.Errorf("%s, the side without the vote, regained quorum: %v", loser, r)
	}
	if acts := matching(lose, reActs); len(acts) > 0 {
		t.Errorf("%s, the side without quorum, orchestrated:\n%s", loser, strings.Join(acts, "\n"))
	}
	if g := matching(lose, reGrantedFor(loser)); len(g) > 0 {
		t.Errorf("%s was granted the vote for itself alone: %v", loser, g)
	}
	if len(matching(win, reGrantedFor(winner))) == 0 {
		t.Errorf("%s regained quorum with no grant for itself alone in its log", winner)
	}

	// The arbitrator's side of it: after the split it granted a vote for a
	// single-node set to the winner only.
	arb := linesSince(arbLog, arbOff)
	for _, n := range l.Nodes {
		g := matching(arb, regexp.MustCompile(`vote granted: node=`+n+` set="?`+n+`"? `))
		switch {
		case n == winner && len(g) == 0:
			t.Errorf("the arbitrator's log has no grant to %s for itself", n)
		case n == loser && len(g) > 0:
			t.Errorf("the arbitrator granted the loser %s: %v", n, g)
		}
	}
	if d := matching(arb, regexp.MustCompile(`vote denied: node=`+loser+` set="?`+loser+`"? `)); len(d) == 0 {
		t.Errorf("the arbitrator's log shows no denial to %s", loser)
	} else {
		t.Logf("arbitrator: %s", d[0])
	}
	t.Logf("%s: %s", winner, strings.Join(matching(win, regexp.MustCompile(`quorum|arbitrator vote|node fenced`)), "\n  "))
	t.Logf("%s: %s", loser, strings.Join(matching(lose, regexp.MustCompile(`quorum|arbitrator vote`)), "\n  "))
}
