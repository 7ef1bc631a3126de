package docker

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// quoteWord quotes w so that splitWords reads it back as one word.
func quoteWord(w string) string {
	if w == "" {
		return "''"
	}
	if !strings.ContainsAny(w, " \t\n\r\\'\"") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "   \t\n ", want: nil},
		{in: "a b  c", want: []string{"a", "b", "c"}},
		{in: `-e "A=b c"`, want: []string{"-e", "A=b c"}},
		{in: `-e 'A=$HOME "x"'`, want: []string{"-e", `A=$HOME "x"`}},
		{in: `-e A="it's"`, want: []string{"-e", "A=it's"}},
		{in: `"a\"b\\c\$d\e"`, want: []string{`a"b\c$d\e`}},
		{in: `a\ b`, want: []string{"a b"}},
		{in: "a\\\nb", want: []string{"ab"}},
		{in: `'' ""`, want: []string{"", ""}},
		{in: `x''y`, want: []string{"xy"}},
		{in: `sh -c 'while true; do date; sleep 1; done'`, want: []string{"sh", "-c", "while true; do date; sleep 1; done"}},
		{in: `'unterminated`, wantErr: true},
		{in: `"unterminated`, wantErr: true},
		{in: `trailing\`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := splitWords(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("splitWords(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr && !slices.Equal(got, tt.want) {
				t.Fatalf("splitWords(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func port(s string) network.Port { return network.MustParsePort(s) }

func TestParseRunArgs_Accepts(t *testing.T) {
	three := 3
	yes := true
	tests := []struct {
		name  string
		args  string
		check func(t *testing.T, s *runSpec)
	}{
		{"empty", "", func(t *testing.T, s *runSpec) {
			if !reflect.DeepEqual(*s, runSpec{}) {
				t.Errorf("spec = %+v, want zero", *s)
			}
		}},
		{"seed registry", "-v /opt/registry.opensvc.com/registrydata:/registrydata -e STORAGE_PATH=/registrydata -p 5000:5000", func(t *testing.T, s *runSpec) {
			wantBinds(t, s, "/opt/registry.opensvc.com/registrydata:/registrydata")
			wantEnv(t, s, "STORAGE_PATH=/registrydata")
			wantBinding(t, s, "5000/tcp", network.PortBinding{HostPort: "5000"})
			if _, ok := s.Config.ExposedPorts[port("5000/tcp")]; !ok {
				t.Errorf("5000/tcp not exposed: %v", s.Config.ExposedPorts)
			}
		}},
		{"long forms with =", "--volume=/a:/b:ro --env=A=1 --publish=8080:80", func(t *testing.T, s *runSpec) {
			wantBinds(t, s, "/a:/b:ro")
			wantEnv(t, s, "A=1")
			wantBinding(t, s, "80/tcp", network.PortBinding{HostPort: "8080"})
		}},
		{"short attached values", "-v/a:/b -eA=1 -p8080:80", func(t *testing.T, s *runSpec) {
			wantBinds(t, s, "/a:/b")
			wantEnv(t, s, "A=1")
			wantBinding(t, s, "80/tcp", network.PortBinding{HostPort: "8080"})
		}},
		{"anonymous volume", "-v /data", func(t *testing.T, s *runSpec) {
			if _, ok := s.Config.Volumes["/data"]; !ok || len(s.Host.Binds) != 0 {
				t.Errorf("volumes %v binds %v", s.Config.Volumes, s.Host.Binds)
			}
		}},
		{"named volume", "-v data:/data", func(t *testing.T, s *runSpec) { wantBinds(t, s, "data:/data") }},
		{"env with spaces and equals", `-e "MSG=hello world" -e 'X=a=b'`, func(t *testing.T, s *runSpec) {
			wantEnv(t, s, "MSG=hello world", "X=a=b")
		}},
		{"publish ip host container udp", "-p 127.0.0.1:53:5353/udp", func(t *testing.T, s *runSpec) {
			wantBinding(t, s, "5353/udp", network.PortBinding{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "53"})
		}},
		{"publish ip random host port", "-p 10.0.0.1::80", func(t *testing.T, s *runSpec) {
			wantBinding(t, s, "80/tcp", network.PortBinding{HostIP: netip.MustParseAddr("10.0.0.1")})
		}},
		{"publish ipv6", "-p [::1]:8080:80", func(t *testing.T, s *runSpec) {
			wantBinding(t, s, "80/tcp", network.PortBinding{HostIP: netip.MustParseAddr("::1"), HostPort: "8080"})
		}},
		{"publish container only", "-p 80", func(t *testing.T, s *runSpec) {
			wantBinding(t, s, "80/tcp", network.PortBinding{})
		}},
		{"publish ranges", "-p 8000-8001:9000-9001", func(t *testing.T, s *runSpec) {
			wantBinding(t, s, "9000/tcp", network.PortBinding{HostPort: "8000"})
			wantBinding(t, s, "9001/tcp", network.PortBinding{HostPort: "8001"})
		}},
		{"publish host range one container port", "-p 8000-8010:80", func(t *testing.T, s *runSpec) {
			wantBinding(t, s, "80/tcp", network.PortBinding{HostPort: "8000-8010"})
		}},
		{"publish twice same port", "-p 80:80 -p 81:80", func(t *testing.T, s *runSpec) {
			if n := len(s.Host.PortBindings[port("80/tcp")]); n != 2 {
				t.Errorf("%d bindings, want 2", n)
			}
		}},
		{"expose", "--expose 7000-7001/udp --expose 22", func(t *testing.T, s *runSpec) {
			for _, p := range []string{"7000/udp", "7001/udp", "22/tcp"} {
				if _, ok := s.Config.ExposedPorts[port(p)]; !ok {
					t.Errorf("%s not exposed: %v", p, s.Config.ExposedPorts)
				}
			}
		}},
		{"network aliases", "--net host", func(t *testing.T, s *runSpec) {
			if s.Host.NetworkMode != "host" {
				t.Errorf("network %q", s.Host.NetworkMode)
			}
		}},
		{"network", "--network=container:db", func(t *testing.T, s *runSpec) {
			if s.Host.NetworkMode != "container:db" {
				t.Errorf("network %q", s.Host.NetworkMode)
			}
		}},
		{"restart on-failure count", "--restart on-failure:3", func(t *testing.T, s *runSpec) {
			if s.Host.RestartPolicy != (container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}) {
				t.Errorf("restart %+v", s.Host.RestartPolicy)
			}
		}},
		{"restart unless-stopped", "--restart=unless-stopped", func(t *testing.T, s *runSpec) {
			if s.Host.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
				t.Errorf("restart %+v", s.Host.RestartPolicy)
			}
		}},
		{"entrypoint workdir user hostname", "--entrypoint /bin/sh -w /srv -u 1000:1000 -h web1", func(t *testing.T, s *runSpec) {
			c := s.Config
			if !slices.Equal(c.Entrypoint, []string{"/bin/sh"}) || c.WorkingDir != "/srv" || c.User != "1000:1000" || c.Hostname != "web1" {
				t.Errorf("config %+v", c)
			}
		}},
		{"empty entrypoint resets", `--entrypoint ""`, func(t *testing.T, s *runSpec) {
			if !slices.Equal(s.Config.Entrypoint, []string{""}) {
				t.Errorf("entrypoint %q", s.Config.Entrypoint)
			}
		}},
		{"booleans", "--privileged --read-only --init", func(t *testing.T, s *runSpec) {
			if !s.Host.Privileged || !s.Host.ReadonlyRootfs || s.Host.Init == nil || !*s.Host.Init {
				t.Errorf("host %+v", s.Host)
			}
		}},
		{"boolean false", "--privileged=false --init=0", func(t *testing.T, s *runSpec) {
			if s.Host.Privileged || s.Host.Init == nil || *s.Host.Init {
				t.Errorf("privileged %v init %v", s.Host.Privileged, s.Host.Init)
			}
		}},
		{"combined short booleans", "-it", func(t *testing.T, s *runSpec) {
			if !s.Config.Tty || !s.Config.OpenStdin {
				t.Errorf("tty %v stdin %v", s.Config.Tty, s.Config.OpenStdin)
			}
		}},
		{"combined booleans then value", "-dtp 80:80", func(t *testing.T, s *runSpec) {
			if !s.Config.Tty {
				t.Error("tty not set")
			}
			wantBinding(t, s, "80/tcp", network.PortBinding{HostPort: "80"})
		}},
		{"rm false is harmless", "--rm=false", func(*testing.T, *runSpec) {}},
		{"caps and security", "--cap-add NET_ADMIN --cap-add SYS_TIME --cap-drop ALL --security-opt no-new-privileges", func(t *testing.T, s *runSpec) {
			if !slices.Equal(s.Host.CapAdd, []string{"NET_ADMIN", "SYS_TIME"}) || !slices.Equal(s.Host.CapDrop, []string{"ALL"}) ||
				!slices.Equal(s.Host.SecurityOpt, []string{"no-new-privileges"}) {
				t.Errorf("host %+v", s.Host)
			}
		}},
		{"add-host both separators", "--add-host db:10.0.0.2 --add-host=gw=host-gateway --add-host v6:::1", func(t *testing.T, s *runSpec) {
			if !slices.Equal(s.Host.ExtraHosts, []string{"db:10.0.0.2", "gw:host-gateway", "v6:::1"}) {
				t.Errorf("extra hosts %q", s.Host.ExtraHosts)
			}
		}},
		{"dns", "--dns 1.1.1.1 --dns-search example.com --dns-option ndots:2", func(t *testing.T, s *runSpec) {
			if !slices.Equal(s.Host.DNS, []netip.Addr{netip.MustParseAddr("1.1.1.1")}) || s.Host.DNSSearch[0] != "example.com" || s.Host.DNSOptions[0] != "ndots:2" {
				t.Errorf("dns %v %v %v", s.Host.DNS, s.Host.DNSSearch, s.Host.DNSOptions)
			}
		}},
		{"labels", "-l a=1 --label b --label=c=x=y", func(t *testing.T, s *runSpec) {
			if !reflect.DeepEqual(s.Config.Labels, map[string]string{"a": "1", "b": "", "c": "x=y"}) {
				t.Errorf("labels %v", s.Config.Labels)
			}
		}},
		{"memory cpus shm", "-m 512m --cpus 1.5 --shm-size=1g", func(t *testing.T, s *runSpec) {
			if s.Host.Memory != 512<<20 || s.Host.NanoCPUs != 1_500_000_000 || s.Host.ShmSize != 1<<30 {
				t.Errorf("memory %d cpus %d shm %d", s.Host.Memory, s.Host.NanoCPUs, s.Host.ShmSize)
			}
		}},
		{"ulimit", "--ulimit nofile=1024:2048 --ulimit core=-1", func(t *testing.T, s *runSpec) {
			want := []*container.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}, {Name: "core", Soft: -1, Hard: -1}}
			if !reflect.DeepEqual(s.Host.Ulimits, want) {
				t.Errorf("ulimits %+v", s.Host.Ulimits)
			}
		}},
		{"tmpfs", "--tmpfs /run --tmpfs /tmp:rw,size=64m", func(t *testing.T, s *runSpec) {
			if !reflect.DeepEqual(s.Host.Tmpfs, map[string]string{"/run": "", "/tmp": "rw,size=64m"}) {
				t.Errorf("tmpfs %v", s.Host.Tmpfs)
			}
		}},
		{"devices", "--device /dev/fuse --device /dev/sda:/dev/xvda --device /dev/sdb:r --device /dev/sdc:/dev/sdc:rw", func(t *testing.T, s *runSpec) {
			want := []container.DeviceMapping{
				{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"},
				{PathOnHost: "/dev/sda", PathInContainer: "/dev/xvda", CgroupPermissions: "rwm"},
				{PathOnHost: "/dev/sdb", PathInContainer: "/dev/sdb", CgroupPermissions: "r"},
				{PathOnHost: "/dev/sdc", PathInContainer: "/dev/sdc", CgroupPermissions: "rw"},
			}
			if !reflect.DeepEqual(s.Host.Devices, want) {
				t.Errorf("devices %+v", s.Host.Devices)
			}
		}},
		{"logging", "--log-driver json-file --log-opt max-size=10m --log-opt max-file=3", func(t *testing.T, s *runSpec) {
			want := container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}}
			if !reflect.DeepEqual(s.Host.LogConfig, want) {
				t.Errorf("log config %+v", s.Host.LogConfig)
			}
		}},
		{"stop signal and timeout", "--stop-signal SIGINT --stop-timeout 3", func(t *testing.T, s *runSpec) {
			if s.Config.StopSignal != "SIGINT" || !reflect.DeepEqual(s.Config.StopTimeout, &three) {
				t.Errorf("stop %q %v", s.Config.StopSignal, s.Config.StopTimeout)
			}
		}},
		{"sysctl pid ipc", "--sysctl net.core.somaxconn=1024 --pid host --ipc=shareable", func(t *testing.T, s *runSpec) {
			if s.Host.Sysctls["net.core.somaxconn"] != "1024" || s.Host.PidMode != "host" || s.Host.IpcMode != "shareable" {
				t.Errorf("host %+v", s.Host)
			}
		}},
		{"init pointer", "--init=true", func(t *testing.T, s *runSpec) {
			if !reflect.DeepEqual(s.Host.Init, &yes) {
				t.Errorf("init %v", s.Host.Init)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseRunArgs(tt.args)
			if err != nil {
				t.Fatalf("parseRunArgs(%q): %v", tt.args, err)
			}
			tt.check(t, s)
		})
	}
}

func TestParseRunArgs_Rejects(t *testing.T) {
	tests := []struct {
		name, args, wantInErr string
	}{
		{"unknown long flag", "--frobnicate 3", "--frobnicate"},
		{"unknown long flag with value", "--frobnicate=3", "--frobnicate"},
		{"unknown short flag", "-Z", "-Z"},
		{"unknown short flag in a run", "-itZ", "-Z"},
		{"name is managed", "--name web", "managed by vigil"},
		{"rm is managed", "--rm", "removes the container"},
		{"positional image", "-p 80:80 nginx", `unexpected argument "nginx"`},
		{"double dash", "--", "unexpected argument"},
		{"missing value", "-v", "missing value"},
		{"missing long value", "-e A=1 --publish", "--publish: missing value"},
		{"env without value", "-e HOME", "give a value"},
		{"env without name", "-e =x", "needs a name"},
		{"relative mount point", "-v /a:b", "absolute path"},
		{"too many colons in volume", "-v /a:/b:ro:x", "too many"},
		{"bad port", "-p 80:http", "container port"},
		{"bad host port", "-p x:80", "host port"},
		{"port zero", "-p 0", "container port"},
		{"bad protocol", "-p 80/icmp", "protocol"},
		{"bad ip", "-p 300.1.1.1:80:80", "not an IP"},
		{"range size mismatch", "-p 8000-8002:9000-9001", "ranges differ"},
		{"bad restart", "--restart sometimes", "on-failure"},
		{"count on always", "--restart always:3", "only on-failure"},
		{"bad bool", "--privileged=maybe", "not true or false"},
		{"bad short bool", "-t=maybe", "not true or false"},
		{"bad memory", "-m lots", "not a size"},
		{"bad cpus", "--cpus -1", "positive"},
		{"nan cpus", "--cpus NaN", "positive"},
		{"bad ulimit name", "--ulimit foo=1", "name=soft"},
		{"soft over hard", "--ulimit nofile=10:5", "exceeds"},
		{"bad dns", "--dns example.com", "not an IP"},
		{"bad add-host", "--add-host db", "host:ip"},
		{"bad add-host ip", "--add-host db:nope", "not an IP"},
		{"bad device mode", "--device /dev/a:/dev/b:rx", "permissions"},
		{"relative workdir", "-w srv", "absolute"},
		{"bad log-opt", "--log-opt max-size", "name=value"},
		{"bad stop-timeout", "--stop-timeout soon", "seconds"},
		{"unterminated quote", `-e "A=1`, "never closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRunArgs(tt.args)
			if err == nil {
				t.Fatalf("parseRunArgs(%q) succeeded, want an error containing %q", tt.args, tt.wantInErr)
			}
			if !errors.Is(err, ErrRunArgs) {
				t.Errorf("error %v does not wrap ErrRunArgs", err)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantInErr)
			}
		})
	}
}

