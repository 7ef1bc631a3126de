package docker

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// ErrRunArgs wraps every run_args parse error, so callers can tell a
// configuration mistake from a docker failure.
var ErrRunArgs = errors.New("invalid run_args")

// runSpec is what run_args (and run_command) contribute to a container.
type runSpec struct {
	Config container.Config
	Host   container.HostConfig
}

// flagDef is one docker-run flag vigil understands.
type flagDef struct {
	long    string
	short   byte // 0 when the flag has no one-letter form
	aliases []string
	boolean bool
	// set applies the flag's value; booleans get "true" or "false".
	set func(s *runSpec, v string) error
}

// runFlags lists the docker-run flags accepted in run_args. A flag not in
// this table is an error, never ignored: a silently dropped -p or -v would
// start a container that looks fine and is not what the operator asked for.
var runFlags = []flagDef{
	{long: "volume", short: 'v', set: setVolume},
	{long: "env", short: 'e', set: setEnv},
	{long: "publish", short: 'p', set: setPublish},
	{long: "expose", set: setExpose},
	{long: "network", aliases: []string{"net"}, set: func(s *runSpec, v string) error {
		if v == "" {
			return errors.New("empty network name")
		}
		s.Host.NetworkMode = container.NetworkMode(v)
		return nil
	}},
	{long: "name", set: func(*runSpec, string) error {
		return errors.New("the container name is managed by vigil (<service>.container.<n>): remove --name from run_args")
	}},
	{long: "rm", boolean: true, set: func(_ *runSpec, v string) error {
		if v == "false" {
			return nil
		}
		return errors.New("vigil removes the container when it stops the resource: remove --rm from run_args")
	}},
	{long: "detach", short: 'd', boolean: true, set: func(*runSpec, string) error { return nil }}, // vigil always detaches
	{long: "tty", short: 't', boolean: true, set: func(s *runSpec, v string) error {
		s.Config.Tty = v == "true"
		return nil
	}},
	{long: "interactive", short: 'i', boolean: true, set: func(s *runSpec, v string) error {
		s.Config.OpenStdin = v == "true"
		return nil
	}},
	{long: "restart", set: setRestart},
	{long: "entrypoint", set: func(s *runSpec, v string) error {
		// As docker run: an empty --entrypoint resets the image's one.
		s.Config.Entrypoint = []string{v}
		return nil
	}},
	{long: "workdir", short: 'w', set: func(s *runSpec, v string) error {
		if !path.IsAbs(v) {
			return fmt.Errorf("%q is not an absolute path", v)
		}
		s.Config.WorkingDir = v
		return nil
	}},
	{long: "user", short: 'u', set: func(s *runSpec, v string) error { s.Config.User = v; return nil }},
	{long: "hostname", short: 'h', set: func(s *runSpec, v string) error { s.Config.Hostname = v; return nil }},
	{long: "privileged", boolean: true, set: func(s *runSpec, v string) error {
		s.Host.Privileged = v == "true"
		return nil
	}},
	{long: "read-only", boolean: true, set: func(s *runSpec, v string) error {
		s.Host.ReadonlyRootfs = v == "true"
		return nil
	}},
	{long: "init", boolean: true, set: func(s *runSpec, v string) error {
		b := v == "true"
		s.Host.Init = &b
		return nil
	}},
	{long: "cap-add", set: func(s *runSpec, v string) error { s.Host.CapAdd = append(s.Host.CapAdd, v); return nil }},
	{long: "cap-drop", set: func(s *runSpec, v string) error { s.Host.CapDrop = append(s.Host.CapDrop, v); return nil }},
	{long: "security-opt", set: func(s *runSpec, v string) error {
		s.Host.SecurityOpt = append(s.Host.SecurityOpt, v)
		return nil
	}},
	{long: "add-host", set: setAddHost},
	{long: "dns", set: func(s *runSpec, v string) error {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("%q is not an IP address", v)
		}
		s.Host.DNS = append(s.Host.DNS, a)
		return nil
	}},
	{long: "dns-search", set: func(s *runSpec, v string) error { s.Host.DNSSearch = append(s.Host.DNSSearch, v); return nil }},
	{long: "dns-option", set: func(s *runSpec, v string) error { s.Host.DNSOptions = append(s.Host.DNSOptions, v); return nil }},
	{long: "label", short: 'l', set: func(s *runSpec, v string) error {
		k, val, _ := strings.Cut(v, "=")
		if k == "" {
			return fmt.Errorf("%q: a label needs a name (name=value)", v)
		}
		if s.Config.Labels == nil {
			s.Config.Labels = map[string]string{}
		}
		s.Config.Labels[k] = val
		return nil
	}},
	{long: "memory", short: 'm', set: func(s *runSpec, v string) error {
		n, err := parseSize(v)
		if err != nil {
			return err
		}
		s.Host.Memory = n
		return nil
	}},
	{long: "shm-size", set: func(s *runSpec, v string) error {
		n, err := parseSize(v)
		if err != nil {
			return err
		}
		s.Host.ShmSize = n
		return nil
	}},
	{long: "cpus", set: func(s *runSpec, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0 && f <= 1e6) {
			return fmt.Errorf("%q is not a positive number of CPUs (e.g. 1.5)", v)
		}
		s.Host.NanoCPUs = int64(math.Round(f * 1e9))
		return nil
	}},
	{long: "ulimit", set: setUlimit},
	{long: "tmpfs", set: func(s *runSpec, v string) error {
		dst, opts, _ := strings.Cut(v, ":")
		if !path.IsAbs(dst) {
			return fmt.Errorf("%q: the tmpfs mount point must be an absolute path", v)
		}
		if s.Host.Tmpfs == nil {
			s.Host.Tmpfs = map[string]string{}
		}
		s.Host.Tmpfs[dst] = opts
		return nil
	}},
	{long: "device", set: setDevice},
	{long: "log-driver", set: func(s *runSpec, v string) error { s.Host.LogConfig.Type = v; return nil }},
	{long: "log-opt", set: func(s *runSpec, v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q: a log option is name=value", v)
		}
		if s.Host.LogConfig.Config == nil {
			s.Host.LogConfig.Config = map[string]string{}
		}
		s.Host.LogConfig.Config[k] = val
		return nil
	}},
	{long: "sysctl", set: func(s *runSpec, v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q: a sysctl is name=value", v)
		}
		if s.Host.Sysctls == nil {
			s.Host.Sysctls = map[string]string{}
		}
		s.Host.Sysctls[k] = val
		return nil
	}},
	{long: "pid", set: func(s *runSpec, v string) error { s.Host.PidMode = container.PidMode(v); return nil }},
	{long: "ipc", set: func(s *runSpec, v string) error { s.Host.IpcMode = container.IpcMode(v); return nil }},
	{long: "stop-signal", set: func(s *runSpec, v string) error {
		if v == "" {
			return errors.New("empty signal")
		}
		s.Config.StopSignal = v
		return nil
	}},
	{long: "stop-timeout", set: func(s *runSpec, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return fmt.Errorf("%q is not a number of seconds (-1 waits forever)", v)
		}
		s.Config.StopTimeout = &n
		return nil
	}},
}

