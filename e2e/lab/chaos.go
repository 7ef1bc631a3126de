package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
)

// A chaos run: randomized faults, drawn from a seeded generator, against
// a running lab (the real nodes, daemons, plugins, docker daemons, BMCs),
// each followed by its repair and a wait for the services to converge,
// while witnesses watch the host for split brains (double mounts, dual
// floating addresses), the client times the registry's outages, and the
// images pushed to the registry are pulled back by digest after every
// fault.

// ChaosConfig is what Chaos takes (`vigil-lab chaos`'s flags).
type ChaosConfig struct {
	Faults int
	// Seed seeds the fault generator: the same seed draws the same
	// faults, with the same parameters, in the same order.
	Seed uint64
	// Name is the lab to run in; "" builds one (two nodes, the seed's
	// services under orchestrate = ha) and removes it at the end.
	Name string
	// Only restricts the catalogue to these faults (their names); empty:
	// every fault.
	Only []string
	// Converge bounds the wait, after a fault is repaired, for every
	// service to be up on exactly one node (60 s when 0). Beyond it the
	// fault is a not_recovered violation.
	Converge time.Duration
	// KeepDir is where the logs of a fault with a violation are kept
	// (the system's temporary directory when empty).
	KeepDir string
	// Tool is the vigil-lab binary, for a lab Chaos builds (see
	// Config.Tool).
	Tool string
}

// ChaosSummary is a run's result.
type ChaosSummary struct {
	Faults       int
	Seed         uint64
	Violations   int
	DoubleMounts int
	DualIP       int
	DataLost     int
	NotRecovered int
	// Unavailable is the registry's unavailability, per fault, as its
	// client saw it.
	Unavailable []time.Duration
	// KeptLogs are the directories holding the faulty faults' logs.
	KeptLogs []string
}

// String is the run's last line.
func (s ChaosSummary) String() string {
	var maxU, med time.Duration
	if n := len(s.Unavailable); n > 0 {
		u := slices.Clone(s.Unavailable)
		slices.Sort(u)
		maxU, med = u[n-1], u[(n-1)/2]
	}
	return fmt.Sprintf("chaos: faults=%d seed=%d violations=%d double_mounts=%d dual_ip=%d data_lost=%d not_recovered=%d max_unavailable=%.2fs median_unavailable=%.2fs",
		s.Faults, s.Seed, s.Violations, s.DoubleMounts, s.DualIP, s.DataLost, s.NotRecovered, maxU.Seconds(), med.Seconds())
}

// Chaos heartbeat settings for a lab it builds: those of the e2e suites.
const (
	chaosHBInterval = 200 * time.Millisecond
	chaosHBTimeout  = time.Second
)

// A fault: a name, a weight in the draw, and what it does. What it breaks
// it records (cuts, stopped daemons, failing BMCs, routes, powered-off
// nodes); the run repairs all of it afterwards.
type fault struct {
	name   string
	weight int
	what   string
	run    func(c *chaosRun, f *faultRun) error
}

// ChaosFaults lists the catalogue: name and what each fault does.
func ChaosFaults() [][2]string {
	var out [][2]string
	for _, f := range catalogue {
		out = append(out, [2]string{f.name, f.what})
	}
	return out
}

var catalogue = []fault{
	{"poweroff-active", 3, "power the registry's node off through its BMC; power it on once the peer took over", faultPoweroffActive},
	{"poweroff-passive", 2, "power the other node off through its BMC for 1-5 s", faultPoweroffPassive},
	{"vigild-kill", 3, "kill -9 a node's vigild (its init restarts it 100 ms later)", faultVigildKill},
	{"vigild-stop", 2, "SIGSTOP a node's vigild for 0.3-3 s, then SIGCONT", faultVigildStop},
	{"plugin-kill", 2, "kill -9 one of a node's plugin processes", faultPluginKill},
	{"dockerd-kill", 2, "kill -9 a service's private docker daemon on the registry's node", faultDockerdKill},
	{"container-kill", 2, "kill -9 the registry's container process", faultContainerKill},
	{"cut", 4, "cut a node's net, disk or both for 0.5-6 s", faultCut},
	{"asym-cut", 2, "a node's packets to its peer dropped (one way), maybe with a disk cut, for 1-6 s", faultAsymCut},
	{"bmc-fail-partition", 2, "the registry's node cut off with its BMC failing (fences never confirmed) for 3-8 s", faultBMCFailPartition},
	{"partition-bmc-unreachable-restart", 2, "a node cut off, every BMC unreachable from the nodes, then a vigild kill -9 (either node)", faultPartitionRestart},
	{"fence-quick-poweron", 2, "the registry's node cut off until its peer fences it, then powered on at once (links still cut, or healed)", faultFenceQuickPoweron},
	{"bmc-fail-crash", 1, "the registry's node dies at once (no BMC) while its BMC fails", faultBMCFailCrash},
	{"kill-during-failover", 2, "power the registry's node off, then kill -9 the peer's vigild mid-takeover", faultKillDuringFailover},
	{"combo", 2, "two or three of: cut, vigild stop/kill, plugin kill, failing or unreachable BMC, on random nodes, overlapping", faultCombo},
}