func TestValidate_ReportsFieldErrors(t *testing.T) {
	d := New(Config{})
	r := sdk.Resource{
		RID:      "container#1",
		Keywords: map[string]string{KwRunImage: "busybox", KwRunArgs: "--bogus", KwRunCommand: "sh -c 'x"},
		Service: sdk.Service{Name: "svc", Keywords: map[string]string{
			KwDockerDataDir: "relative/dir", KwDockerDaemonArgs: "--ip 10.0.0.1 -H tcp://0.0.0.0:2375",
		}},
	}
	got := map[string]string{}
	for _, e := range d.Validate(context.Background(), r) {
		got[e.Keyword] = e.Message
	}
	for kw, want := range map[string]string{
		KwRunArgs: "--bogus", KwRunCommand: "never closed", KwDockerDataDir: "absolute", KwDockerDaemonArgs: "-H is set by vigil",
	} {
		if !strings.Contains(got[kw], want) {
			t.Errorf("Validate error for %s = %q, want it to contain %q (all: %v)", kw, got[kw], want, got)
		}
	}
	if strings.Contains(got[KwRunArgs], ErrRunArgs.Error()) {
		t.Errorf("run_args message repeats the keyword: %q", got[KwRunArgs])
	}

	r.Keywords = map[string]string{KwRunImage: "busybox", KwRunArgs: "-p 80:80"}
	r.Service.Keywords = map[string]string{KwDockerDataDir: "/srv/docker", KwDockerDaemonArgs: "--ip 37.59.71.24"}
	if errs := d.Validate(context.Background(), r); len(errs) != 0 {
		t.Errorf("Validate of a good resource = %v", errs)
	}
}

