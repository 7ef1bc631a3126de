package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestNodeConfig_FenceLevelsAreTriedInLevelOrder(t *testing.T) {
	text := twoNodes + `
[stonith#pdu-n1]
type = fence_agent
node = n1
level = 2
agent = fence_apc

[stonith#n1]
type = ipmi
host = 10.0.1.1

[stonith#n2]
type = ipmi
host = 10.0.1.2
`
	c, err := LoadNodeConfig(writeConf(t, text), pluginKeywords)
	if err != nil {
		t.Fatal(err)
	}
	levels := c.FenceLevels["n1"]
	if len(levels) != 2 || levels[0].Name != "stonith#n1" || levels[1].Name != "stonith#pdu-n1" || levels[1].Type != "stonith.fence_agent" {
		t.Fatalf("n1's levels: %+v", levels)
	}
	if c.Stonith["n1"].Name != "stonith#n1" {
		t.Errorf("Stonith[n1] = %+v, want the first level", c.Stonith["n1"])
	}
	if _, ok := levels[1].Keywords["node"]; ok {
		t.Errorf("node keyword handed to the plugin: %v", levels[1].Keywords)
	}
	if c.FenceCheckInterval != 60*time.Second {
		t.Errorf("fence_check_interval default = %s, want 60s", c.FenceCheckInterval)
	}
}

func TestNodeConfig_OpsRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"two methods on one level", "[stonith#n1]\ntype = ipmi\n\n[stonith#b]\ntype = ipmi\nnode = n1\n", "level 1 for n1 too"},
		{"level zero", "[stonith#n1]\ntype = ipmi\nlevel = 0\n", "levels start at 1"},
		{"method for a node not in the list", "[stonith#x]\ntype = ipmi\nnode = n9\n", "n9 is not in the node list"},
		{"alert with a relative command", "[alert#1]\ncommand = notify.sh\n", "give an absolute path"},
		{"alert with an unknown kind", "[alert#1]\ncommand = /bin/true\nkinds = fence boom\n", `"boom" is not an event kind`},
		{"alert without a command", "[alert#1]\nkinds = fence\n", "command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadNodeConfig(writeConf(t, twoNodes+"\n"+tc.extra), pluginKeywords)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestNodeConfig_AlertSections(t *testing.T) {
	c, err := LoadNodeConfig(writeConf(t, twoNodes+"\n[alert#1]\ncommand = /usr/local/bin/notify\nkinds = fence failover lost\ntimeout = 3s\n\n[alert#2]\ncommand = /bin/logger\n"), pluginKeywords)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Alerts) != 2 {
		t.Fatalf("alerts %+v", c.Alerts)
	}
	a := c.Alerts[0]
	if a.Command != "/usr/local/bin/notify" || a.Timeout != 3*time.Second || !a.Wants("fence") || a.Wants("start") {
		t.Errorf("alert#1 = %+v", a)
	}
	if b := c.Alerts[1]; !b.Wants("start") || b.Timeout != DefaultAlertTimeout {
		t.Errorf("alert#2 (all kinds, default timeout) = %+v", b)
	}
}
