// Command vigil-arbitrator is a cluster's tie-breaker, run on a host that
// is not a node (a third site): it holds one quorum vote and grants it to
// one side of a partition at a time, for a lease (see core/arbitrator).
// It needs the cluster's name and secret: a copy of cluster.conf with its
// secret file, or the secret file and the name. SIGTERM stops it.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/cmd/internal/cli"
	"github.com/vigil-ha/vigil/core/arbitrator"
	"github.com/vigil-ha/vigil/core/config"
)

// secretOwner is the only user a secret file may belong to.
const secretOwner = 0

func main() {
	var o options
	cmd := &cobra.Command{
		Use:   "vigil-arbitrator --listen ADDR (--cluster-conf PATH | --secret-file PATH --cluster NAME)",
		Short: "Hold a cluster's arbitrator vote: one side of a partition at a time",
		Long: `vigil-arbitrator grants its quorum vote to one side of a partition at a
time, as a lease the nodes renew. List it in every node's cluster.conf:

  [arbitrator#1]
  uri = tcp://HOST:PORT

It needs the cluster's name and secret: --cluster-conf (a copy of a node's
cluster.conf and its secret file) or --secret-file and --cluster. A secret
file must be owned by root and readable by it alone (chmod 600).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := hclog.New(&hclog.LoggerOptions{Name: "vigil-arbitrator", Level: hclog.LevelFromString(o.level), Output: os.Stderr, JSONFormat: o.json})
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return run(ctx, o, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "address to listen on, host:port (e.g. 0.0.0.0:7400)")
	f.StringVar(&o.clusterConf, "cluster-conf", "", "a copy of a node's cluster.conf: the cluster's name, nodes and secret")
	f.StringVar(&o.secretFile, "secret-file", "", "the cluster secret file (hex, as the nodes' secret_file)")
	f.StringVar(&o.cluster, "cluster", "", "the cluster's name (with --secret-file)")
	f.DurationVar(&o.lease, "lease", arbitrator.DefaultLease, "how long a grant lasts; a side's failover waits up to this long for the vote")
	f.StringVar(&o.level, "log-level", "info", "trace, debug, info, warn or error (debug shows every renewal)")
	f.BoolVar(&o.json, "log-json", false, "log JSON lines")
	cli.Setup(cmd)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-arbitrator: "+err.Error())
		os.Exit(1)
	}
}

type options struct {
	listen, clusterConf, secretFile, cluster string
	lease                                    time.Duration
	level                                    string
	json                                     bool
}

// identity is what the arbitrator knows of its cluster.
type identity struct {
	name   string
	nodes  []string // empty: any node name is taken
	secret []byte
}

func run(ctx context.Context, o options, log hclog.Logger) error {
	if o.listen == "" {
		return errors.New("give --listen host:port (the address the nodes' [arbitrator#N] uri names)")
	}
	id, err := o.identity()
	if err != nil {
		return err
	}
	srv, err := arbitrator.NewServer(arbitrator.ServerConfig{Cluster: id.name, Key: arbitrator.Key(id.secret, id.name),
		Nodes: id.nodes, Lease: o.lease, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "cluster", id.name, "nodes", strings.Join(id.nodes, ","), "lease", srv.Lease())
	log.Info("granting nothing for one lease: a restarted arbitrator forgot its grants", "lease", srv.Lease())
	err = srv.Serve(ctx, ln)
	log.Info("stopped")
	return err
}

func (o options) identity() (identity, error) {
	switch {
	case o.clusterConf != "" && (o.secretFile != "" || o.cluster != ""):
		return identity{}, errors.New("give either --cluster-conf or --secret-file with --cluster, not both")
	case o.clusterConf != "":
		return loadClusterConf(o.clusterConf)
	case o.secretFile != "" && o.cluster != "":
		s, err := arbitrator.ReadSecretFile(o.secretFile, secretOwner)
		return identity{name: o.cluster, secret: s}, err
	}
	return identity{}, errors.New("give --cluster-conf PATH, or --secret-file PATH and --cluster NAME")
}

// loadClusterConf reads what an arbitrator needs of a node's cluster.conf:
// [cluster] name, nodes and the secret; the rest (heartbeats, fencing) is
// the nodes' business.
func loadClusterConf(path string) (identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return identity{}, fmt.Errorf("read cluster.conf: %w", err)
	}
	f, err := config.ParseINI(path, data)
	if err != nil {
		return identity{}, err
	}
	sec := f.Section("cluster")
	if sec == nil {
		return identity{}, fmt.Errorf("%s: no [cluster] section (name, nodes, secret_file)", path)
	}
	get := func(k string) string {
		if e := sec.Entry(k); e != nil {
			return strings.TrimSpace(e.Value)
		}
		return ""
	}
	id := identity{name: get("name"), nodes: strings.Fields(get("nodes"))}
	if id.name == "" {
		return identity{}, fmt.Errorf("%s: [cluster] has no name", path)
	}
	switch {
	case get("secret_file") != "":
		p := get("secret_file")
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		id.secret, err = arbitrator.ReadSecretFile(p, secretOwner)
	case get("secret") != "":
		// The secret is in cluster.conf itself: the file is a secret file.
		if err = arbitrator.CheckSecretFile(path, secretOwner); err != nil {
			break
		}
		if id.secret, err = arbitrator.ParseSecret([]byte(get("secret"))); err != nil {
			err = fmt.Errorf("%s: [cluster] secret: %w", path, err)
		}
	default:
		err = fmt.Errorf("%s: [cluster] has no secret_file (the arbitrator needs the cluster secret)", path)
	}
	if err != nil {
		return identity{}, err
	}
	return id, nil
}