var (
	longFlags  = map[string]*flagDef{}
	shortFlags = map[byte]*flagDef{}
)

func init() {
	for i := range runFlags {
		f := &runFlags[i]
		longFlags[f.long] = f
		for _, a := range f.aliases {
			longFlags[a] = f
		}
		if f.short != 0 {
			shortFlags[f.short] = f
		}
	}
}

// parseRunArgs reads the docker-run flags of run_args. Both "--flag value"
// and "--flag=value" are accepted, short flags may carry their value
// ("-p80:80") and booleans may be combined ("-it").
func parseRunArgs(s string) (*runSpec, error) {
	words, err := splitWords(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRunArgs, err)
	}
	return parseRunWords(words)
}

func parseRunWords(words []string) (*runSpec, error) {
	spec := &runSpec{}
	fail := func(flag string, err error) (*runSpec, error) {
		return nil, fmt.Errorf("%w: %s: %w", ErrRunArgs, flag, err)
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case strings.HasPrefix(w, "--") && len(w) > 2:
			name, val, hasVal := strings.Cut(w[2:], "=")
			f := longFlags[name]
			if f == nil {
				return nil, fmt.Errorf("%w: unknown flag --%s (vigil accepts the docker-run flags listed in the container.docker help; the image goes in run_image, the command in run_command)", ErrRunArgs, name)
			}
			if f.boolean {
				if !hasVal {
					val = "true"
				} else if b, err := normBool(val); err != nil {
					return fail("--"+name, err)
				} else {
					val = b
				}
			} else if !hasVal {
				if i+1 >= len(words) {
					return fail("--"+name, errors.New("missing value"))
				}
				i++
				val = words[i]
			}
			if err := f.set(spec, val); err != nil {
				return fail("--"+name, err)
			}
		case strings.HasPrefix(w, "-") && len(w) > 1 && w != "--":
			// A run of one-letter flags: booleans until one takes a value,
			// which is the rest of the word or the next word.
			for j := 1; j < len(w); j++ {
				f := shortFlags[w[j]]
				if f == nil {
					return nil, fmt.Errorf("%w: unknown flag -%c in %q (vigil accepts the docker-run flags listed in the container.docker help)", ErrRunArgs, w[j], w)
				}
				flag := "-" + string(w[j])
				if f.boolean {
					val := "true"
					if j+1 < len(w) && w[j+1] == '=' {
						v, err := normBool(w[j+2:])
						if err != nil {
							return fail(flag, err)
						}
						val, j = v, len(w)
					}
					if err := f.set(spec, val); err != nil {
						return fail(flag, err)
					}
					continue
				}
				var val string
				switch {
				case j+1 < len(w):
					val = strings.TrimPrefix(w[j+1:], "=")
				case i+1 < len(words):
					i++
					val = words[i]
				default:
					return fail(flag, errors.New("missing value"))
				}
				if err := f.set(spec, val); err != nil {
					return fail(flag, err)
				}
				break
			}
		default:
			return nil, fmt.Errorf("%w: unexpected argument %q: run_args takes docker-run flags only; put the image in run_image and the command in run_command", ErrRunArgs, w)
		}
	}
	return spec, nil
}

