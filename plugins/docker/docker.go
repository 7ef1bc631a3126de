// Package docker is the container.docker resource driver: it runs one
// docker container per resource, named <service>.container.<n>, and, for a
// service that sets docker_data_dir, a docker daemon private to that
// service (its own data root, socket and containerd namespace).
//
// The driver keeps no state that matters across calls: a container is
// found by its name, a private daemon by the pid file and socket under the
// service's run directory. A private daemon is not a child that dies with
// the plugin; a restarted plugin finds it and its containers running.
//
// This package imports the plugin SDK, the moby client (with containerd's
// errdefs, which types the client's errors) and the standard library only,
// like any vendor's plugin would.
package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// TypeName is the resource type served by this driver.
const TypeName = "container.docker"

// Keyword names.
const (
	KwRunImage         = "run_image"
	KwRunArgs          = "run_args"
	KwRunCommand       = "run_command"
	KwDockerDataDir    = "docker_data_dir"
	KwDockerDaemonArgs = "docker_daemon_args"
)

// MsgDaemonNotRunning is the status log line of a container whose private
// daemon is down (the seed's wording).
const MsgDaemonNotRunning = "docker daemon is not running"

// Labels vigil sets on the containers it creates.
const (
	LabelService = "io.vigil-ha.service"
	LabelRID     = "io.vigil-ha.rid"
)

// ErrDaemonUnreachable is returned when the docker daemon does not answer.
var ErrDaemonUnreachable = errors.New("docker daemon unreachable")

var logger = sdk.Logger().Named("docker")

// Config configures a Driver. The zero value is the production setup but
// for ProxyPath, which the plugin's main sets.
type Config struct {
	// DockerdPath is the dockerd run for services with a private daemon;
	// a bare name is looked up in PATH. Default "dockerd".
	DockerdPath string
	// SystemHost is the address of the shared daemon used by services
	// without docker_data_dir. Default: DOCKER_HOST (and the other
	// DOCKER_* variables), else unix:///var/run/docker.sock.
	SystemHost string
	// StopTimeout is how long a container gets to exit after its stop
	// signal before it is killed, unless its run_args set --stop-timeout.
	// Default 10s.
	StopTimeout time.Duration
	// DaemonStartTimeout bounds the wait for a new private daemon to
	// answer on its socket. Default 60s.
	DaemonStartTimeout time.Duration
	// DaemonStopTimeout is how long a private daemon gets to exit after
	// SIGTERM before it is killed. Default 30s.
	DaemonStopTimeout time.Duration
	// PingTimeout bounds each probe of a daemon. Default 5s.
	PingTimeout time.Duration
	// ProxyPath is the userland proxy private daemons publish ports
	// with (dockerd --userland-proxy-path): an absolute path to an
	// executable that runs RunProxy when IsProxyCommand holds for its
	// arguments, the plugin's own in production. It is not used when
	// docker_daemon_args turns the proxy off, names another, or names a
	// --config-file. Empty: dockerd's docker-proxy, which accepts
	// connections before the container listens.
	ProxyPath string
}

// Driver runs docker containers as Vigil resources.
type Driver struct {
	cfg Config

	mu       sync.Mutex
	clients  map[string]*client.Client // by daemon host; "" is the system daemon
	svcLocks map[string]*sync.RWMutex  // by private daemon directory

	spawned atomic.Int64 // dockerd processes started, for tests
}

var _ sdk.ResourceDriver = (*Driver)(nil)

