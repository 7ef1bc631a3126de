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
// the message survives, which is why each one says what to check). A
// failed call wraps one of them, its head: the kind of its last attempt,
// or ErrNotConfirmed once a power-off went out; the message then counts
// the attempts of each kind, with the last error of every other kind.
var (
	// ErrConfig: the [stonith#<node>] section does not validate.
	ErrConfig = errors.New("invalid stonith.ipmi configuration")
	// ErrUnreachable: the BMC did not answer the first, sessionless
	// request of the last attempt.
	ErrUnreachable = errors.New("cannot reach the BMC")
	// ErrSession: the BMC answered but no session could be opened; almost
	// always a wrong user, password or cipher suite.
	ErrSession = errors.New("the BMC refused the session")
	// ErrNotConfirmed: a power-off was sent (in any attempt) but the BMC
	// did not report the power off within the timeout.
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
	// ExchangeTimeout bounds each exchange with the BMC, without a
	// resend: every step of the session handshake, every request, the
	// close. An exchange that times out ends the attempt, and the next one
	// opens a new session. A BMC on a LAN answers in milliseconds
	// (ipmi_sim on this 2-core host under load: a whole handshake within
	// 5 ms, a chassis status within 15 ms; real BMCs take tens of ms); 1 s
	// is also ipmitool's and go-ipmi's lanplus timeout, the wait every BMC
	// that works with them is known to meet. It is about the most a
	// silent BMC that comes back mid-fence costs. Default 1s.
	ExchangeTimeout time.Duration
	// RetryPause is the least time between the starts of two attempts,
	// so that a BMC that refuses at once (no route, port closed) is not
	// asked in a tight loop; an attempt that took longer is followed by
	// the next at once. Default 250ms.
	RetryPause time.Duration
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
	if cfg.ExchangeTimeout <= 0 {
		cfg.ExchangeTimeout = time.Second
	}
	if cfg.RetryPause <= 0 {
		cfg.RetryPause = 250 * time.Millisecond
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
				{Name: KwTimeout, Type: sdk.TypeDuration, Default: DefaultTimeout.String(), Help: "How long a fence may take, power-off confirmation included: short attempts (a new session each) are retried until it ends, so a BMC that comes back meanwhile is fenced at once."},
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
// again. It makes short attempts, each in a session of its own, until one
// confirms, one meets a refusal that no retry cures, or the timeout ends.
func (d *Driver) Fence(ctx context.Context, node string, kw map[string]string) ([]string, error) {
	s, err := parseSpec(kw)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", node, err)
	}
	pw, err := readPassword(s.passwordFile)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", node, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	f := fencing{d: d, s: s, pw: pw, node: node, start: start}
	lines, t, err := d.retry(ctx, node, s, func(ctx context.Context) ([]string, *attemptError) { return f.once(ctx) })
	if err != nil {
		err = t.final(f.sent, time.Since(start))
		d.log.Error("fence failed", "node", node, "bmc", s.bmc(), "attempts", t.attempts, "error", err)
		return nil, fmt.Errorf("fence %s via %s: %w", node, s.bmc(), err)
	}
	took := time.Since(start).Round(time.Millisecond)
	d.log.Info("fence: power off confirmed", "node", node, "bmc", s.bmc(), "took", took.String(), "attempts", t.attempts)
	if t.attempts > 1 {
		lines = append(lines, fmt.Sprintf("confirmed at attempt %d (%s)", t.attempts, t.summary()))
	}
	return lines, nil
}

// fencing is one Fence call, carried across its attempts.
type fencing struct {
	d     *Driver
	s     spec
	pw    string
	node  string
	start time.Time
	// sent: a power-off went out in some attempt. From then on, any
	// failure is a power-off not confirmed.
	sent bool
}

// once is one attempt: a session, the power status, the power-off if it
// is on, and the wait for the BMC to report it off.
func (f *fencing) once(ctx context.Context) ([]string, *attemptError) {
	d, s, node := f.d, f.s, f.node
	c, aerr := d.connect(ctx, s, f.pw)
	if aerr != nil {
		return nil, aerr
	}
	defer d.close(ctx, c)

	on, err := powerIsOn(ctx, c)
	if err != nil {
		return nil, f.inSession(err)
	}
	if !on && f.sent {
		return f.confirmed(), nil
	}
	if !on {
		msg := fmt.Sprintf("%s is already off (confirmed by the BMC at %s)", node, s.bmc())
		d.log.Info("fence: already off", "node", node, "bmc", s.bmc())
		return []string{msg}, nil
	}

	// A hard power-off, not a soft shutdown: the node may be hung, and a
	// node that is still writing while a peer takes its disks over is what
	// fencing exists to prevent. Sent again by a later attempt that finds
	// the power still on: it is idempotent, and the node must go off.
	if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerDown); err != nil {
		return nil, f.inSession(fmt.Errorf("power off command failed (the user needs the operator or admin privilege): %w", err))
	}
	f.sent = true
	d.log.Info("fence: power off sent", "node", node, "bmc", s.bmc())

	if err := d.waitOff(ctx, c); err != nil {
		after := time.Since(f.start).Round(time.Millisecond)
		if errors.Is(err, errStillOn) {
			return nil, &attemptError{kind: ErrNotConfirmed, err: fmt.Errorf("power still on after %s", after)}
		}
		return nil, &attemptError{kind: ErrNotConfirmed, err: fmt.Errorf("after %s: %w", after, err)}
	}
	return f.confirmed(), nil
}

