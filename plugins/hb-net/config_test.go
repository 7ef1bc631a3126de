package hbnet

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

func TestParseSettings(t *testing.T) {
	key := make([]byte, 32)
	base := func() sdk.HeartbeatConfig {
		return sdk.HeartbeatConfig{
			Name: "hb#1", LocalNode: "n1", Nodes: []string{"n1", "n2", "n3"},
			Interval: time.Second, Timeout: 3 * time.Second, Key: key,
			Keywords: map[string]string{},
		}
	}
	tests := []struct {
		name    string
		edit    func(*sdk.HeartbeatConfig)
		wantErr string // substring; empty: no error
		bind    string
		port    int
		adv     string
		joins   map[string]string
	}{
		{
			name:  "defaults resolve peers by name on the default port and bind everywhere",
			edit:  func(*sdk.HeartbeatConfig) {},
			bind:  "0.0.0.0",
			port:  10000,
			joins: map[string]string{"n2": "n2:10000", "n3": "n3:10000"},
		},
		{
			name: "addrs give each node's address and the bind",
			edit: func(c *sdk.HeartbeatConfig) {
				c.Keywords[KwAddrs] = "n1=10.0.0.1 n2=10.0.0.2"
				c.Keywords[KwPort] = "7000"
			},
			bind:  "10.0.0.1",
			port:  7000,
			joins: map[string]string{"n2": "10.0.0.2:7000", "n3": "n3:7000"},
		},
		{
			name: "a node may listen on its own port",
			edit: func(c *sdk.HeartbeatConfig) {
				c.Keywords[KwAddrs] = "n1=127.0.0.2:7001 n2=127.0.0.3:7002 n3=[fd00::3]:7003"
			},
			bind:  "127.0.0.2",
			port:  7001,
			joins: map[string]string{"n2": "127.0.0.3:7002", "n3": "[fd00::3]:7003"},
		},
		{
			name: "bind everywhere advertises the listed address",
			edit: func(c *sdk.HeartbeatConfig) {
				c.Keywords[KwAddrs] = "n1=10.0.0.1"
				c.Keywords[KwBind] = "0.0.0.0"
			},
			bind:  "0.0.0.0",
			port:  10000,
			adv:   "10.0.0.1",
			joins: map[string]string{"n2": "n2:10000", "n3": "n3:10000"},
		},
		{
			name:  "IPv6 addresses",
			edit:  func(c *sdk.HeartbeatConfig) { c.Keywords[KwAddrs] = "n1=fd00::1 n2=fd00::2" },
			bind:  "fd00::1",
			port:  10000,
			joins: map[string]string{"n2": "[fd00::2]:10000", "n3": "n3:10000"},
		},
		{name: "port zero", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwPort] = "0" }, wantErr: "port: \"0\" is not a port number"},
		{name: "port not a number", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwPort] = "http" }, wantErr: "port:"},
		{name: "port too large", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwPort] = "70000" }, wantErr: "port:"},
		{name: "local node not in nodes", edit: func(c *sdk.HeartbeatConfig) { c.LocalNode = "n9" }, wantErr: "local node \"n9\" is not in the cluster nodes"},
		{name: "empty local node", edit: func(c *sdk.HeartbeatConfig) { c.LocalNode = "" }, wantErr: "local node name is empty"},
		{name: "bind not an IP", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwBind] = "eth0" }, wantErr: "bind: \"eth0\" is not an IP address"},
		{name: "bind with a port", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwBind] = "10.0.0.1:10000" }, wantErr: "bind:"},
		{name: "short key", edit: func(c *sdk.HeartbeatConfig) { c.Key = key[:8] }, wantErr: "key is 8 bytes; it must be 16, 24 or 32"},
		{name: "no key", edit: func(c *sdk.HeartbeatConfig) { c.Key = nil }, wantErr: "key is 0 bytes"},
		{name: "16-byte key", edit: func(c *sdk.HeartbeatConfig) { c.Key = key[:16] }, bind: "0.0.0.0", port: 10000, joins: map[string]string{"n2": "n2:10000", "n3": "n3:10000"}},
		{name: "zero interval", edit: func(c *sdk.HeartbeatConfig) { c.Interval = 0 }, wantErr: "interval must be positive"},
		{name: "zero timeout", edit: func(c *sdk.HeartbeatConfig) { c.Timeout = 0 }, wantErr: "timeout must be positive"},
		{name: "addrs word without =", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwAddrs] = "10.0.0.1" }, wantErr: "write node=ip"},
		{name: "addrs unknown node", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwAddrs] = "n9=10.0.0.9" }, wantErr: "\"n9\" is not a cluster node"},
		{name: "addrs node twice", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwAddrs] = "n2=10.0.0.2 n2=10.0.0.3" }, wantErr: "listed twice"},
		{name: "addrs host name", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwAddrs] = "n2=node2.example" }, wantErr: "is not an IP address"},
		{name: "addrs bad port", edit: func(c *sdk.HeartbeatConfig) { c.Keywords[KwAddrs] = "n2=10.0.0.2:0" }, wantErr: "not a port number"},
		{name: "node name too long", edit: func(c *sdk.HeartbeatConfig) { c.Nodes = append(c.Nodes, strings.Repeat("x", 256)) }, wantErr: "longer than 255 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.edit(&cfg)
			s, err := parseSettings(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrConfig) {
					t.Errorf("err = %v, want it to wrap ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if s.bindIP != tt.bind || s.bindPort != tt.port || s.advertiseIP != tt.adv {
				t.Errorf("bind %s:%d advertise %q, want %s:%d advertise %q", s.bindIP, s.bindPort, s.advertiseIP, tt.bind, tt.port, tt.adv)
			}
			if !maps.Equal(s.joinAddrs, tt.joins) {
				t.Errorf("join addresses %v, want %v", s.joinAddrs, tt.joins)
			}
		})
	}
}