// New returns a Driver with cfg's defaults applied.
func New(cfg Config) *Driver {
	if cfg.DockerdPath == "" {
		cfg.DockerdPath = "dockerd"
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.DaemonStartTimeout <= 0 {
		cfg.DaemonStartTimeout = 60 * time.Second
	}
	if cfg.DaemonStopTimeout <= 0 {
		cfg.DaemonStopTimeout = 30 * time.Second
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 5 * time.Second
	}
	return &Driver{
		cfg:      cfg,
		clients:  map[string]*client.Client{},
		svcLocks: map[string]*sync.RWMutex{},
	}
}

// Info declares the container.docker type and the service keywords of the
// private daemon.
func (d *Driver) Info() sdk.Info {
	return sdk.Info{
		Name:    "docker",
		Version: Version,
		Types: []sdk.TypeInfo{{
			Type: TypeName,
			Help: "A docker container named <service>.container.<n>, created from run_image on start and removed on stop.",
			Keywords: []sdk.Keyword{
				{Name: KwRunImage, Required: true, Aliases: []string{"image"},
					Help: "The image to run: a name[:tag] or an image id. Pulled when the daemon does not have it."},
				{Name: KwRunArgs, Type: sdk.TypeString,
					Help: "docker run flags, shell-quoted: -v/--volume, -e/--env, -p/--publish, --expose, --net/--network, --restart, --entrypoint, -w/--workdir, -u/--user, -h/--hostname, --privileged, --cap-add, --cap-drop, --add-host, --dns, --dns-search, --dns-option, -l/--label, -m/--memory, --cpus, --ulimit, --read-only, --tmpfs, --device, --security-opt, --sysctl, --pid, --ipc, -t, -i, -d, --init, --log-driver, --log-opt, --shm-size, --stop-signal, --stop-timeout. --name and --rm are managed by vigil."},
				{Name: KwRunCommand, Type: sdk.TypeString,
					Help: "The command to run instead of the image's, shell-quoted words (no shell is involved)."},
			},
		}},
		ServiceKeywords: []sdk.Keyword{
			{Name: KwDockerDataDir, Type: sdk.TypeString,
				Help: "When set, the service's containers run in a docker daemon of their own, with this data root (put it on the service's shared storage). The daemon starts with the first container and stops after the last."},
			{Name: KwDockerDaemonArgs, Type: sdk.TypeString,
				Help: "Extra dockerd flags for the service's private daemon, shell-quoted (e.g. --ip 10.0.0.5). Its published ports go through the plugin's userland proxy, which accepts connections only once the container does; --userland-proxy=false or --userland-proxy-path choose otherwise."},
		},
	}
}

// Validate checks the keywords without touching docker.
func (d *Driver) Validate(_ context.Context, r sdk.Resource) []sdk.FieldError {
	var errs []sdk.FieldError
	if strings.TrimSpace(r.Get(KwRunImage)) == "" {
		errs = append(errs, sdk.FieldError{Keyword: KwRunImage, Message: "no image: set run_image to the image to run"})
	}
	if _, err := parseRunArgs(r.Get(KwRunArgs)); err != nil {
		errs = append(errs, sdk.FieldError{Keyword: KwRunArgs, Message: strings.TrimPrefix(err.Error(), ErrRunArgs.Error()+": ")})
	}
	if _, err := splitWords(r.Get(KwRunCommand)); err != nil {
		errs = append(errs, sdk.FieldError{Keyword: KwRunCommand, Message: err.Error()})
	}
	if dir := serviceKeyword(r, KwDockerDataDir); dir != "" && !filepath.IsAbs(dir) {
		errs = append(errs, sdk.FieldError{Keyword: KwDockerDataDir, Message: fmt.Sprintf("%q is not an absolute path", dir)})
	}
	if words, err := splitWords(serviceKeyword(r, KwDockerDaemonArgs)); err != nil {
		errs = append(errs, sdk.FieldError{Keyword: KwDockerDaemonArgs, Message: err.Error()})
	} else if err := checkDaemonArgs(words); err != nil {
		errs = append(errs, sdk.FieldError{Keyword: KwDockerDaemonArgs, Message: err.Error()})
	}
	return errs
}

// ContainerName is the name of a resource's container: rid container#3 of
// service svc is svc.container.3.
func ContainerName(svc, rid string) string {
	return svc + "." + strings.ReplaceAll(rid, "#", ".")
}

// serviceKeyword reads a [DEFAULT] keyword, falling back to the resource's
// own keywords in case core merged them there.
func serviceKeyword(r sdk.Resource, name string) string {
	if v := strings.TrimSpace(r.Service.Keywords[name]); v != "" {
		return v
	}
	return strings.TrimSpace(r.Keywords[name])
}

// daemonFor says which daemon runs r's container: the service's private
// one (private true, with its paths) or the system one.
func daemonFor(r sdk.Resource) (p daemonPaths, private bool) {
	if serviceKeyword(r, KwDockerDataDir) == "" {
		return daemonPaths{}, false
	}
	return pathsFor(r.Service.RunDir), true
}

// clientFor returns the cached client of a daemon. The moby client
// negotiates the API version down to the daemon's on first use (Debian's
// dockerd 20.10 speaks 1.41).
func (d *Driver) clientFor(p daemonPaths, private bool) (*client.Client, error) {
	key := ""
	if private {
		key = p.host()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.clients[key]; c != nil {
		return c, nil
	}
	var opts []client.Opt
	switch {
	case private:
		opts = append(opts, client.WithHost(p.host()))
	case d.cfg.SystemHost != "":
		opts = append(opts, client.WithHost(d.cfg.SystemHost))
	default:
		opts = append(opts, client.FromEnv)
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	d.clients[key] = c
	return c, nil
}

// forgetClient drops the client of a daemon that was stopped.
func (d *Driver) forgetClient(p daemonPaths) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.clients[p.host()]; c != nil {
		c.Close()
		delete(d.clients, p.host())
	}
}

// ping probes a daemon, negotiating the API version on the way.
func (d *Driver) ping(ctx context.Context, c *client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.PingTimeout)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("%w at %s: %w", ErrDaemonUnreachable, c.DaemonHost(), err)
	}
	return nil
}