func (f *fencing) confirmed() []string {
	took := time.Since(f.start).Round(time.Millisecond)
	return []string{
		fmt.Sprintf("power off sent to the BMC of %s at %s", f.node, f.s.bmc()),
		fmt.Sprintf("%s is off (confirmed by the BMC after %s)", f.node, took),
	}
}

// inSession classifies a request that failed in an open session: after a
// power-off was sent, the power-off is not confirmed; before, the request
// failed.
func (f *fencing) inSession(err error) *attemptError {
	a := requestError(err)
	if f.sent {
		a.kind = ErrNotConfirmed
	}
	return a
}

// retry runs attempt until it succeeds, fails for good or ctx ends, with
// RetryPause between attempts. It returns the tally of the failed ones.
func (d *Driver) retry(ctx context.Context, node string, s spec, attempt func(context.Context) ([]string, *attemptError)) ([]string, *tally, error) {
	t := &tally{}
	for {
		t.attempts++
		begin := time.Now()
		out, aerr := attempt(ctx)
		if aerr == nil {
			return out, t, nil
		}
		// An attempt the deadline cut short says less than the one
		// before it ("power still on" beats "deadline exceeded").
		t.add(aerr, expired(ctx))
		if aerr.final {
			return nil, t, aerr
		}
		lg := d.log.Debug
		if t.attempts == 1 {
			lg = d.log.Info
		}
		// Attempts start RetryPause apart at least: one that timed out
		// has waited already, and a BMC coming back is heard by the next
		// one at once (as by go-ipmi's resend of a sessionless request).
		pause := max(0, d.cfg.RetryPause-time.Since(begin))
		lg("BMC attempt failed: retrying until the timeout", "node", node, "bmc", s.bmc(), "attempt", t.attempts, "kind", label(aerr.kind), "error", aerr.err, "retry_in", pause.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return nil, t, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// waitOff reads the power status until it is off, ctx ends or a read
// fails (the attempt ends and the next one opens a new session: the BMC
// may have lost this one).
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
			return err
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

// PowerStatus asks the node's BMC whether its power is on, in short
// attempts as Fence does, within the timeout or ctx's deadline, whichever
// comes first.
func (d *Driver) PowerStatus(ctx context.Context, node string, kw map[string]string) (string, error) {
	s, err := parseSpec(kw)
	if err != nil {
		return sdk.PowerUnknown, fmt.Errorf("power status of %s: %w", node, err)
	}
	pw, err := readPassword(s.passwordFile)
	if err != nil {
		return sdk.PowerUnknown, fmt.Errorf("power status of %s: %w", node, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	power, t, err := d.retry(ctx, node, s, func(ctx context.Context) ([]string, *attemptError) {
		c, aerr := d.connect(ctx, s, pw)
		if aerr != nil {
			return nil, aerr
		}
		defer d.close(ctx, c)
		on, err := powerIsOn(ctx, c)
		switch {
		case err != nil:
			return nil, requestError(err)
		case on:
			return []string{sdk.PowerOn}, nil
		default:
			return []string{sdk.PowerOff}, nil
		}
	})
	if err != nil {
		return sdk.PowerUnknown, fmt.Errorf("power status of %s via %s: %w", node, s.bmc(), t.final(false, time.Since(start)))
	}
	return power[0], nil
}

func powerIsOn(ctx context.Context, c *client.Client) (bool, error) {
	st, err := c.GetChassisStatus(ctx)
	if err != nil {
		return false, fmt.Errorf("cannot read the power status: %w", err)
	}
	return st.PowerIsOn, nil
}

// connect opens an authenticated session with the BMC.
func (d *Driver) connect(ctx context.Context, s spec, pw string) (*client.Client, *attemptError) {
	c, err := client.NewClient(s.host, s.port, s.user, pw)
	if err != nil {
		return nil, &attemptError{kind: ErrConfig, final: true, err: err}
	}
	// One send per exchange, no resend: a lost answer ends the attempt
	// and the next one starts over in a new session (go-ipmi resends the
	// handshake's steps unmatched, so a late answer to a resent step can
	// be read as the next step's).
	c.WithInterface(s.iface).WithTimeout(d.cfg.ExchangeTimeout).WithRetry(0)
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

// close ends the session. It runs even when the fence's deadline has
// passed, so it gets a deadline of its own: a session left open holds one
// of the BMC's few session slots until it times out.
func (d *Driver) close(ctx context.Context, c *client.Client) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ExchangeTimeout)
	defer cancel()
	if err := c.Close(cctx); err != nil {
		d.log.Debug("closing the BMC session", "bmc", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), "error", err)
	}
}
