// Package stonithipmi is the IPMI-over-LAN fencing driver (type
// "stonith.ipmi"): it powers a node off through its BMC, in Go (no
// ipmitool), and reports success only once the BMC says the power is off.
// It never powers a node on, resets or cycles it: a fenced node stays off
// until an operator brings it back.
package stonithipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// Type is the fencing type this plugin serves.
const Type = "stonith.ipmi"

// Keyword names of a [stonith#<node>] section.
const (
	KwHost         = "host"
	KwPort         = "port"
	KwUser         = "user"
	KwPasswordFile = "password_file"
	KwCipher       = "cipher"
	KwInterface    = "interface"
	KwTimeout      = "timeout"
)

// Keyword defaults.
const (
	DefaultPort      = 623
	DefaultCipher    = 3
	DefaultInterface = "lanplus"
	DefaultTimeout   = 10 * time.Second
)

// Errors callers may branch on (inside the plugin process: across gRPC only
// the message survives, which is why each one says what to check).
var (
	// ErrConfig: the [stonith#<node>] section does not validate.
	ErrConfig = errors.New("invalid stonith.ipmi configuration")
	// ErrUnreachable: the BMC did not answer the first, sessionless request.
	ErrUnreachable = errors.New("cannot reach the BMC")
	// ErrSession: the BMC answered but no session could be opened; almost
	// always a wrong user, password or cipher suite.
	ErrSession = errors.New("the BMC refused the session")
	// ErrNotConfirmed: the power-off was sent but the BMC did not report
	// the power off within the timeout.
	ErrNotConfirmed = errors.New("power-off not confirmed")
)

// errStillOn is the last word of a power-off wait that timed out while
// the BMC answered "on".
var errStillOn = errors.New("the BMC still reports the power on")

// Config configures a Driver. The zero value is the production setup.
type Config struct {
	// PollInterval separates the power status reads that wait for a
	// power-off to show: BMCs report the new state a moment after they
	// accept the command. Default 500ms.
	PollInterval time.Duration
	// Logger defaults to sdk.Logger().
	Logger hclog.Logger
}

// Driver fences nodes through their BMC.
type Driver struct {
	cfg Config
	log hclog.Logger
}

var _ sdk.StonithDriver = (*Driver)(nil)

// New returns a Driver with cfg's defaults applied.
func New(cfg Config) *Driver {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = sdk.Logger()
	}
	return &Driver{cfg: cfg, log: cfg.Logger.Named("stonith-ipmi")}
}

// Info declares the stonith.ipmi type.
func (d *Driver) Info() sdk.Info {
	return sdk.Info{
		Name:    "stonith-ipmi",
		Version: Version,
		Types: []sdk.TypeInfo{{
			Type: Type,
			Help: "Fence a node by powering it off through its BMC (IPMI over LAN), then confirming the power is off.",
			Keywords: []sdk.Keyword{
				{Name: KwHost, Required: true, Help: "The BMC's address or host name."},
				{Name: KwPort, Type: sdk.TypeInt, Default: strconv.Itoa(DefaultPort), Help: "The BMC's UDP port."},
				{Name: KwUser, Required: true, Help: "The BMC user; it needs the operator or admin privilege to power off."},
				{Name: KwPasswordFile, Required: true, Help: "A file holding the BMC user's password (one line; readable by root only)."},
				{Name: KwCipher, Type: sdk.TypeInt, Default: strconv.Itoa(DefaultCipher), Help: "The RMCP+ cipher suite (lanplus only); 3 is what most BMCs accept, 17 for SHA-256 ones."},
				{Name: KwInterface, Default: DefaultInterface, Candidates: []string{"lanplus", "lan"}, Help: "lanplus (IPMI 2.0, RMCP+) or lan (IPMI 1.5, for old BMCs)."},
				{Name: KwTimeout, Type: sdk.TypeDuration, Default: DefaultTimeout.String(), Help: "How long a fence may take, power-off confirmation included."},
			},
		}},
	}
}

// spec is a [stonith#<node>] section, checked, defaults applied.
type spec struct {
	host         string
	port         int
	user         string
	passwordFile string
	cipher       types.CipherSuiteID
	iface        client.Interface
	timeout      time.Duration
}

// bmc names the BMC in messages.
func (s spec) bmc() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

