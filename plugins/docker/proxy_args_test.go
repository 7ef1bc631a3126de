package docker

import (
	"slices"
	"testing"
)

// The plugin's proxy is given to dockerd unless the service chose about
// the proxy itself, or brought a config file that may.
func TestDockerdArgs_UserlandProxy(t *testing.T) {
	p := pathsFor("/run/vigil/services/s")
	for _, tc := range []struct {
		name      string
		proxy     string
		extra     []string
		wantProxy bool
	}{
		{"default", "/usr/lib/vigil/plugins/vigil-plugin-docker", []string{"--ip", "10.0.0.5"}, true},
		{"proxy on, said so", "/p", []string{"--userland-proxy=true"}, true},
		{"proxy off", "/p", []string{"--userland-proxy=false"}, false},
		{"its own proxy", "/p", []string{"--userland-proxy-path", "/usr/local/bin/myproxy"}, false},
		{"its own proxy, one word", "/p", []string{"--userland-proxy-path=/usr/local/bin/myproxy"}, false},
		{"a config file of its own", "/p", []string{"--config-file", "/etc/svc/daemon.json"}, false},
		{"no plugin proxy configured", "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := dockerdArgs(p, "s", "/srv/data", tc.proxy, tc.extra)
			i := slices.Index(args, "--userland-proxy-path")
			got := i >= 0 && i+1 < len(args) && args[i+1] == tc.proxy
			if got != tc.wantProxy {
				t.Errorf("args %q: plugin proxy given = %v, want %v", args, got, tc.wantProxy)
			}
			if !slices.Equal(args[len(args)-len(tc.extra):], tc.extra) {
				t.Errorf("args %q do not end with docker_daemon_args %q", args, tc.extra)
			}
		})
	}
}
