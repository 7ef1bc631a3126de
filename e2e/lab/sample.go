package lab

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The chaos run's witnesses. They look at the host itself, not at what
// the daemons say: a device mounted in two nodes' mount namespaces at
// once, or a floating address held by two nodes' network namespaces at
// once, is a split brain whatever the cluster view reads.

// episode is a stretch of time during which a witness saw a violation.
type episode struct {
	kind  string // double_mount, dual_ip
	what  string // the device or address, and where
	key   string
	begin time.Time
	end   time.Time // zero while it lasts
}

func (e *episode) String() string {
	d := "still on"
	if !e.end.IsZero() {
		d = fmt.Sprintf("for %.3fs", e.end.Sub(e.begin).Seconds())
	}
	return fmt.Sprintf("%s: %s from %s %s", e.kind, e.what, e.begin.UTC().Format("15:04:05.000"), d)
}

// witness samples the lab every interval until stopped, and keeps every
// episode it saw.
type witness struct {
	mu       sync.Mutex
	episodes []*episode
	open     map[string]*episode
	samples  int
	stop     chan struct{}
	done     chan struct{}
}

func newWitness() *witness {
	return &witness{open: map[string]*episode{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// observe records one sample: the violations seen now, by key.
func (w *witness) observe(now time.Time, kind string, seen map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	for key, what := range seen {
		k := kind + " " + key
		if w.open[k] == nil {
			e := &episode{kind: kind, what: what, key: k, begin: now}
			w.open[k] = e
			w.episodes = append(w.episodes, e)
		}
	}
	for k, e := range w.open {
		if e.kind != kind {
			continue
		}
		if _, still := seen[strings.TrimPrefix(k, kind+" ")]; !still {
			e.end = now
			delete(w.open, k)
		}
	}
}

// since lists the episodes that began at or after t.
func (w *witness) since(t time.Time) []episode {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []episode
	for _, e := range w.episodes {
		if !e.begin.Before(t) {
			out = append(out, *e)
		}
	}
	return out
}

func (w *witness) Stop() {
	close(w.stop)
	<-w.done
}

// watchMounts starts the mount witness: every interval it reads the mount
// table of every mount namespace on the host (one process's mountinfo
// per namespace), keeps the lines of the services' devices (by major and
// minor number), attributes each namespace to the node whose pid
// namespace its process descends from, and reports a device mounted in
// two nodes' namespaces at once. It looks at every namespace, not only
// the nodes' inits': a container's or a plugin's private namespace
// holding a device counts as its node holding it.
func (l *Lab) watchMounts(interval time.Duration) (*witness, error) {
	devs := map[string]string{} // "MAJ:MIN" → disk role
	for _, role := range []string{"registry-root", "registry-docker", "registry-data", "busybox-root", "busybox-data"} {
		dev := l.LoopDev(role)
		var st unix.Stat_t
		if err := unix.Stat(dev, &st); err != nil {
			return nil, fmt.Errorf("the mount witness: stat %s (%s): %w", dev, role, err)
		}
		devs[fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))] = role + " " + dev
	}
	w := newWitness()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		attr := newNodeAttribution(l)
		for {
			seen := map[string]string{}
			for dev, nodes := range mountsByNode(attr, devs) {
				if len(nodes) > 1 {
					seen[dev] = fmt.Sprintf("%s mounted on %s", devs[dev], strings.Join(nodes, " and "))
				}
			}
			w.observe(time.Now(), "double_mount", seen)
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w, nil
}

// nodeAttribution tells which node a process belongs to: the node whose
// init's pid namespace is its own or an ancestor of it (containers run in
// pid namespaces of their own, below their node's). A node's earlier
// lives count as the node: once its init is killed the kernel tears the
// rest of its processes down, and until it has, their mounts are still
// there.
type nodeAttribution struct {
	l *Lab
	// lives maps the pid namespace (inode) of every node init seen to
	// its node; nested caches namespaces found below them.
	lives  map[uint64]string
	nested map[uint64]string
	// host is the host's pid namespace: its processes are no node's.
	host uint64
}

func newNodeAttribution(l *Lab) *nodeAttribution {
	a := &nodeAttribution{l: l, lives: map[uint64]string{}, nested: map[uint64]string{}}
	a.host, _ = pidNSInode(1)
	return a
}

func pidNSInode(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", pid), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// refresh notes the nodes' current inits (nodes power off and on) and
// forgets the nested namespaces: a freed namespace's inode may be reused.
func (a *nodeAttribution) refresh() {
	clear(a.nested)
	for _, n := range a.l.NodeNames() {
		if p := a.l.NodeInit(n); p != nil {
			if ino, err := pidNSInode(p.Pid); err == nil {
				a.lives[ino] = n
			}
		}
	}
}

// node is pid's node, "" for the host's own processes. It walks up the
// pid namespaces (NS_GET_PARENT), not the parent processes: a process's
// pid namespace stays what it was while its node is torn down.
func (a *nodeAttribution) node(pid int) string {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/pid", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	var first uint64
	for range 32 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			break
		}
		if first == 0 {
			first = st.Ino
		}
		if st.Ino == a.host {
			break
		}
		n, ok := a.lives[st.Ino]
		if !ok {
			n, ok = a.nested[st.Ino]
		}
		if ok {
			unix.Close(fd)
			a.nested[first] = n
			return n
		}
		parent, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		unix.Close(fd)
		if err != nil {
			return "" // the top of what this process may see: the host's
		}
		fd = parent
	}
	unix.Close(fd)
	return ""
}

// hostPids lists the host's processes.
func hostPids() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsByNode reads every mount namespace once and returns, per device
// of devs mounted in a node's namespace, the nodes that have it.
func mountsByNode(attr *nodeAttribution, devs map[string]string) map[string][]string {
	attr.refresh()
	done := map[string]bool{} // mount namespaces read
	found := map[string][]string{}
	for _, pid := range hostPids() {
		mnt, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || done[mnt] {
			continue
		}
		node := attr.node(pid)
		if node == "" {
			// The host's namespaces (the image loader's mounts) are
			// no node's; a namespace is read for the first process met.
			continue
		}
		done[mnt] = true
		for _, dev := range devicesMounted(pid, devs) {
			if !slices.Contains(found[dev], node) {
				found[dev] = append(found[dev], node)
			}
		}
	}
	for _, nodes := range found {
		slices.Sort(nodes)
	}
	return found
}

// devicesMounted lists the devices of devs in pid's mountinfo.
func devicesMounted(pid int, devs map[string]string) []string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT ...
		fields := strings.SplitN(sc.Text(), " ", 4)
		if len(fields) > 2 {
			if _, ok := devs[fields[2]]; ok && !slices.Contains(out, fields[2]) {
				out = append(out, fields[2])
			}
		}
	}
	return out
}