func TestTune_TimersFollowIntervalAndTimeout(t *testing.T) {
	tests := []struct {
		interval, timeout time.Duration
		suspicionMult     int
		pushPull          time.Duration
	}{
		{100 * time.Millisecond, 300 * time.Millisecond, 2, 2 * time.Second},
		{200 * time.Millisecond, 600 * time.Millisecond, 2, 2 * time.Second},
		{300 * time.Millisecond, time.Second, 2, 3 * time.Second},
		{time.Second, 5 * time.Second, 4, 10 * time.Second},
		{5 * time.Second, 60 * time.Second, 6, 30 * time.Second},
		{time.Second, time.Second, 2, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.interval.String()+"/"+tt.timeout.String(), func(t *testing.T) {
			c := memberlist.DefaultLANConfig()
			tune(c, tt.interval, tt.timeout)
			if c.ProbeInterval != tt.interval || c.ProbeTimeout >= c.ProbeInterval {
				t.Errorf("probe interval %s timeout %s, want interval %s and a shorter timeout", c.ProbeInterval, c.ProbeTimeout, tt.interval)
			}
			if c.SuspicionMult != tt.suspicionMult {
				t.Errorf("SuspicionMult = %d, want %d", c.SuspicionMult, tt.suspicionMult)
			}
			if c.GossipInterval > tt.interval || c.GossipInterval <= 0 {
				t.Errorf("GossipInterval = %s, want in (0, %s]", c.GossipInterval, tt.interval)
			}
			if c.PushPullInterval != tt.pushPull {
				t.Errorf("PushPullInterval = %s, want %s", c.PushPullInterval, tt.pushPull)
			}
			if c.TCPTimeout != tt.timeout {
				t.Errorf("TCPTimeout = %s, want the timeout %s", c.TCPTimeout, tt.timeout)
			}
			if c.EnableCompression {
				t.Error("compression on: packet sizes would not be known in advance")
			}
		})
	}
}

func TestMaxPacketFrame_FitsTheUDPBuffer(t *testing.T) {
	c := memberlist.DefaultLANConfig()
	if got := maxPacketFrame(c); got <= 1000 || got+1+5+45 > c.UDPBufferSize {
		t.Errorf("maxPacketFrame = %d with a %d-byte buffer", got, c.UDPBufferSize)
	}
}
