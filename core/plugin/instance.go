package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins/sdk"
	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

// instance is one plugin binary and, when running, its process. It starts
// the process on first use and again after it died.
type instance struct {
	host   *Host
	binary string // vigil-plugin-<name>

	mu      sync.Mutex
	client  *goplugin.Client
	rpc     proto.ResourceDriverClient
	hb      proto.HeartbeatClient
	stonith proto.StonithClient
	// channel carries status calls when the plugin offers one; nil:
	// they go over rpc.
	channel  *statusChannel
	started  int // processes started so far
	restarts int

	// abortMu guards abort, which kills the process a start under way
	// launched; conn holds mu for the whole start, so Close cannot wait
	// for mu to end a start that hangs.
	abortMu sync.Mutex
	abort   context.CancelFunc

	// infoMu guards the last handshake's answer apart from mu, so that
	// reading it never waits for a start under way.
	infoMu  sync.Mutex
	infoVal *Info
	infoErr error
}

func newInstance(h *Host, binary string) *instance {
	return &instance{host: h, binary: binary}
}

// clientPlugin is the client half of the go-plugin adapter for every
// kind (the server halves live in plugins/sdk): it hands back the
// connection, on which the host makes the clients of each service.
type clientPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (clientPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("vigil core does not serve plugins")
}

func (clientPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return c, nil
}

var versionMismatch = regexp.MustCompile(`Plugin version: (\d+)`)

// conn returns a live connection, starting the process when needed.
func (i *instance) conn(ctx context.Context) (proto.ResourceDriverClient, error) {
	rpc, _, err := i.connect(ctx)
	return rpc, err
}

// connect returns a live connection and the process's status channel (nil
// when it has none), starting the process when needed.
func (i *instance) connect(ctx context.Context) (proto.ResourceDriverClient, *statusChannel, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.client != nil && !i.client.Exited() {
		return i.rpc, i.channel, nil
	}
	if i.client != nil {
		i.client.Kill()
		i.channel.close()
		i.client, i.rpc, i.channel = nil, nil, nil
		i.restarts++
		i.host.log.Warn("plugin exited; restarting", "plugin", i.binary, "restarts", i.restarts)
	}
	path := filepath.Join(i.host.pluginDir(), i.binary)
	sockets, err := i.host.sockets()
	if err != nil {
		return nil, nil, fmt.Errorf("start plugin %s: %w", path, err)
	}
	// The process is tied to a context of its own, not to the caller's:
	// a start Close aborts dies at once, while one that succeeded lives
	// on after the call that started it.
	procCtx, abort := context.WithCancel(context.Background())
	i.abortMu.Lock()
	i.abort = abort
	i.abortMu.Unlock()
	defer func() {
		i.abortMu.Lock()
		i.abort = nil
		i.abortMu.Unlock()
	}()
	cmd := exec.CommandContext(procCtx, path)
	// A plugin must never outlive its host, even when the host is killed
	// with SIGKILL. The SDK also watches its parent, for the case where
	// the thread that forked it is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// go-plugin's server puts its unix socket in PLUGIN_UNIX_SOCKET_DIR,
	// /tmp by default: a private directory instead. Set last, so it wins
	// over the host's environment.
	cmd.Env = append(os.Environ(), goplugin.EnvUnixSocketDir+"="+sockets)
	name := pluginName(i.binary)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: sdk.Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{
			sdk.ProtocolVersion: {sdk.PluginKindResource: clientPlugin{}, sdk.PluginKindHeartbeat: clientPlugin{}, sdk.PluginKindStonith: clientPlugin{}},
		},
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env holds it already
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           pluginLog{Logger: i.host.cfg.Logger.Named(name), host: i.host},
		StartTimeout:     i.host.cfg.StartTimeout,
	})
	cp, err := client.Client()
	if err != nil {
		client.Kill()
		if m := versionMismatch.FindStringSubmatch(err.Error()); m != nil {
			v, _ := strconv.Atoi(m[1])
			return nil, nil, fmt.Errorf("plugin %s speaks resource protocol version %d, this vigil speaks version %d: %w; install a plugin built for this vigil",
				path, v, sdk.ProtocolVersion, ErrProtocol)
		}
		return nil, nil, fmt.Errorf("start plugin %s: %w", path, err)
	}
	raw, err := cp.Dispense(sdk.PluginKindResource)
	if err != nil {
		client.Kill()
		return nil, nil, fmt.Errorf("plugin %s: dispense resource driver: %w", path, err)
	}
	conn := raw.(*grpc.ClientConn)
	i.client = client
	i.rpc = proto.NewResourceDriverClient(conn)
	i.hb = proto.NewHeartbeatClient(conn)
	i.stonith = proto.NewStonithClient(conn)
	i.channel = i.openStatusChannel(i.rpc)
	i.started++
	return i.rpc, i.channel, nil
}

