package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/configsync"
)

// serveConfigs answers peers' fetches of this node's service configs
// (datasets carry only versions and checksums), until ctx ends.
func (d *Daemon) serveConfigs(ctx context.Context, ln net.Listener) {
	srv, err := configsync.NewServer(configsync.Config{Key: d.node.Key("configsync"), Cluster: d.node.Cluster,
		Local: d.node.Local, Logger: d.log.Named("configsync"), Lookup: d.configOf})
	if err != nil {
		d.log.Error("config sync server", "error", err)
		ln.Close()
		return
	}
	defer srv.Close()
	if err := srv.Serve(ctx, ln); err != nil {
		d.log.Error("config sync server", "error", err)
	}
}

// configOf is the config in force of a local service, for a peer's fetch.
func (d *Daemon) configOf(name string) ([]byte, int64, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.svcs[name]
	if s == nil || s.conf == nil {
		return nil, 0, "", false
	}
	return s.version.Content, s.version.Version, s.version.Sum, true
}

// listenConfigs opens the config sync port, and returns the addresses
// peers are told to fetch from: every global address of this node.
func (d *Daemon) listenConfigs() (net.Listener, []string, error) {
	port := strconv.Itoa(d.node.SyncPort)
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return nil, nil, fmt.Errorf("config sync port %s (sync_port in %s): %w", port, d.node.Path, err)
	}
	var addrs []string
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range ifaddrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.IsGlobalUnicast() {
			addrs = append(addrs, net.JoinHostPort(ip.IP.String(), port))
		}
	}
	slices.Sort(addrs)
	return ln, addrs, nil
}

// fetchConfig gets a peer's version of a service's config from one of the
// addresses its dataset lists. It blocks on the network: never call it on
// the heartbeat path.
func (d *Daemon) fetchConfig(ctx context.Context, peer string, addrs []string, name string, v cluster.ConfigVersion) ([]byte, error) {
	c, err := configsync.NewClient(configsync.ClientConfig{Key: d.node.Key("configsync"), Cluster: d.node.Cluster, Local: d.node.Local})
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s publishes no config sync address", peer)
	}
	var errs []error
	for _, a := range addrs {
		content, _, err := c.Fetch(ctx, a, configsync.Request{Service: name, Sum: v.Sum})
		if err == nil {
			return content, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}
	return nil, fmt.Errorf("fetch %s's config from %s: %w", name, peer, errors.Join(errs...))
}