// systemClient returns the client of the system daemon after checking it
// answers.
func (d *Driver) systemClient(ctx context.Context) (*client.Client, error) {
	c, err := d.clientFor(daemonPaths{}, false)
	if err != nil {
		return nil, err
	}
	if err := d.ping(ctx, c); err != nil {
		return nil, fmt.Errorf("%w; start docker (systemctl start docker) or fix DOCKER_HOST", err)
	}
	return c, nil
}

// Start runs the resource's container, starting the service's private
// daemon first when it has one.
func (d *Driver) Start(ctx context.Context, r sdk.Resource) ([]string, error) {
	spec, err := buildSpec(r)
	if err != nil {
		return nil, err
	}
	p, private := daemonFor(r)
	if !private {
		c, err := d.systemClient(ctx)
		if err != nil {
			return nil, err
		}
		return d.startContainer(ctx, c, r, spec)
	}
	var log []string
	// A Stop of the last sibling may take the daemon down between our
	// ensure and our shared lock; then ensure again.
	for attempt := 0; attempt < 3; attempt++ {
		l, err := d.ensureDaemon(ctx, r, p)
		log = append(log, l...)
		if err != nil {
			return log, err
		}
		unlock, err := d.lockDaemon(ctx, p, false)
		if err != nil {
			return log, err
		}
		c, err := d.clientFor(p, true)
		if err == nil {
			err = d.ping(ctx, c)
		}
		if err != nil {
			unlock()
			continue
		}
		l, err = d.startContainer(ctx, c, r, spec)
		unlock()
		return append(log, l...), err
	}
	return log, fmt.Errorf("the private docker daemon of %s stopped while starting %s: check %s", r.Service.Name, r.RID, p.log)
}

// Stop stops and removes the resource's container, then stops the
// service's private daemon if none of the service's containers still runs.
func (d *Driver) Stop(ctx context.Context, r sdk.Resource) ([]string, error) {
	p, private := daemonFor(r)
	if !private {
		c, err := d.systemClient(ctx)
		if err != nil {
			return nil, err
		}
		return d.stopContainer(ctx, c, r)
	}
	if !filepath.IsAbs(p.dir) {
		return nil, fmt.Errorf("service %s has docker_data_dir but core gave no absolute run directory (%q): cannot find its private docker daemon", r.Service.Name, r.Service.RunDir)
	}
	if _, err := os.Stat(p.dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil // no private daemon ever ran here
	}
	var log []string
	unlock, err := d.lockDaemon(ctx, p, false)
	if err != nil {
		return nil, err
	}
	c, err := d.clientFor(p, true)
	if err != nil {
		unlock()
		return nil, err
	}
	if d.ping(ctx, c) == nil {
		log, err = d.stopContainer(ctx, c, r)
	}
	unlock()
	if err != nil {
		return log, err
	}
	l, err := d.stopDaemonIfIdle(ctx, r, p)
	return append(log, l...), err
}