func TestCheckDaemonArgs(t *testing.T) {
	for _, bad := range []string{"--data-root=/x", "-g", "--exec-root", "-p", "-p/x.pid", "--pidfile", "-Hunix:///x", "--host=tcp://", "--containerd-namespace"} {
		if checkDaemonArgs([]string{bad}) == nil {
			t.Errorf("checkDaemonArgs(%q) accepted a managed flag", bad)
		}
	}
	for _, ok := range []string{"--ip", "37.59.71.24", "--bridge=none", "--iptables=false", "--debug", "--log-level=warn"} {
		if err := checkDaemonArgs([]string{ok}); err != nil {
			t.Errorf("checkDaemonArgs(%q): %v", ok, err)
		}
	}
}

func TestContainerName(t *testing.T) {
	if got := ContainerName("registry.opensvc.com", "container#1"); got != "registry.opensvc.com.container.1" {
		t.Errorf("ContainerName = %q", got)
	}
	if got := SocketPath("/var/run/vigil/svc/busybox"); got != "/var/run/vigil/svc/busybox/docker/docker.sock" {
		t.Errorf("SocketPath = %q", got)
	}
}

func wantBinds(t *testing.T, s *runSpec, binds ...string) {
	t.Helper()
	if !slices.Equal(s.Host.Binds, binds) {
		t.Errorf("binds = %q, want %q", s.Host.Binds, binds)
	}
}