type chaosRun struct {
	l       *Lab
	ctx     context.Context
	rng     *rand.Rand
	out     io.Writer
	cfg     ChaosConfig
	keepDir string

	probe  *prober
	mounts *witness
	addrs  *witness

	clients map[string]*api.Client
	images  [][2]string // pushed: reference, digest

	// What the fault in progress broke, for the repair.
	stopped    []int       // vigild pids stopped
	blackholes [][2]string // node, destination
}

// faultRun is one fault of the run.
type faultRun struct {
	n      int
	name   string
	params []string
	begin  time.Time
	events []string
	logOff map[string]int64
}

func (f *faultRun) param(k string, v any) { f.params = append(f.params, fmt.Sprintf("%s=%v", k, v)) }

// Chaos runs cfg.Faults faults and reports on out: one line per fault,
// then the summary. Its error says why the run could not go on; the
// violations are in the summary.
func Chaos(ctx context.Context, cfg ChaosConfig, out io.Writer) (ChaosSummary, error) {
	sum := ChaosSummary{Seed: cfg.Seed}
	if cfg.Converge == 0 {
		cfg.Converge = 60 * time.Second
	}
	faults := catalogue
	if len(cfg.Only) > 0 {
		faults = nil
		for _, name := range cfg.Only {
			i := slices.IndexFunc(catalogue, func(f fault) bool { return f.name == name })
			if i < 0 {
				return sum, fmt.Errorf("no fault %q: the catalogue is %s", name, strings.Join(faultNames(catalogue), " "))
			}
			faults = append(faults, catalogue[i])
		}
	}
	c := &chaosRun{
		ctx: ctx, out: out, cfg: cfg, clients: map[string]*api.Client{},
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}
	fmt.Fprintf(out, "chaos: seed %d, %d faults from %s\n", cfg.Seed, cfg.Faults, strings.Join(faultNames(faults), " "))
	if cfg.Name == "" {
		name := "cx" + randomHex(3)
		fmt.Fprintf(out, "chaos: building lab %s\n", name)
		var upOut bytes.Buffer
		l, err := Up(ctx, Config{
			Name: name, Nodes: 2, HBInterval: chaosHBInterval, HBTimeout: chaosHBTimeout,
			Images: true, Services: true, Tool: cfg.Tool,
		}, &upOut)
		defer func() {
			var b bytes.Buffer
			if err := Down(context.Background(), name, &b); err != nil {
				fmt.Fprintf(out, "chaos: lab down: %v\n%s", err, b.String())
			}
		}()
		if err != nil {
			return sum, fmt.Errorf("build the lab: %w\n%s", err, upOut.String())
		}
		c.l = l
	} else {
		l, err := Load(cfg.Name)
		if err != nil {
			return sum, err
		}
		c.l = l
	}
	c.keepDir = filepath.Join(or(cfg.KeepDir, os.TempDir()), fmt.Sprintf("vigil-chaos-%s-seed%d", c.l.Name, cfg.Seed))
	if _, err := os.Stat(filepath.Join(c.l.BinDir, "regclient")); err != nil {
		return sum, fmt.Errorf("no regclient in %s (make build builds it): %w", c.l.BinDir, err)
	}
	var err error
	if c.probe, err = c.l.probeRegistry(20 * time.Millisecond); err != nil {
		return sum, err
	}
	defer c.probe.Stop()
	if err := c.setup(); err != nil {
		return sum, err
	}
	if c.mounts, err = c.l.watchMounts(50 * time.Millisecond); err != nil {
		return sum, err
	}
	defer c.mounts.Stop()
	c.addrs = c.l.watchAddrs(50*time.Millisecond, map[string]string{c.l.RegistryAddr(): Registry, c.l.BusyboxAddr(): Busybox})
	defer c.addrs.Stop()
	// A first image, before any fault.
	if err := c.push("chaos/f0:v1"); err != nil {
		return sum, fmt.Errorf("the lab's registry takes no push before any fault: %w", err)
	}

	var total int
	for _, f := range faults {
		total += f.weight
	}
	for i := 1; i <= cfg.Faults; i++ {
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		pick := c.rng.IntN(total)
		var ft fault
		for _, f := range faults {
			if pick < f.weight {
				ft = f
				break
			}
			pick -= f.weight
		}
		ok := c.runFault(i, ft, &sum)
		sum.Faults = i
		if !ok {
			fmt.Fprintf(out, "chaos: the lab did not recover even after a full repair: stopping after fault %d\n", i)
			break
		}
	}
	return sum, nil
}