// Status reports the container: up when running, down otherwise.
func (d *Driver) Status(ctx context.Context, r sdk.Resource) sdk.ResourceStatus {
	image := r.Get(KwRunImage)
	p, private := daemonFor(r)
	c, err := d.clientFor(p, private)
	if err != nil {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: image, Log: []string{err.Error()}}
	}
	if err := d.ping(ctx, c); err != nil {
		if private {
			if client.IsErrConnectionFailed(err) || runningDaemonPid(p) == 0 {
				return sdk.ResourceStatus{Status: sdk.StatusDown, Label: image, Log: []string{MsgDaemonNotRunning}}
			}
			return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: image,
				Log: []string{fmt.Sprintf("the private docker daemon (pid %d) does not answer: %v; see %s", runningDaemonPid(p), err, p.log)}}
		}
		// The system daemon may run with live-restore: containers can
		// outlive it, so its absence says nothing about ours.
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: image,
			Log: []string{fmt.Sprintf("%v; start docker (systemctl start docker) or fix DOCKER_HOST", err)}}
	}
	name := ContainerName(r.Service.Name, r.RID)
	res, err := c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if isNotFound(err) {
		return sdk.ResourceStatus{Status: sdk.StatusDown, Label: image}
	}
	if err != nil {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: image, Log: []string{fmt.Sprintf("inspect container %s: %v", name, err)}}
	}
	ctr := res.Container
	st := ctr.State
	if st == nil || !st.Running || st.Paused || st.Restarting {
		return sdk.ResourceStatus{Status: sdk.StatusDown, Label: image, Log: []string{describeState(name, st)}}
	}
	runImage := ""
	if ctr.Config != nil {
		runImage = ctr.Config.Image
	}
	out := sdk.ResourceStatus{Status: sdk.StatusUp, Label: shortID(ctr.ID) + "@" + runImage}
	if runImage != image {
		out.Log = append(out.Log, fmt.Sprintf("runs image %s but run_image is %s: restart the resource to apply", runImage, image))
	}
	return out
}

func describeState(name string, st *container.State) string {
	switch {
	case st == nil:
		return fmt.Sprintf("container %s has no state", name)
	case st.Paused:
		return fmt.Sprintf("container %s is paused", name)
	case st.Restarting:
		return fmt.Sprintf("container %s is restarting (exit code %d)", name, st.ExitCode)
	case st.Error != "":
		return fmt.Sprintf("container %s is %s (exit code %d): %s", name, st.Status, st.ExitCode, st.Error)
	}
	return fmt.Sprintf("container %s is %s (exit code %d)", name, st.Status, st.ExitCode)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// isNotFound tells a missing object from other errors. The moby client
// classifies daemon errors with containerd's errdefs, its documented way.
func isNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}

// buildSpec turns the resource's keywords into a container spec.
func buildSpec(r sdk.Resource) (*runSpec, error) {
	image := strings.TrimSpace(r.Get(KwRunImage))
	if image == "" {
		return nil, fmt.Errorf("%s: run_image is empty: set it to the image to run", r.RID)
	}
	spec, err := parseRunArgs(r.Get(KwRunArgs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: fix run_args", r.RID, err)
	}
	cmd, err := splitWords(r.Get(KwRunCommand))
	if err != nil {
		return nil, fmt.Errorf("%s: run_command: %w", r.RID, err)
	}
	spec.Config.Image = image
	if len(cmd) > 0 {
		spec.Config.Cmd = cmd
	}
	if spec.Config.Labels == nil {
		spec.Config.Labels = map[string]string{}
	}
	spec.Config.Labels[LabelService] = r.Service.Name
	spec.Config.Labels[LabelRID] = r.RID
	return spec, nil
}

// startContainer makes the resource's container run: a running one is
// left alone, a stopped one is replaced so that config changes apply.
func (d *Driver) startContainer(ctx context.Context, c *client.Client, r sdk.Resource, spec *runSpec) ([]string, error) {
	name := ContainerName(r.Service.Name, r.RID)
	res, err := c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case isNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("inspect container %s: %w", name, err)
	case res.Container.State != nil && res.Container.State.Running && !res.Container.State.Restarting:
		if !res.Container.State.Paused {
			return []string{fmt.Sprintf("container %s is already running", name)}, nil
		}
		if _, err := c.ContainerUnpause(ctx, name, client.ContainerUnpauseOptions{}); err != nil {
			return nil, fmt.Errorf("unpause container %s: %w", name, err)
		}
		return []string{fmt.Sprintf("unpaused container %s", name)}, nil
	default:
		if _, err := c.ContainerRemove(ctx, res.Container.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("remove the stopped container %s before recreating it: %w", name, err)
		}
		logger.Info("removed stopped container to recreate it", "container", name)
	}

	opts := client.ContainerCreateOptions{Name: name, Config: &spec.Config, HostConfig: &spec.Host}
	created, err := c.ContainerCreate(ctx, opts)
	if isNotFound(err) {
		logger.Info("pulling image", "image", spec.Config.Image, "container", name)
		if err := d.pull(ctx, c, spec.Config.Image); err != nil {
			return nil, err
		}
		created, err = c.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("create container %s from %s: %w", name, spec.Config.Image, err)
	}
	log := make([]string, 0, len(created.Warnings)+1)
	for _, w := range created.Warnings {
		log = append(log, "docker: "+w)
	}
	if _, err := c.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		// The container stays, exited, for docker logs and inspect; the
		// next start replaces it.
		return log, fmt.Errorf("start container %s: %w (see docker logs %s)", name, err, name)
	}
	logger.Info("container started", "container", name, "id", shortID(created.ID), "image", spec.Config.Image)
	return append(log, fmt.Sprintf("started container %s (%s) from %s", name, shortID(created.ID), spec.Config.Image)), nil
}