// watchAddrs starts the address witness: every interval it lists the IPv4
// addresses of every running node's network namespace (a netlink socket
// opened in each namespace) and reports a
// floating address held by two nodes at once.
func (l *Lab) watchAddrs(interval time.Duration, floating map[string]string) *witness {
	w := newWitness()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			holders := map[string][]string{} // address → nodes
			for _, n := range l.NodeNames() {
				for _, a := range l.addrsOf(n) {
					if _, ok := floating[a]; ok {
						holders[a] = append(holders[a], n)
					}
				}
			}
			seen := map[string]string{}
			for a, nodes := range holders {
				if len(nodes) > 1 {
					seen[a] = fmt.Sprintf("%s (%s) held by %s", a, floating[a], strings.Join(nodes, " and "))
				}
			}
			w.observe(time.Now(), "dual_ip", seen)
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// addrsOf lists the IPv4 addresses in node's network namespace (none when
// it is off). The handle is made and closed at each call: one kept open
// would keep a powered-off node's namespace alive.
func (l *Lab) addrsOf(node string) []string {
	path := l.NSPath(l.NodeNS(node))
	if l.NodeInit(node) == nil || !fileExists(path) {
		return nil
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IP.String())
	}
	return out
}

// prober asks the registry for GET /v2/ through its floating address, from
// the client namespace, every interval: the client's side of a failover.
// An outage runs from the last answer before a failure to the first answer
// after it.
type prober struct {
	mu      sync.Mutex
	lastOK  time.Time
	down    bool
	outages [][2]time.Time // [last answer, next answer]
	stop    chan struct{}
	done    chan struct{}
}

func (l *Lab) probeRegistry(interval time.Duration) (*prober, error) {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	addr := net.JoinHostPort(l.RegistryAddr(), "5000")
	errc := make(chan error, 1)
	go func() {
		defer close(p.done)
		// The sockets this goroutine makes are the client namespace's: it
		// runs on a thread of its own switched there, never given back.
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(l.NSPath(l.ClientNS()))
		if err == nil {
			err = netns.Set(ns)
			ns.Close()
		}
		errc <- err
		if err != nil {
			return
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			ok := registryAnswers(addr, 250*time.Millisecond)
			now := time.Now()
			p.mu.Lock()
			switch {
			case ok && p.down:
				p.outages = append(p.outages, [2]time.Time{p.lastOK, now})
				p.down = false
				p.lastOK = now
			case ok:
				p.lastOK = now
			case !p.lastOK.IsZero():
				p.down = true
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("the registry prober: enter the client namespace: %w", err)
	}
	return p, nil
}

// registryAnswers dials addr and asks GET /v2/ over the connection itself
// (net/http would dial from goroutines of its own, out of this thread's
// namespace): a docker-proxy accepting TCP before the registry runs is no
// answer.
func registryAnswers(addr string, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n", addr); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "HTTP/1.") && strings.Contains(line, " 200 ")
}

// ok says whether the registry answered at its last probe.
func (p *prober) ok() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.down && !p.lastOK.IsZero()
}

// unavailable is the time the registry did not answer, summed over the
// outages that ended after t0 (the one under way counts up to now).
func (p *prober) unavailable(t0 time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	for _, o := range p.outages {
		if o[1].After(t0) {
			d += o[1].Sub(o[0])
		}
	}
	if p.down {
		d += time.Since(p.lastOK)
	}
	return d
}

func (p *prober) Stop() {
	close(p.stop)
	<-p.done
}