func wantEnv(t *testing.T, s *runSpec, env ...string) {
	t.Helper()
	if !slices.Equal(s.Config.Env, env) {
		t.Errorf("env = %q, want %q", s.Config.Env, env)
	}
}

func wantBinding(t *testing.T, s *runSpec, p string, b network.PortBinding) {
	t.Helper()
	got := s.Host.PortBindings[port(p)]
	if !slices.Contains(got, b) {
		t.Errorf("bindings of %s = %+v, want %+v among them", p, got, b)
	}
}

func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"", "a b", `-e "A=b c"`, `'x'"y"\ z`, "a\\\nb", `"\$\\\""`, `'`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitWords(s)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = quoteWord(w)
		}
		again, err := splitWords(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("re-splitting the quoted words of %q: %v", s, err)
		}
		if !slices.Equal(words, again) {
			t.Fatalf("round trip of %q: %q then %q", s, words, again)
		}
	})
}

func FuzzParseRunArgs(f *testing.F) {
	for _, s := range []string{
		"-v /a:/b -e A=1 -p 5000:5000", "-itp 80:80", "--publish=[::1]:80:80/udp", "-p 1.2.3.4::80-81",
		"--ulimit nofile=1:2", "--device /dev/a:r", "-m 1.5g --cpus .5", "--restart on-failure:2", "--add-host a=::1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := parseRunArgs(s)
		if err != nil {
			if !errors.Is(err, ErrRunArgs) {
				t.Fatalf("parseRunArgs(%q) error %v does not wrap ErrRunArgs", s, err)
			}
			return
		}
		if spec == nil {
			t.Fatalf("parseRunArgs(%q) returned neither a spec nor an error", s)
		}
		for p, bs := range spec.Host.PortBindings {
			if _, ok := spec.Config.ExposedPorts[p]; !ok || len(bs) == 0 {
				t.Fatalf("parseRunArgs(%q): published port %v not exposed", s, p)
			}
		}
	})
}