func (d *Driver) pull(ctx context.Context, c *client.Client, image string) error {
	resp, err := c.ImagePull(ctx, image, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("image %s is not on the docker host and pulling it failed: %w (load it with docker load, or check the name and the registry)", image, err)
	}
	return nil
}

// stopContainer stops and removes the resource's container; absent is done.
func (d *Driver) stopContainer(ctx context.Context, c *client.Client, r sdk.Resource) ([]string, error) {
	name := ContainerName(r.Service.Name, r.RID)
	res, err := c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", name, err)
	}
	var log []string
	if st := res.Container.State; st != nil && st.Running {
		timeout := d.cfg.StopTimeout
		if cfg := res.Container.Config; cfg != nil && cfg.StopTimeout != nil && *cfg.StopTimeout >= 0 {
			timeout = time.Duration(*cfg.StopTimeout) * time.Second
		}
		// Leave time for the kill and the removal within core's deadline.
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, max(time.Until(dl)-3*time.Second, 0))
		}
		secs := int(timeout / time.Second)
		if _, err := c.ContainerStop(ctx, res.Container.ID, client.ContainerStopOptions{Timeout: &secs}); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("stop container %s: %w", name, err)
		}
		log = append(log, fmt.Sprintf("stopped container %s", name))
	}
	if _, err := c.ContainerRemove(ctx, res.Container.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
		return log, fmt.Errorf("remove container %s: %w", name, err)
	}
	logger.Info("container removed", "container", name)
	return append(log, fmt.Sprintf("removed container %s", name)), nil
}