func faultNames(fs []fault) []string {
	var names []string
	for _, f := range fs {
		names = append(names, f.name)
	}
	return names
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// setup brings the lab to the runs' starting point: both services up
// somewhere, orchestrate = ha on both, every node holding that config.
func (c *chaosRun) setup() error {
	t0 := time.Now()
	ok, why := c.waitFor(3*time.Minute, c.converged)
	if !ok {
		// A fresh lab's services start under orchestrate = start on n1.
		return fmt.Errorf("the lab's services are not up on one node each after %s: %s", time.Since(t0).Round(time.Second), why)
	}
	node := c.holder(Registry)
	cl := c.client(node)
	if cl == nil {
		return fmt.Errorf("%s's daemon does not answer", node)
	}
	// The containers monitored, as an HA deployment has them: a killed
	// container (or its private docker daemon) is restarted in place
	// (twice), then failed over; unmonitored, a service would stay in
	// warn and never converge, as its configuration asks.
	sets := map[string][]string{
		Registry: {"orchestrate=ha", "container#1.monitor=true", "container#1.restart=2"},
		Busybox:  {"orchestrate=ha"},
	}
	for i := 1; i <= 7; i++ {
		sets[Busybox] = append(sets[Busybox], fmt.Sprintf("container#%d.monitor=true", i), fmt.Sprintf("container#%d.restart=2", i))
	}
	for _, svc := range []string{Registry, Busybox} {
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		err := cl.ConfigSet(ctx, svc, sets[svc])
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %s set %s: %w", node, svc, strings.Join(sets[svc], " "), err)
		}
	}
	ok, why = c.waitFor(30*time.Second, func() (bool, string) {
		for _, n := range c.l.NodeNames() {
			for _, svc := range []string{Registry, Busybox} {
				b, _ := os.ReadFile(filepath.Join(c.l.NodeDir(n), "etc", svc+".env"))
				if !strings.Contains(string(b), "orchestrate = ha") {
					return false, svc + " has no orchestrate = ha on " + n
				}
			}
		}
		return true, ""
	})
	if !ok {
		return errors.New(why)
	}
	fmt.Fprintf(c.out, "chaos: lab %s ready in %s: services on %s, orchestrate = ha, the containers monitored\n", c.l.Name, time.Since(t0).Round(time.Millisecond), node)
	return nil
}

// runFault runs one fault, its repair, the convergence wait and the
// checks, and prints its line. It returns false when the lab could not
// be brought back at all.
func (c *chaosRun) runFault(n int, ft fault, sum *ChaosSummary) bool {
	f := &faultRun{n: n, name: ft.name, begin: time.Now(), logOff: map[string]int64{}}
	for _, node := range c.l.NodeNames() {
		if fi, err := os.Stat(c.l.LogPath(node)); err == nil {
			f.logOff[node] = fi.Size()
		}
	}
	var problems []string
	if err := ft.run(c, f); err != nil {
		f.ev("fault did not go as planned: %v", err)
		problems = append(problems, "fault error: "+err.Error())
	}
	c.repair(f)
	ok, conv, why := c.waitConverged(f)
	notRecovered := false
	if !ok {
		notRecovered = true
		problems = append(problems, fmt.Sprintf("not_recovered: no convergence %s after the repair: %s", c.cfg.Converge, why))
	}
	var lost []string
	if ok {
		var unreachable error
		lost, unreachable = c.checkImages(f)
		for _, s := range lost {
			problems = append(problems, "data_lost: "+s)
		}
		if unreachable != nil {
			notRecovered = true
			problems = append(problems, "not_recovered: the registry does not answer pulls: "+unreachable.Error())
		}
		ref := fmt.Sprintf("chaos/f%d:v1", n)
		if err := c.push(ref); err != nil {
			notRecovered = true
			problems = append(problems, "not_recovered: push "+ref+": "+err.Error())
		}
	}
	unavail := c.probe.unavailable(f.begin)
	eps := append(c.mounts.since(f.begin), c.addrs.since(f.begin)...)
	var dm, di int
	for _, e := range eps {
		problems = append(problems, e.String())
		if e.kind == "double_mount" {
			dm++
		} else {
			di++
		}
	}
	v := dm + di + len(lost)
	if notRecovered {
		v++
		sum.NotRecovered++
	}
	sum.DoubleMounts += dm
	sum.DualIP += di
	sum.DataLost += len(lost)
	sum.Violations += v
	sum.Unavailable = append(sum.Unavailable, unavail)

	params := ""
	if len(f.params) > 0 {
		params = " " + strings.Join(f.params, " ")
	}
	fmt.Fprintf(c.out, "fault %d/%d %s%s: unavailable=%.2fs converged=%s violations=%d\n",
		n, c.cfg.Faults, ft.name, params, unavail.Seconds(), convText(ok, conv), v)
	for _, p := range problems {
		fmt.Fprintf(c.out, "  %s\n", p)
	}
	if v > 0 || len(problems) > 0 {
		if dir, err := c.keepLogs(f, problems); err == nil {
			if v > 0 {
				sum.KeptLogs = append(sum.KeptLogs, dir)
			}
			fmt.Fprintf(c.out, "  logs kept in %s\n", dir)
		} else {
			fmt.Fprintf(c.out, "  logs not kept: %v\n", err)
		}
	}
	if ok {
		return true
	}
	// Give it one more chance, repaired again, before the next fault.
	c.repair(f)
	ok, _, _ = c.waitConverged(f)
	return ok
}