func parseSpec(kw map[string]string) (spec, error) {
	var errs []string
	bad := func(k, msg string) { errs = append(errs, k+": "+msg) }
	get := func(k string) string { return strings.TrimSpace(kw[k]) }

	s := spec{host: get(KwHost), user: get(KwUser), passwordFile: get(KwPasswordFile)}
	if s.host == "" {
		bad(KwHost, "required: the BMC's address")
	}
	if s.user == "" {
		bad(KwUser, "required: the BMC user")
	}
	if s.passwordFile == "" {
		bad(KwPasswordFile, "required: a file holding the BMC password")
	}

	s.port = DefaultPort
	if v := get(KwPort); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			bad(KwPort, fmt.Sprintf("%q is not a UDP port (1-65535)", v))
		}
		s.port = p
	}

	cipher := DefaultCipher
	if v := get(KwCipher); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil || c < 0 || c > 255 {
			c = -1
		}
		if _, _, _, ok := types.GetCipherSuiteAlgorithms(types.CipherSuiteID(c)); c < 0 || !ok {
			bad(KwCipher, fmt.Sprintf("%q is not a known cipher suite (e.g. 3 or 17)", v))
		}
		cipher = c
	}
	s.cipher = types.CipherSuiteID(cipher)

	switch v := strings.ToLower(get(KwInterface)); v {
	case "", "lanplus":
		s.iface = client.InterfaceLanplus
	case "lan":
		s.iface = client.InterfaceLan
	default:
		bad(KwInterface, fmt.Sprintf("%q: use lanplus or lan", v))
	}

	s.timeout = DefaultTimeout
	if v := get(KwTimeout); v != "" {
		t, err := sdk.ParseDuration(v)
		switch {
		case err != nil:
			bad(KwTimeout, err.Error())
		case t <= 0:
			bad(KwTimeout, "must be more than 0")
		default:
			s.timeout = t
		}
	}

	if len(errs) > 0 {
		return spec{}, fmt.Errorf("%w: %s", ErrConfig, strings.Join(errs, "; "))
	}
	return s, nil
}

// readPassword reads a password file. One trailing line break is not part
// of the password: editors and `echo` add it.
func readPassword(path string) (string, error) {
	// Owned by root and private to it, or refused: a password others
	// can read is a BMC anyone on the node can power off.
	b, err := sdk.ReadSecretFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: password_file: %w", ErrConfig, err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("%w: password_file %s is empty", ErrConfig, path)
	}
	return pw, nil
}