// ensureDaemon makes the service's private daemon answer, starting it if
// needed. Serialised per service, in and across plugin processes.
func (d *Driver) ensureDaemon(ctx context.Context, r sdk.Resource, p daemonPaths) ([]string, error) {
	if err := prepareDaemonDir(p); err != nil {
		return nil, err
	}
	c, err := d.clientFor(p, true)
	if err != nil {
		return nil, err
	}
	if d.ping(ctx, c) == nil { // the common case, without the lock
		return nil, nil
	}
	unlock, err := d.lockDaemon(ctx, p, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if d.ping(ctx, c) == nil { // started by whoever held the lock
		return nil, nil
	}

	ctx, cancel := context.WithTimeout(ctx, d.cfg.DaemonStartTimeout)
	defer cancel()
	if pid := runningDaemonPid(p); pid != 0 {
		// Alive but not answering: still starting up (its spawner died) or
		// recovering its containers. Give it the start timeout.
		logger.Info("private docker daemon runs but does not answer yet, waiting", "service", r.Service.Name, "pid", pid)
		if err := d.waitReady(ctx, c, p, pid, nil); err != nil {
			return nil, fmt.Errorf("the private docker daemon of %s (pid %d) does not answer on %s: %w; last lines of %s:\n%s", r.Service.Name, pid, p.sock, err, p.log, logTail(p, 15))
		}
		return []string{fmt.Sprintf("docker daemon pid %d is ready", pid)}, nil
	}
	removeDaemonFiles(p)

	extra, err := splitWords(serviceKeyword(r, KwDockerDaemonArgs))
	if err != nil {
		return nil, fmt.Errorf("docker_daemon_args: %w", err)
	}
	if err := checkDaemonArgs(extra); err != nil {
		return nil, fmt.Errorf("docker_daemon_args: %w", err)
	}
	args := dockerdArgs(p, r.Service.Name, serviceKeyword(r, KwDockerDataDir), d.cfg.ProxyPath, extra)
	pid, exited, where, err := d.spawnDaemon(p, r.Service.Name, args)
	if err != nil {
		return nil, err
	}
	logger.Info("private docker daemon spawned", "service", r.Service.Name, "pid", pid, "socket", p.sock, "cgroup", where)
	if err := d.waitReady(ctx, c, p, pid, exited); err != nil {
		// A daemon that did not come up is of no use and would block the
		// next attempt on its pid file.
		_ = terminate(context.Background(), pid, p, 5*time.Second)
		removeDaemonFiles(p)
		return nil, fmt.Errorf("start the private docker daemon of %s: %w; fix the cause shown in %s (docker_daemon_args?), last lines:\n%s", r.Service.Name, err, p.log, logTail(p, 15))
	}
	logger.Info("private docker daemon ready", "service", r.Service.Name, "pid", pid)
	return []string{fmt.Sprintf("started docker daemon pid %d on %s", pid, p.sock)}, nil
}

// waitReady polls the daemon's socket until it answers, the daemon exits
// or ctx ends. Often: every poll period is, on average, half of it added
// to a failover, and a refused connection on a unix socket costs little.
func (d *Driver) waitReady(ctx context.Context, c *client.Client, p daemonPaths, pid int, exited <-chan error) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			return nil
		}
		if exited == nil && !isOurDaemon(pid, p) {
			return fmt.Errorf("dockerd pid %d exited", pid)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("dockerd exited during start-up (%v)", err)
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s: %w", p.sock, ctx.Err())
		case <-tick.C:
		}
	}
}

// stopDaemonIfIdle stops the service's private daemon when none of the
// service's containers (r.Siblings) runs in it any more.
func (d *Driver) stopDaemonIfIdle(ctx context.Context, r sdk.Resource, p daemonPaths) ([]string, error) {
	unlock, err := d.lockDaemon(ctx, p, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	pid := runningDaemonPid(p)
	c, err := d.clientFor(p, true)
	if err != nil {
		return nil, err
	}
	if d.ping(ctx, c) == nil {
		list, err := c.ContainerList(ctx, client.ContainerListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list the containers of the private docker daemon of %s: %w", r.Service.Name, err)
		}
		siblings := map[string]bool{}
		for rid := range r.Siblings {
			siblings[ContainerName(r.Service.Name, rid)] = true
		}
		for _, s := range list.Items {
			// A container labelled for the service counts too, in case core
			// sent no siblings or the rid left the config while it ran.
			keep := s.Labels[LabelService] == r.Service.Name
			for _, n := range s.Names {
				keep = keep || siblings[strings.TrimPrefix(n, "/")]
			}
			if keep {
				logger.Debug("private docker daemon kept: a container of the service still runs", "service", r.Service.Name, "container", s.Names)
				return nil, nil
			}
		}
		if pid == 0 {
			return nil, fmt.Errorf("the private docker daemon of %s answers on %s but its pid file %s names no live dockerd: stop it by hand", r.Service.Name, p.sock, p.pid)
		}
	} else if pid == 0 {
		removeDaemonFiles(p)
		return nil, nil
	}
	// Either idle, or alive and not answering: a service being stopped
	// cannot leave a daemon that holds its data root.
	logger.Info("stopping private docker daemon", "service", r.Service.Name, "pid", pid)
	d.forgetClient(p)
	if err := terminate(ctx, pid, p, d.cfg.DaemonStopTimeout); err != nil {
		return nil, fmt.Errorf("stop the private docker daemon of %s: %w", r.Service.Name, err)
	}
	removeDaemonFiles(p)
	sdk.ReleaseCgroup(r.Service.Name)
	return []string{fmt.Sprintf("stopped docker daemon pid %d", pid)}, nil
}