// settle is how long convergence must hold before it counts: a fault's
// effect (a killed container, a stopped daemon's stale word) may not show
// in the daemons' status yet when the repair ends.
const settle = 3 * time.Second

// waitConverged waits, up to cfg.Converge, for convergence that holds for
// settle; it returns how long after the call it began.
func (c *chaosRun) waitConverged(f *faultRun) (bool, time.Duration, string) {
	begin := time.Now()
	var since time.Time
	ok, why := c.waitFor(c.cfg.Converge+settle, func() (bool, string) {
		// A node fenced by its peer after the repair (the fence was on
		// its way) is powered on again, as an operator would once the
		// takeover is done: the services must converge with it back.
		c.powerOnOff(f, "after the repair (fenced since)")
		ok, why := c.converged()
		if !ok {
			since = time.Time{}
			return false, why
		}
		if since.IsZero() {
			since = time.Now()
		}
		if time.Since(since) < settle {
			return false, "converged for less than " + settle.String()
		}
		return true, ""
	})
	if !ok {
		return false, 0, why
	}
	return true, since.Sub(begin), ""
}

func convText(ok bool, d time.Duration) string {
	if !ok {
		return "never"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// ev records an event of the fault, for its kept logs.
func (f *faultRun) ev(format string, a ...any) {
	f.events = append(f.events, time.Now().UTC().Format("15:04:05.000")+" "+fmt.Sprintf(format, a...))
}

// keepLogs copies the nodes' logs written since the fault began, the
// supervisor's, and the fault's events and problems.
func (c *chaosRun) keepLogs(f *faultRun, problems []string) (string, error) {
	dir := filepath.Join(c.keepDir, fmt.Sprintf("fault%03d-%s", f.n, f.name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, node := range c.l.NodeNames() {
		if b, err := os.ReadFile(c.l.LogPath(node)); err == nil {
			off := f.logOff[node]
			// A little of what came before, for context.
			off = max(0, min(off-16*1024, int64(len(b))))
			_ = os.WriteFile(filepath.Join(dir, node+"-vigild.log"), b[off:], 0o644)
		}
		if b, err := os.ReadFile(filepath.Join(c.l.NodeDir(node), "console.log")); err == nil {
			_ = os.WriteFile(filepath.Join(dir, node+"-console.log"), b, 0o644)
		}
	}
	if b, err := os.ReadFile(c.l.Path("supervisor.log")); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "supervisor.log"), b, 0o644)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fault %d %s %s (seed %d), began %s\n\nevents:\n", f.n, f.name, strings.Join(f.params, " "), c.cfg.Seed, f.begin.UTC().Format(time.RFC3339Nano))
	for _, e := range f.events {
		b.WriteString(e + "\n")
	}
	b.WriteString("\nproblems:\n")
	for _, p := range problems {
		b.WriteString(p + "\n")
	}
	return dir, os.WriteFile(filepath.Join(dir, "fault.txt"), []byte(b.String()), 0o644)
}

// client is node's API client (kept: it dials again when the daemon
// restarts), nil when no daemon ever answered there.
func (c *chaosRun) client(node string) *api.Client {
	if cl := c.clients[node]; cl != nil {
		return cl
	}
	cl, err := api.Dial(filepath.Join(c.l.NodeDir(node), "run", api.SocketName))
	if err != nil {
		return nil
	}
	c.clients[node] = cl
	return cl
}

// view is node's own cluster status, nil when its daemon does not answer.
func (c *chaosRun) view(node string) *api.ClusterStatus {
	if c.l.NodeInit(node) == nil {
		return nil
	}
	cl := c.client(node)
	if cl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, 3*time.Second)
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil {
		return nil
	}
	return st
}

func ownAvail(st *api.ClusterStatus, node, svc string) string {
	if st == nil || st.Node[node] == nil || st.Node[node].Services[svc] == nil {
		return "?"
	}
	return st.Node[node].Services[svc].Status.Avail.String()
}

// converged: every node on, every daemon answering and seeing its peers
// ready, each service up on exactly one node (each node's word on its
// own instance) and down on the others, and the registry answering its
// client.
func (c *chaosRun) converged() (bool, string) {
	views := map[string]*api.ClusterStatus{}
	for _, n := range c.l.NodeNames() {
		if c.l.NodeInit(n) == nil {
			return false, n + " is off"
		}
		st := c.view(n)
		if st == nil {
			return false, n + "'s daemon does not answer"
		}
		views[n] = st
	}
	for a, st := range views {
		for b := range views {
			if a == b {
				continue
			}
			if st.Node[b] == nil || st.Node[b].State != cluster.Ready {
				state := "unknown"
				if st.Node[b] != nil {
					state = string(st.Node[b].State)
				}
				return false, fmt.Sprintf("%s sees %s %s", a, b, state)
			}
		}
	}
	for _, svc := range []string{Registry, Busybox} {
		var ups, others []string
		for n, st := range views {
			switch a := ownAvail(st, n, svc); a {
			case "up":
				ups = append(ups, n)
			case "down":
			default:
				others = append(others, n+":"+a)
			}
		}
		if len(ups) != 1 || len(others) > 0 {
			sort.Strings(ups)
			sort.Strings(others)
			return false, fmt.Sprintf("%s up on [%s], neither up nor down on [%s]", svc, strings.Join(ups, " "), strings.Join(others, " "))
		}
	}
	if !c.probe.ok() {
		return false, "the registry does not answer its client"
	}
	return true, ""
}

// holder is the node that says svc is up on it ("" when none does).
func (c *chaosRun) holder(svc string) string {
	for _, n := range c.l.NodeNames() {
		if ownAvail(c.view(n), n, svc) == "up" {
			return n
		}
	}
	return ""
}

// active is the registry's node, passive the other (n1 and n2 when no
// node says it holds the registry).
func (c *chaosRun) active() string {
	if h := c.holder(Registry); h != "" {
		return h
	}
	return "n1"
}

func (c *chaosRun) other(node string) string {
	for _, n := range c.l.NodeNames() {
		if n != node {
			return n
		}
	}
	return node
}

func (c *chaosRun) randNode() string {
	names := c.l.NodeNames()
	return names[c.rng.IntN(len(names))]
}

// dur is a random duration in [lo, hi).
func (c *chaosRun) dur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(c.rng.Int64N(int64(hi-lo)))
}