func normBool(v string) (string, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return "", fmt.Errorf("%q is not true or false", v)
	}
	return strconv.FormatBool(b), nil
}

func setVolume(s *runSpec, v string) error {
	parts := strings.Split(v, ":")
	switch len(parts) {
	case 1:
		// An anonymous volume, as "docker run -v /data".
		if !path.IsAbs(v) {
			return fmt.Errorf("%q: the mount point must be an absolute path", v)
		}
		if s.Config.Volumes == nil {
			s.Config.Volumes = map[string]struct{}{}
		}
		s.Config.Volumes[v] = struct{}{}
		return nil
	case 2, 3:
		if parts[0] == "" {
			return fmt.Errorf("%q: empty source (use /host/path:/mount/point or volume:/mount/point)", v)
		}
		if !path.IsAbs(parts[1]) {
			return fmt.Errorf("%q: the mount point %q must be an absolute path", v, parts[1])
		}
		s.Host.Binds = append(s.Host.Binds, v)
		return nil
	}
	return fmt.Errorf("%q: too many ':' (use source:destination[:options])", v)
}

func setEnv(s *runSpec, v string) error {
	k, _, ok := strings.Cut(v, "=")
	if k == "" {
		return fmt.Errorf("%q: a variable needs a name (NAME=value)", v)
	}
	if !ok {
		// docker run would copy the variable from the client's environment;
		// here that is vigild's, which is never what the operator meant.
		return fmt.Errorf("%q: give a value (-e %s=value); vigil does not pass its own environment", v, k)
	}
	s.Config.Env = append(s.Config.Env, v)
	return nil
}