// stonithClient returns a live fencing client, starting the process when
// needed.
func (i *instance) stonithClient(ctx context.Context) (proto.StonithClient, error) {
	if _, err := i.conn(ctx); err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stonith, nil
}

// heartbeat returns a live heartbeat client, starting the process when
// needed.
func (i *instance) heartbeat(ctx context.Context) (proto.HeartbeatClient, error) {
	if _, err := i.conn(ctx); err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.hb, nil
}

// info returns what the plugin said at its last handshake, asking it when
// the process is (re)started.
func (i *instance) info(ctx context.Context) (Info, error) {
	i.mu.Lock()
	alive := i.client != nil && !i.client.Exited()
	i.mu.Unlock()
	if alive {
		i.infoMu.Lock()
		cached := i.infoVal
		i.infoMu.Unlock()
		if cached != nil {
			return *cached, nil
		}
	}
	rpc, err := i.conn(ctx)
	if err != nil {
		i.setInfo(nil, err)
		return Info{}, err
	}
	ctx, cancel := withDefaultTimeout(ctx, i.host.cfg.StatusTimeout)
	defer cancel()
	resp, err := rpc.Info(ctx, &proto.InfoRequest{})
	if grpcstatus.Code(err) == codes.Unimplemented {
		// Not a resource plugin: a heartbeat or a fencing one?
		i.mu.Lock()
		hb, st := i.hb, i.stonith
		i.mu.Unlock()
		resp, err = hb.Info(ctx, &proto.InfoRequest{})
		if grpcstatus.Code(err) == codes.Unimplemented {
			resp, err = st.Info(ctx, &proto.InfoRequest{})
		}
	}
	if err != nil {
		err = i.callError("info", err)
		i.setInfo(nil, err)
		return Info{}, err
	}
	info := infoFromProto(resp)
	info.Name = pluginName(i.binary)
	info.Path = filepath.Join(i.host.pluginDir(), i.binary)
	i.mu.Lock()
	if i.client != nil {
		info.Protocol = i.client.NegotiatedVersion()
	}
	i.mu.Unlock()
	i.setInfo(&info, nil)
	return info, nil
}

func (i *instance) setInfo(info *Info, err error) {
	i.infoMu.Lock()
	defer i.infoMu.Unlock()
	i.infoVal, i.infoErr = info, err
}

func (i *instance) cachedInfo() (Info, error) {
	i.infoMu.Lock()
	defer i.infoMu.Unlock()
	if i.infoVal == nil {
		if i.infoErr == nil {
			return Info{}, errors.New("plugin not started")
		}
		return Info{}, i.infoErr
	}
	return *i.infoVal, nil
}

// callError turns a failed call into the error the caller sees: a plugin
// that died is named as such and the process is marked for restart.
func (i *instance) callError(call string, err error) error {
	i.mu.Lock()
	exited := i.client == nil || i.client.Exited()
	i.mu.Unlock()
	if exited || isTransport(err) {
		i.mu.Lock()
		if i.client != nil && !i.client.Exited() {
			// The connection broke but the process lingers: do not
			// trust it again.
			i.client.Kill()
		}
		i.channel.close()
		i.mu.Unlock()
		return fmt.Errorf("plugin %s: %s: %w; it will be restarted on next use", pluginName(i.binary), call, ErrPluginDied)
	}
	return fromRPCError(err)
}

// abortStart kills the process of a start under way, if any.
func (i *instance) abortStart() {
	i.abortMu.Lock()
	defer i.abortMu.Unlock()
	if i.abort != nil {
		i.abort()
	}
}

func (i *instance) kill() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.client != nil {
		i.client.Kill()
		i.channel.close()
		i.client, i.rpc, i.channel = nil, nil, nil
	}
}

func (i *instance) pid() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.client == nil || i.client.Exited() {
		return 0
	}
	rc := i.client.ReattachConfig()
	if rc == nil {
		return 0
	}
	return rc.Pid
}

func (i *instance) restartCount() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.restarts
}

func pluginName(binary string) string {
	return binary[len(BinaryPrefix):]
}