// Fence powers node off through its BMC and returns nil only once the BMC
// reports the power off. A node already off is confirmed, not powered off
// again.
func (d *Driver) Fence(ctx context.Context, node string, kw map[string]string) ([]string, error) {
	s, err := parseSpec(kw)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", node, err)
	}
	fail := func(err error) ([]string, error) {
		d.log.Error("fence failed", "node", node, "bmc", s.bmc(), "error", err)
		return nil, fmt.Errorf("fence %s via %s: %w", node, s.bmc(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()

	c, err := d.connect(ctx, s)
	if err != nil {
		return fail(err)
	}
	defer d.close(ctx, c)

	on, err := powerIsOn(ctx, c)
	if err != nil {
		return fail(err)
	}
	if !on {
		msg := fmt.Sprintf("%s is already off (confirmed by the BMC at %s)", node, s.bmc())
		d.log.Info("fence: already off", "node", node, "bmc", s.bmc())
		return []string{msg}, nil
	}

	// A hard power-off, not a soft shutdown: the node may be hung, and a
	// node that is still writing while a peer takes its disks over is what
	// fencing exists to prevent.
	if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerDown); err != nil {
		return fail(fmt.Errorf("power off command failed (the user needs the operator or admin privilege): %w", err))
	}
	d.log.Info("fence: power off sent", "node", node, "bmc", s.bmc())

	if err := d.waitOff(ctx, c); err != nil {
		after := time.Since(start).Round(time.Millisecond)
		if errors.Is(err, errStillOn) {
			return fail(fmt.Errorf("%w: power still on after %s", ErrNotConfirmed, after))
		}
		return fail(fmt.Errorf("%w after %s: %w", ErrNotConfirmed, after, err))
	}
	took := time.Since(start).Round(time.Millisecond)
	d.log.Info("fence: power off confirmed", "node", node, "bmc", s.bmc(), "took", took.String())
	return []string{
		fmt.Sprintf("power off sent to the BMC of %s at %s", node, s.bmc()),
		fmt.Sprintf("%s is off (confirmed by the BMC after %s)", node, took),
	}, nil
}

// waitOff reads the power status until it is off or ctx ends. A failed
// read is retried: a BMC busy with the power-off may drop a request.
func (d *Driver) waitOff(ctx context.Context, c *client.Client) error {
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	var last error
	for {
		on, err := powerIsOn(ctx, c)
		switch {
		case err == nil && !on:
			return nil
		case err == nil:
			last = errStillOn
		case expired(ctx) && last != nil:
			// The deadline cut this read short; the previous answer is
			// the better account of why the wait failed.
			return last
		default:
			last = err
		}
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
	}
}

// expired reports whether ctx has ended or reached its deadline. go-ipmi
// sets its read deadline to ctx's, so a read can give up a moment before
// ctx's own timer marks it done.
func expired(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(d)
}

// PowerStatus asks the node's BMC whether its power is on.
func (d *Driver) PowerStatus(ctx context.Context, node string, kw map[string]string) (string, error) {
	s, err := parseSpec(kw)
	if err != nil {
		return sdk.PowerUnknown, fmt.Errorf("power status of %s: %w", node, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	c, err := d.connect(ctx, s)
	if err != nil {
		return sdk.PowerUnknown, fmt.Errorf("power status of %s via %s: %w", node, s.bmc(), err)
	}
	defer d.close(ctx, c)
	on, err := powerIsOn(ctx, c)
	if err != nil {
		return sdk.PowerUnknown, fmt.Errorf("power status of %s via %s: %w", node, s.bmc(), err)
	}
	if on {
		return sdk.PowerOn, nil
	}
	return sdk.PowerOff, nil
}

func powerIsOn(ctx context.Context, c *client.Client) (bool, error) {
	st, err := c.GetChassisStatus(ctx)
	if err != nil {
		return false, fmt.Errorf("cannot read the power status: %w", err)
	}
	return st.PowerIsOn, nil
}

// connect opens an authenticated session with the BMC.
func (d *Driver) connect(ctx context.Context, s spec) (*client.Client, error) {
	pw, err := readPassword(s.passwordFile)
	if err != nil {
		return nil, err
	}
	c, err := client.NewClient(s.host, s.port, s.user, pw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.WithInterface(s.iface)
	if s.iface == client.InterfaceLanplus {
		// An explicit suite: without one go-ipmi asks the BMC for its list
		// and tries them in turn, which costs seconds on BMCs that drop the
		// suites they refuse.
		c.WithCipherSuiteID(s.cipher)
	}
	if err := c.Connect(ctx); err != nil {
		// Close only frees the socket here; a canceled context keeps it
		// from waiting on a close-session that nobody will answer.
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = c.Close(cctx)
		return nil, classifyConnect(s, flat{err})
	}
	return c, nil
}

// classifyConnect tells an unreachable BMC from one that refuses the
// session: the operator's next step differs (network vs credentials).
// go-ipmi does not keep its error chain through the session handshake, so
// this relies on its step names: the first request of both handshakes is
// the sessionless Get Channel Authentication Capabilities; failing there
// means nobody answered. A later failure, even a timeout, is a refusal:
// an IPMI 1.5 BMC drops a request signed with the wrong password. TestFence_UnreachableBMC and
// TestFence_WrongPassword pin this against a go-ipmi upgrade.
func classifyConnect(s spec, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "Get Channel Authentication Capabilities failed") ||
		strings.Contains(msg, "GetChannelAuthenticationCapabilities failed") {
		return fmt.Errorf("%w (check host, port, that the BMC's LAN channel is enabled and that the network lets UDP through): %w", ErrUnreachable, err)
	}
	hint := "check user and password_file"
	if s.iface == client.InterfaceLanplus {
		hint += fmt.Sprintf(", and that the BMC allows cipher suite %d", s.cipher)
	}
	return fmt.Errorf("%w (%s): %w", ErrSession, hint, err)
}

// flat keeps a go-ipmi error on one line: it joins the errors of each
// cipher suite tried with line breaks, and the message ends up in a status
// line and a log line.
type flat struct{ err error }

func (f flat) Error() string { return strings.Join(strings.Fields(f.err.Error()), " ") }
func (f flat) Unwrap() error { return f.err }

// close ends the session. It runs even when the fence's deadline has
// passed, so it gets a short deadline of its own: a session left open
// holds one of the BMC's few session slots until it times out.
func (d *Driver) close(ctx context.Context, c *client.Client) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := c.Close(cctx); err != nil {
		d.log.Debug("closing the BMC session", "bmc", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), "error", err)
	}
}