// setPublish reads [ip:][hostPort:]containerPort[/proto], where the ports
// may be ranges and an IPv6 address is written in brackets.
func setPublish(s *runSpec, v string) error {
	rest, proto, err := cutProto(v)
	if err != nil {
		return err
	}
	var ip netip.Addr
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return fmt.Errorf("%q: an IPv6 address is written [addr]:hostPort:containerPort", v)
		}
		a, err := netip.ParseAddr(rest[1:end])
		if err != nil || !a.Is6() {
			return fmt.Errorf("%q: %q is not an IPv6 address", v, rest[1:end])
		}
		ip, rest = a, rest[end+2:]
		if !strings.Contains(rest, ":") {
			return fmt.Errorf("%q: give hostPort:containerPort after the address", v)
		}
	}
	parts := strings.Split(rest, ":")
	var hostPart, ctrPart string
	switch len(parts) {
	case 1:
		ctrPart = parts[0]
	case 2:
		hostPart, ctrPart = parts[0], parts[1]
	case 3:
		if ip.IsValid() {
			return fmt.Errorf("%q: too many ':'", v)
		}
		a, err := netip.ParseAddr(parts[0])
		if err != nil {
			return fmt.Errorf("%q: %q is not an IP address", v, parts[0])
		}
		ip, hostPart, ctrPart = a, parts[1], parts[2]
	default:
		return fmt.Errorf("%q: use [ip:][hostPort:]containerPort[/proto]", v)
	}
	ctr, err := network.ParsePortRange(ctrPart + "/" + proto)
	if err != nil || ctr.Start() == 0 {
		return fmt.Errorf("%q: container port %q: use a port (80) or a range (8000-8010)", v, ctrPart)
	}
	var hostStart, hostEnd uint16
	if hostPart != "" {
		h, err := network.ParsePortRange(hostPart + "/" + proto)
		if err != nil {
			return fmt.Errorf("%q: host port %q: use a port (8080) or a range (8000-8010)", v, hostPart)
		}
		hostStart, hostEnd = h.Start(), h.End()
	}
	ctrCount := int(ctr.End()) - int(ctr.Start()) + 1
	hostCount := int(hostEnd) - int(hostStart) + 1
	if hostPart != "" && ctrCount > 1 && hostCount != ctrCount {
		return fmt.Errorf("%q: the host and container port ranges differ in size", v)
	}
	if s.Config.ExposedPorts == nil {
		s.Config.ExposedPorts = network.PortSet{}
	}
	if s.Host.PortBindings == nil {
		s.Host.PortBindings = network.PortMap{}
	}
	i := 0
	for p := range ctr.All() {
		s.Config.ExposedPorts[p] = struct{}{}
		b := network.PortBinding{HostIP: ip}
		switch {
		case hostPart == "":
		case ctrCount == 1 && hostCount > 1:
			// One container port on the first free port of a host range.
			b.HostPort = hostPart
		default:
			b.HostPort = strconv.Itoa(int(hostStart) + i)
		}
		s.Host.PortBindings[p] = append(s.Host.PortBindings[p], b)
		i++
	}
	return nil
}

// cutProto splits "80/udp" into "80" and "udp"; the protocol defaults to tcp.
func cutProto(v string) (ports, proto string, err error) {
	ports, proto = v, "tcp"
	if i := strings.LastIndexByte(v, '/'); i >= 0 {
		ports, proto = v[:i], strings.ToLower(v[i+1:])
	}
	switch proto {
	case "tcp", "udp", "sctp":
		return ports, proto, nil
	}
	return "", "", fmt.Errorf("%q: protocol %q is not tcp, udp or sctp", v, proto)
}

func setExpose(s *runSpec, v string) error {
	ports, proto, err := cutProto(v)
	if err != nil {
		return err
	}
	r, err := network.ParsePortRange(ports + "/" + proto)
	if err != nil || r.Start() == 0 {
		return fmt.Errorf("%q: use a port or a range, with an optional /tcp, /udp or /sctp", v)
	}
	if s.Config.ExposedPorts == nil {
		s.Config.ExposedPorts = network.PortSet{}
	}
	for p := range r.All() {
		s.Config.ExposedPorts[p] = struct{}{}
	}
	return nil
}

func setRestart(s *runSpec, v string) error {
	name, count, hasCount := strings.Cut(v, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch p.Name {
	case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if hasCount {
			return fmt.Errorf("%q: only on-failure takes a retry count", v)
		}
	case container.RestartPolicyOnFailure:
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return fmt.Errorf("%q: the retry count must be a non-negative number", v)
			}
			p.MaximumRetryCount = n
		}
	default:
		return fmt.Errorf("%q: use no, always, unless-stopped or on-failure[:N]", v)
	}
	s.Host.RestartPolicy = p
	return nil
}