func (c *chaosRun) sleep(d time.Duration) {
	select {
	case <-c.ctx.Done():
	case <-time.After(d):
	}
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func (c *chaosRun) waitFor(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return true, ""
		}
		if time.Now().After(deadline) || c.ctx.Err() != nil {
			return false, why
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// regclient runs the registry client in the client namespace.
func (c *chaosRun) regclient(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	full := append([]string{"--net=" + c.l.NSPath(c.l.ClientNS()), "--", filepath.Join(c.l.BinDir, "regclient")}, args...)
	out, err := output(ctx, "nsenter", full...)
	return strings.TrimSpace(out), err
}

// push pushes an image and records its digest; a failure is tried again
// for 10 s (the registry may have just started).
func (c *chaosRun) push(ref string) error {
	addr := c.l.RegistryAddr() + ":5000"
	var err error
	for end := time.Now().Add(10 * time.Second); ; {
		var d string
		if d, err = c.regclient("push", addr, ref); err == nil {
			c.images = append(c.images, [2]string{ref, d})
			return nil
		}
		if time.Now().After(end) {
			return err
		}
		c.sleep(500 * time.Millisecond)
	}
}

// checkImages pulls every image pushed so far back by its digest (each
// blob's digest checked too). An image is lost when the registry answers
// but not with it (unknown manifest, wrong digest, missing blob); a
// registry that does not answer for 30 s is returned as unreachable.
func (c *chaosRun) checkImages(f *faultRun) (lost []string, unreachable error) {
	addr := c.l.RegistryAddr() + ":5000"
	for _, im := range c.images {
		var err error
		for end := time.Now().Add(30 * time.Second); ; {
			if _, err = c.regclient("pull", addr, im[0], im[1]); err == nil || answered(err) || time.Now().After(end) {
				break
			}
			c.sleep(500 * time.Millisecond)
		}
		switch {
		case err == nil:
		case answered(err):
			f.ev("pull %s %s: %v", im[0], im[1], err)
			lost = append(lost, fmt.Sprintf("%s@%s: %v", im[0], im[1], err))
		default:
			f.ev("pull %s %s: %v", im[0], im[1], err)
			return lost, err
		}
	}
	return lost, nil
}

// answered tells a regclient error where the registry answered (the
// image is not there, or not as pushed) from one where it did not.
func answered(err error) bool {
	s := err.Error()
	return strings.Contains(s, "get manifest: 404") || strings.Contains(s, "manifest digest") ||
		blobAnswer.MatchString(s)
}

// blobAnswer is regclient's word for a blob the registry served wrong
// or said it did not have (not a 5xx: a registry still starting).
var blobAnswer = regexp.MustCompile(`regclient: blob \S+: (200|404)`)

// repair undoes whatever a fault broke: stopped daemons continued, routes
// removed, BMCs working, links healed, nodes powered on.
func (c *chaosRun) repair(f *faultRun) {
	ctx := c.ctx
	for _, pid := range c.stopped {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	c.stopped = nil
	for _, bh := range c.blackholes {
		_ = run(ctx, "ip", "-n", c.l.NodeNS(bh[0]), "route", "del", "blackhole", bh[1]+"/32")
	}
	c.blackholes = nil
	for _, n := range c.l.NodeNames() {
		if err := c.l.SetBMCFail(n, false); err != nil {
			f.ev("repair: BMC of %s: %v", n, err)
		}
		if c.l.Cut[n] != (Cut{}) {
			if err := c.l.SetCut(ctx, n, Cut{}); err != nil {
				f.ev("repair: heal %s: %v", n, err)
			}
		}
	}
	c.powerOnOff(f, "repair")
	f.ev("repaired")
}

// powerOnOff powers on every node that is off, and records it under why.
func (c *chaosRun) powerOnOff(f *faultRun, why string) {
	for k, n := range c.l.NodeNames() {
		if c.l.NodeInit(n) == nil {
			if _, err := c.l.Power(c.ctx, k+1, true); err != nil {
				f.ev("%s: power on %s: %v", why, n, err)
			} else {
				f.ev("%s: %s powered on", why, n)
			}
		}
	}
}

// Fault steps. Each records what it did in the fault's events.

func (c *chaosRun) powerOff(f *faultRun, node string) error {
	k, err := c.l.NodeIndex(node)
	if err != nil {
		return err
	}
	if _, err := c.l.Power(c.ctx, k, false); err != nil {
		return err
	}
	f.ev("%s powered off", node)
	return nil
}

func (c *chaosRun) powerOn(f *faultRun, node string) error {
	k, err := c.l.NodeIndex(node)
	if err != nil {
		return err
	}
	if _, err := c.l.Power(c.ctx, k, true); err != nil {
		return err
	}
	f.ev("%s powered on", node)
	return nil
}

func (c *chaosRun) cut(f *faultRun, node string, cut Cut) error {
	if err := c.l.SetCut(c.ctx, node, cut); err != nil {
		return err
	}
	f.ev("%s cut: net=%v disk=%v", node, cut.Net, cut.Disk)
	return nil
}

// signalVigild signals node's vigild; a stopped one is continued by the
// repair.
func (c *chaosRun) signalVigild(f *faultRun, node string, sig syscall.Signal) error {
	pid := c.l.VigildPid(node)
	if pid == 0 {
		return fmt.Errorf("%s runs no vigild now", node)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("%s: signal vigild %d: %w", node, pid, err)
	}
	if sig == syscall.SIGSTOP {
		c.stopped = append(c.stopped, pid)
	}
	f.ev("%s: vigild %d sent %v", node, pid, sig)
	return nil
}

// blackhole drops node's packets to dst (a route in its namespace).
func (c *chaosRun) blackhole(f *faultRun, node, dst string) error {
	if err := run(c.ctx, "ip", "-n", c.l.NodeNS(node), "route", "add", "blackhole", dst+"/32"); err != nil {
		return err
	}
	c.blackholes = append(c.blackholes, [2]string{node, dst})
	f.ev("%s: packets to %s dropped", node, dst)
	return nil
}

// bmcsUnreachable makes every BMC unreachable from every running node
// (the client, which powers nodes on, still reaches them).
func (c *chaosRun) bmcsUnreachable(f *faultRun) error {
	for _, n := range c.l.NodeNames() {
		if c.l.NodeInit(n) == nil {
			continue
		}
		for k := 1; k <= c.l.Nodes; k++ {
			if err := c.blackhole(f, n, c.l.BMCAddr(k)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *chaosRun) bmcFail(f *faultRun, node string) error {
	if err := c.l.SetBMCFail(node, true); err != nil {
		return err
	}
	f.ev("BMC of %s failing", node)
	return nil
}

// killNamed sends SIGKILL to a process of node's whose command is comm
// (a random one when several), and says which.
func (c *chaosRun) killNamed(f *faultRun, node string, comms ...string) (string, error) {
	attr := newNodeAttribution(c.l)
	attr.refresh()
	var pids []int
	var names []string
	for _, pid := range hostPids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !slices.Contains(comms, strings.TrimSpace(string(b))) {
			continue
		}
		if attr.node(pid) == node {
			pids = append(pids, pid)
			names = append(names, strings.TrimSpace(string(b)))
		}
	}
	if len(pids) == 0 {
		return "", fmt.Errorf("%s runs no %s", node, strings.Join(comms, " or "))
	}
	i := c.rng.IntN(len(pids))
	if err := syscall.Kill(pids[i], syscall.SIGKILL); err != nil {
		return "", err
	}
	f.ev("%s: %s %d killed", node, names[i], pids[i])
	return names[i], nil
}

// waitTakeover waits until node says it holds the registry.
func (c *chaosRun) waitTakeover(f *faultRun, node string, timeout time.Duration) bool {
	ok, _ := c.waitFor(timeout, func() (bool, string) {
		return ownAvail(c.view(node), node, Registry) == "up", ""
	})
	f.ev("%s holds the registry: %v", node, ok)
	return ok
}

// The faults.

func faultPoweroffActive(c *chaosRun, f *faultRun) error {
	a := c.active()
	f.param("node", a)
	if err := c.powerOff(f, a); err != nil {
		return err
	}
	c.waitTakeover(f, c.other(a), 45*time.Second)
	c.sleep(c.dur(0, 2*time.Second))
	return c.powerOn(f, a)
}

func faultPoweroffPassive(c *chaosRun, f *faultRun) error {
	p := c.other(c.active())
	d := c.dur(time.Second, 5*time.Second)
	f.param("node", p)
	f.param("for", d.Round(time.Millisecond))
	if err := c.powerOff(f, p); err != nil {
		return err
	}
	c.sleep(d)
	return c.powerOn(f, p)
}

// role names a node as the registry's (active) or the other (passive).
func (c *chaosRun) role(node string) string {
	if node == c.active() {
		return node + "(active)"
	}
	return node + "(passive)"
}

func faultVigildKill(c *chaosRun, f *faultRun) error {
	n := c.randNode()
	f.param("node", c.role(n))
	return c.signalVigild(f, n, syscall.SIGKILL)
}

func faultVigildStop(c *chaosRun, f *faultRun) error {
	n := c.randNode()
	d := c.dur(300*time.Millisecond, 3*time.Second)
	f.param("node", c.role(n))
	f.param("for", d.Round(time.Millisecond))
	if err := c.signalVigild(f, n, syscall.SIGSTOP); err != nil {
		return err
	}
	c.sleep(d)
	return nil // the repair continues it
}

func faultPluginKill(c *chaosRun, f *faultRun) error {
	n := c.randNode()
	f.param("node", c.role(n))
	vpid := c.l.VigildPid(n)
	if vpid == 0 {
		return fmt.Errorf("%s runs no vigild now", n)
	}
	kids := Children(vpid)
	if len(kids) == 0 {
		return fmt.Errorf("%s's vigild runs no plugin", n)
	}
	pid := kids[c.rng.IntN(len(kids))]
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	f.param("plugin", filepath.Base(exe))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return err
	}
	f.ev("%s: plugin %s %d killed", n, filepath.Base(exe), pid)
	return nil
}

func faultDockerdKill(c *chaosRun, f *faultRun) error {
	a := c.active()
	f.param("node", a)
	_, err := c.killNamed(f, a, "dockerd")
	return err
}

func faultContainerKill(c *chaosRun, f *faultRun) error {
	a := c.active()
	f.param("node", a)
	_, err := c.killNamed(f, a, "docker-registry")
	return err
}

func (c *chaosRun) randCut() (Cut, string) {
	switch c.rng.IntN(3) {
	case 0:
		return Cut{Net: true}, "net"
	case 1:
		return Cut{Disk: true}, "disk"
	}
	return Cut{Net: true, Disk: true}, "all"
}

func faultCut(c *chaosRun, f *faultRun) error {
	n := c.randNode()
	cut, link := c.randCut()
	d := c.dur(500*time.Millisecond, 6*time.Second)
	f.param("node", c.role(n))
	f.param("link", link)
	f.param("for", d.Round(time.Millisecond))
	if err := c.cut(f, n, cut); err != nil {
		return err
	}
	c.sleep(d)
	return nil
}

func faultAsymCut(c *chaosRun, f *faultRun) error {
	a := c.randNode()
	b := c.other(a)
	d := c.dur(time.Second, 6*time.Second)
	kb, _ := c.l.NodeIndex(b)
	f.param("from", c.role(a))
	f.param("to", b)
	disk := []string{"none", a, b}[c.rng.IntN(3)]
	f.param("disk_cut", disk)
	f.param("for", d.Round(time.Millisecond))
	if err := c.blackhole(f, a, c.l.NodeAddr(kb)); err != nil {
		return err
	}
	if disk != "none" {
		if err := c.cut(f, disk, Cut{Disk: true}); err != nil {
			return err
		}
	}
	c.sleep(d)
	return nil
}

func faultBMCFailPartition(c *chaosRun, f *faultRun) error {
	a := c.active()
	d := c.dur(3*time.Second, 8*time.Second)
	f.param("node", a)
	f.param("for", d.Round(time.Millisecond))
	if err := c.bmcFail(f, a); err != nil {
		return err
	}
	if err := c.cut(f, a, Cut{Net: true, Disk: true}); err != nil {
		return err
	}
	c.sleep(d)
	return nil
}

func faultPartitionRestart(c *chaosRun, f *faultRun) error {
	x := c.randNode()
	target := []string{x, c.other(x)}[c.rng.IntN(2)]
	lost := c.dur(1500*time.Millisecond, 3*time.Second)
	hold := c.dur(3*time.Second, 8*time.Second)
	f.param("cut", c.role(x))
	f.param("restart", target)
	f.param("after", lost.Round(time.Millisecond))
	f.param("hold", hold.Round(time.Millisecond))
	if err := c.bmcsUnreachable(f); err != nil {
		return err
	}
	if err := c.cut(f, x, Cut{Net: true, Disk: true}); err != nil {
		return err
	}
	c.sleep(lost)
	if err := c.signalVigild(f, target, syscall.SIGKILL); err != nil {
		return err
	}
	c.sleep(hold)
	return nil
}

func faultFenceQuickPoweron(c *chaosRun, f *faultRun) error {
	a := c.active()
	healed := c.rng.IntN(2) == 0
	f.param("node", a)
	f.param("healed_first", healed)
	if err := c.cut(f, a, Cut{Net: true, Disk: true}); err != nil {
		return err
	}
	ok, _ := c.waitFor(30*time.Second, func() (bool, string) { return c.l.NodeInit(a) == nil, "" })
	if !ok {
		return fmt.Errorf("%s was not fenced within 30 s of its cut", a)
	}
	f.ev("%s fenced (off)", a)
	if healed {
		if err := c.cut(f, a, Cut{}); err != nil {
			return err
		}
	}
	if err := c.powerOn(f, a); err != nil {
		return err
	}
	c.sleep(c.dur(3*time.Second, 6*time.Second))
	return nil
}

func faultBMCFailCrash(c *chaosRun, f *faultRun) error {
	a := c.active()
	k, err := c.l.NodeIndex(a)
	if err != nil {
		return err
	}
	f.param("node", a)
	if err := c.bmcFail(f, a); err != nil {
		return err
	}
	if err := c.l.haltNode(c.ctx, k); err != nil {
		return err
	}
	f.ev("%s crashed (off, not through its BMC)", a)
	c.waitTakeover(f, c.other(a), 30*time.Second)
	return nil
}

func faultKillDuringFailover(c *chaosRun, f *faultRun) error {
	a := c.active()
	p := c.other(a)
	d := c.dur(300*time.Millisecond, 2500*time.Millisecond)
	f.param("node", a)
	f.param("kill_peer_after", d.Round(time.Millisecond))
	if err := c.powerOff(f, a); err != nil {
		return err
	}
	c.sleep(d)
	if err := c.signalVigild(f, p, syscall.SIGKILL); err != nil {
		return err
	}
	c.waitTakeover(f, p, 45*time.Second)
	return nil
}

func faultCombo(c *chaosRun, f *faultRun) error {
	steps := []struct {
		name string
		do   func(node string) error
	}{
		{"cut-net", func(n string) error { return c.cut(f, n, Cut{Net: true, Disk: c.l.Cut[n].Disk}) }},
		{"cut-disk", func(n string) error { return c.cut(f, n, Cut{Net: c.l.Cut[n].Net, Disk: true}) }},
		{"vigild-stop", func(n string) error { return c.signalVigild(f, n, syscall.SIGSTOP) }},
		{"vigild-kill", func(n string) error { return c.signalVigild(f, n, syscall.SIGKILL) }},
		{"plugin-kill", func(n string) error {
			if kids := Children(c.l.VigildPid(n)); len(kids) > 0 {
				pid := kids[c.rng.IntN(len(kids))]
				f.ev("%s: plugin %d killed", n, pid)
				return syscall.Kill(pid, syscall.SIGKILL)
			}
			return nil
		}},
		{"bmc-fail", func(n string) error { return c.bmcFail(f, n) }},
		{"bmcs-unreachable", func(string) error { return c.bmcsUnreachable(f) }},
	}
	k := 2 + c.rng.IntN(2)
	for i := 0; i < k; i++ {
		s := steps[c.rng.IntN(len(steps))]
		n := c.randNode()
		f.param("step", s.name+"@"+c.role(n))
		if err := s.do(n); err != nil {
			f.ev("%s on %s: %v", s.name, n, err)
		}
		c.sleep(c.dur(0, time.Second))
	}
	hold := c.dur(time.Second, 5*time.Second)
	f.param("hold", hold.Round(time.Millisecond))
	c.sleep(hold)
	return nil
}