func setAddHost(s *runSpec, v string) error {
	// docker accepts host:ip and host=ip; the daemon wants host:ip.
	sep := strings.IndexAny(v, "=:")
	if sep <= 0 {
		return fmt.Errorf("%q: use host:ip", v)
	}
	host, addr := v[:sep], v[sep+1:]
	if addr != "host-gateway" {
		if _, err := netip.ParseAddr(strings.Trim(addr, "[]")); err != nil {
			return fmt.Errorf("%q: %q is not an IP address (or host-gateway)", v, addr)
		}
	}
	s.Host.ExtraHosts = append(s.Host.ExtraHosts, host+":"+addr)
	return nil
}

func setUlimit(s *runSpec, v string) error {
	name, limits, ok := strings.Cut(v, "=")
	if !ok || !knownUlimits[name] {
		return fmt.Errorf("%q: use name=soft[:hard], name one of core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack", v)
	}
	softS, hardS, hasHard := strings.Cut(limits, ":")
	soft, err := strconv.ParseInt(softS, 10, 64)
	if err != nil || soft < -1 {
		return fmt.Errorf("%q: %q is not a limit (a number, -1 for unlimited)", v, softS)
	}
	hard := soft
	if hasHard {
		if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil || hard < -1 {
			return fmt.Errorf("%q: %q is not a limit (a number, -1 for unlimited)", v, hardS)
		}
		if hard != -1 && (soft == -1 || soft > hard) {
			return fmt.Errorf("%q: the soft limit exceeds the hard limit", v)
		}
	}
	s.Host.Ulimits = append(s.Host.Ulimits, &container.Ulimit{Name: name, Soft: soft, Hard: hard})
	return nil
}

var knownUlimits = map[string]bool{
	"core": true, "cpu": true, "data": true, "fsize": true, "locks": true, "memlock": true,
	"msgqueue": true, "nice": true, "nofile": true, "nproc": true, "rss": true, "rtprio": true,
	"rttime": true, "sigpending": true, "stack": true,
}

// setDevice reads host[:container][:permissions], as docker run does.
func setDevice(s *runSpec, v string) error {
	parts := strings.Split(v, ":")
	d := container.DeviceMapping{PathOnHost: parts[0], CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
	case 2:
		if validDeviceMode(parts[1]) {
			d.CgroupPermissions = parts[1]
		} else {
			d.PathInContainer = parts[1]
		}
	case 3:
		if !validDeviceMode(parts[2]) {
			return fmt.Errorf("%q: permissions %q are not a combination of r, w and m", v, parts[2])
		}
		d.PathInContainer, d.CgroupPermissions = parts[1], parts[2]
	default:
		return fmt.Errorf("%q: use host[:container][:permissions]", v)
	}
	if !path.IsAbs(d.PathOnHost) {
		return fmt.Errorf("%q: the host device must be an absolute path", v)
	}
	if d.PathInContainer == "" {
		d.PathInContainer = d.PathOnHost
	}
	if !path.IsAbs(d.PathInContainer) {
		return fmt.Errorf("%q: the container device must be an absolute path", v)
	}
	s.Host.Devices = append(s.Host.Devices, d)
	return nil
}

func validDeviceMode(m string) bool {
	if m == "" || len(m) > 3 {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range m {
		if (c != 'r' && c != 'w' && c != 'm') || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// parseSize reads a size as docker run does: a number of bytes with an
// optional binary unit, b, k, m, g, t or p ("512m", "1.5g", "1GiB").
func parseSize(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	s = strings.TrimSuffix(s, "b")
	s = strings.TrimSuffix(s, "i")
	mult := 1.0
	if s != "" {
		if i := strings.IndexByte("kmgtp", s[len(s)-1]); i >= 0 {
			mult = math.Pow(1024, float64(i+1))
			s = s[:len(s)-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512m, 2g)", v)
	}
	return int64(f * mult), nil
}
