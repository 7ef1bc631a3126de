// Package fenceagent is the fencing driver (type "stonith.fence_agent")
// that runs the standard fence agents sites already use (Debian's
// fence-agents: fence_ipmilan, fence_virsh, fence_redfish, ...) unchanged,
// through their stdin key=value protocol. It reports success only when the
// agent's own status action says the power is off. It never passes a
// secret on a command line and never logs the options, which may hold one.
package fenceagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// Type is the fencing type this plugin serves.
const Type = "stonith.fence_agent"

// Keyword names of a [stonith#<node>] section.
const (
	KwAgent        = "agent"
	KwOptions      = "options"
	KwPasswordFile = "password_file"
	KwTimeout      = "timeout"
)

// DefaultTimeout bounds a whole fence: the off action and the status runs
// that confirm it. fence_ipmilan alone waits a few seconds after its
// power-off before it checks.
const DefaultTimeout = 30 * time.Second

// Exit codes of the fence agents' status action (fencing.py): 0 when the
// power is on, 2 when it is off. 2 is also EC_BAD_ARGS, which is why an
// off is believed only with the "Status: OFF" line on stdout.
const (
	exitStatusOn  = 0
	exitStatusOff = 2
)

// Errors callers may branch on (inside the plugin process: across gRPC only
// the message survives, which is why each one says what to check).
var (
	// ErrConfig: the [stonith#<node>] section does not validate, or the
	// agent is not installed.
	ErrConfig = errors.New("invalid stonith.fence_agent configuration")
	// ErrAgentFailed: the agent exited with an error or did not finish.
	ErrAgentFailed = errors.New("fence agent failed")
	// ErrNotConfirmed: the agent's status did not report the power off
	// within the timeout.
	ErrNotConfirmed = errors.New("power-off not confirmed")
)

// Config configures a Driver. The zero value is the production setup.
type Config struct {
	// AgentDirs are searched for the agent, in order, before PATH: Debian
	// installs the agents in /usr/sbin, which is not on every daemon's
	// PATH. Default ["/usr/sbin"].
	AgentDirs []string
	// PollInterval separates the status runs that wait for a power-off to
	// show. Default 1s.
	PollInterval time.Duration
	// Logger defaults to sdk.Logger().
	Logger hclog.Logger
}

// Driver fences nodes with a fence agent.
type Driver struct {
	cfg Config
	log hclog.Logger
}

var _ sdk.StonithDriver = (*Driver)(nil)

// New returns a Driver with cfg's defaults applied.
func New(cfg Config) *Driver {
	if cfg.AgentDirs == nil {
		cfg.AgentDirs = []string{"/usr/sbin"}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = sdk.Logger()
	}
	return &Driver{cfg: cfg, log: cfg.Logger.Named("stonith-fence-agent")}
}

// Info declares the stonith.fence_agent type.
func (d *Driver) Info() sdk.Info {
	return sdk.Info{
		Name:    "stonith-fence-agent",
		Version: Version,
		Types: []sdk.TypeInfo{{
			Type: Type,
			Help: "Fence a node with a standard fence agent (fence_ipmilan, fence_virsh, fence_redfish, ...), run unchanged through its stdin key=value protocol; success needs the agent's status to report the power off.",
			Keywords: []sdk.Keyword{
				{Name: KwAgent, Required: true, Help: "The agent's name, e.g. fence_ipmilan; looked up in /usr/sbin, then PATH."},
				{Name: KwOptions, Help: "Whitespace-separated key=value options given to the agent on stdin, as its long options without dashes, e.g. \"ip=10.1.0.101 username=admin lanplus=1 cipher=3\". Options that name a program, script or file to run or write (*_path, *_script, exec, ssh_options, identity_file, logfile, ...) are refused."},
				{Name: KwPasswordFile, Help: "A file holding the password, given to the agent as password=... on stdin (never on a command line)."},
				{Name: KwTimeout, Type: sdk.TypeDuration, Default: DefaultTimeout.String(), Help: "How long a fence may take, power-off confirmation included."},
			},
		}},
	}
}

// spec is a [stonith#<node>] section, checked, defaults applied.
type spec struct {
	agent        string // the name, as configured
	path         string // where it was found
	options      []string
	passwordFile string
	timeout      time.Duration
}

var (
	agentName = regexp.MustCompile(`^fence_[A-Za-z0-9_.-]+$`)
	optionKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
)

// unsafeOptions are fence-agents options (fencing.py's and the agents'
// own, as fencing.py reads them on stdin: the option's name or its long
// option, '-' and '_' alike) that name a program to run, a script to
// source, options for ssh (-oProxyCommand=...) or a file to write.
// Besides these, every *_path (a tool's binary: ipmitool_path, sudo_path,
// ...) and *_script (passwd_script) option is refused.
var unsafeOptions = map[string]bool{
	"exec": true, "runonfail": true, "runonwarn": true, // run a command
	"ssh_options": true, "identity_file": true, // ssh's ProxyCommand, a key
	"logfile": true, "debug": true, "debug_file": true, "status_file": true, "cookie_file": true, // written as root
	"kubeconfig": true, "openrc": true, // may run credential helpers, is sourced
}

// safePaths are *_path options that name no file: fence_pve's api_path
// is the path part of a URL.
var safePaths = map[string]bool{"api_path": true}

// runsOrWrites reports whether an option key is one of unsafeOptions or
// a *_path or *_script one.
func runsOrWrites(key string) bool {
	k := strings.ReplaceAll(strings.ToLower(key), "-", "_")
	switch {
	case unsafeOptions[k]:
		return true
	case strings.HasSuffix(k, "_script"):
		return true
	case strings.HasSuffix(k, "_path") && !safePaths[k]:
		return true
	}
	return false
}

func (d *Driver) parseSpec(kw map[string]string) (spec, error) {
	var errs []string
	bad := func(k, msg string) { errs = append(errs, k+": "+msg) }
	get := func(k string) string { return strings.TrimSpace(kw[k]) }

	s := spec{agent: get(KwAgent), passwordFile: get(KwPasswordFile), timeout: DefaultTimeout}
	switch {
	case s.agent == "":
		bad(KwAgent, "required: a fence agent's name, e.g. fence_ipmilan")
	case !agentName.MatchString(s.agent):
		// A name, not a path: the section is cluster-wide configuration,
		// and it must not be a way to run an arbitrary program as root.
		bad(KwAgent, fmt.Sprintf("%q is not a fence agent's name (fence_..., no path)", s.agent))
	default:
		p, err := d.resolve(s.agent)
		if err != nil {
			bad(KwAgent, err.Error())
		}
		s.path = p
	}

	hasPassword := false
	for _, o := range strings.Fields(kw[KwOptions]) {
		k, _, ok := strings.Cut(o, "=")
		switch {
		case !ok || !optionKey.MatchString(k):
			// Only the key is shown: the value may be a secret.
			bad(KwOptions, fmt.Sprintf("%q is not key=value", k))
		case k == "action":
			bad(KwOptions, "action is set by vigil (off, then status)")
		case runsOrWrites(k):
			// The key only: the value may be a secret.
			bad(KwOptions, fmt.Sprintf("%s= names a program, script or file the agent would run, read as a script or write as root: refused, since the section is cluster-wide configuration (install the agent's tools in their default place; give a password with password_file)", k))
		default:
			hasPassword = hasPassword || k == "password" || k == "passwd"
			s.options = append(s.options, o)
		}
	}
	if hasPassword && s.passwordFile != "" {
		bad(KwPasswordFile, "options already hold a password: keep one of the two (password_file is the one that stays out of the configuration)")
	}

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

// resolve finds an agent in AgentDirs, then PATH.
func (d *Driver) resolve(name string) (string, error) {
	for _, dir := range d.cfg.AgentDirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in %s or PATH (Debian: apt-get install fence-agents)", name, strings.Join(d.cfg.AgentDirs, ", "))
}

// readPassword reads a password file. One trailing line break is not part
// of the password; any other line break is refused, since the agent reads
// one key=value per line.
func readPassword(path string) (string, error) {
	// Owned by root and private to it, or refused: a password others
	// can read is a BMC anyone on the node can power off.
	b, err := sdk.ReadSecretFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: password_file: %w", ErrConfig, err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case pw == "":
		return "", fmt.Errorf("%w: password_file %s is empty", ErrConfig, path)
	case strings.ContainsAny(pw, "\r\n"):
		return "", fmt.Errorf("%w: password_file %s holds more than one line", ErrConfig, path)
	}
	return pw, nil
}

// call is one fence's agent, options and password.
type call struct {
	d        *Driver
	s        spec
	node     string
	password string
}

func (d *Driver) newCall(node string, kw map[string]string) (*call, error) {
	s, err := d.parseSpec(kw)
	if err != nil {
		return nil, err
	}
	c := &call{d: d, s: s, node: node}
	if s.passwordFile != "" {
		if c.password, err = readPassword(s.passwordFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// result is what one run of the agent said.
type result struct {
	exit           int
	stdout, stderr string
}

// run runs the agent once with action. The agent gets everything on stdin,
// the way fenced and Pacemaker drive it, so no secret shows in ps.
func (c *call) run(ctx context.Context, action string) (result, error) {
	var in strings.Builder
	for _, o := range c.s.options {
		in.WriteString(o + "\n")
	}
	if c.password != "" {
		in.WriteString("password=" + c.password + "\n")
	}
	// nodename is what Pacemaker passes too; agents that do not use it
	// skip it silently.
	in.WriteString("nodename=" + c.node + "\n")
	in.WriteString("action=" + action + "\n")

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.s.path)
	cmd.Stdin = strings.NewReader(in.String())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Debian 12's Python agents import the deprecated pipes module; the
	// warning would otherwise be the first line of every error shown.
	cmd.Env = append(os.Environ(), "PYTHONWARNINGS=ignore::DeprecationWarning")
	// Agents run helpers (fence_ipmilan runs ipmitool): on timeout the
	// whole process group goes, or a helper would outlive the fence and
	// keep the output pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second

	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("%w: %s action=%s did not finish in %s (killed)", ErrAgentFailed, c.s.agent, action, time.Since(start).Round(time.Millisecond))
	case errors.As(err, &exitErr):
		r.exit = exitErr.ExitCode()
	case err != nil:
		return r, fmt.Errorf("%w: run %s: %w", ErrAgentFailed, c.s.path, err)
	}
	c.d.log.Debug("fence agent ran", "node", c.node, "agent", c.s.agent, "action", action, "exit", r.exit, "took", time.Since(start).Round(time.Millisecond).String())
	return r, nil
}

// status runs action=status and reads its answer.
func (c *call) status(ctx context.Context) (string, error) {
	r, err := c.run(ctx, "status")
	if err != nil {
		return sdk.PowerUnknown, err
	}
	st := statusLine(r.stdout)
	switch {
	case r.exit == exitStatusOff && st == "OFF":
		return sdk.PowerOff, nil
	case r.exit == exitStatusOn && st == "ON":
		return sdk.PowerOn, nil
	}
	return sdk.PowerUnknown, fmt.Errorf("%w: %s action=status exited %d: %s", ErrAgentFailed, c.s.agent, r.exit, c.message(r))
}

// statusLine returns X of the agent's "Status: X" line, upper case.
func statusLine(stdout string) string {
	for _, l := range strings.Split(stdout, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Status:"); ok {
			return strings.ToUpper(strings.TrimSpace(v))
		}
	}
	return ""
}

// logPrefix matches what fencing.py puts before a message on stderr
// ("2026-11-24 23:30:17,170 ERROR: ", "ERROR:root:").
var logPrefix = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ )?(ERROR|WARNING|INFO|DEBUG):(root:)?\s*`)

// message sums up what the agent printed: its error lines, once each, or
// its last lines when it printed none; the password is masked in case an
// agent echoes it.
func (c *call) message(r result) string {
	var errLines, all []string
	seen := map[string]bool{}
	for _, l := range strings.Split(r.stderr+"\n"+r.stdout, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		isErr := strings.Contains(l, "ERROR") || strings.HasPrefix(l, "Failed")
		l = logPrefix.ReplaceAllString(l, "")
		if seen[l] {
			continue
		}
		seen[l] = true
		all = append(all, l)
		if isErr {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) == 0 {
		errLines = all[max(0, len(all)-3):]
	}
	msg := strings.Join(errLines, "; ")
	if msg == "" {
		msg = "no output"
	}
	if c.password != "" {
		msg = strings.ReplaceAll(msg, c.password, "****")
	}
	if len(msg) > 400 {
		msg = msg[:400] + "..."
	}
	return msg
}

// Fence runs the agent's off action, then its status action until it
// reports the power off, and returns nil only then.
func (d *Driver) Fence(ctx context.Context, node string, kw map[string]string) ([]string, error) {
	c, err := d.newCall(node, kw)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", node, err)
	}
	fail := func(err error) ([]string, error) {
		d.log.Error("fence failed", "node", node, "agent", c.s.agent, "error", err)
		return nil, fmt.Errorf("fence %s with %s: %w", node, c.s.agent, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	start := time.Now()

	r, err := c.run(ctx, "off")
	if err != nil {
		return fail(err)
	}
	if r.exit != 0 {
		return fail(fmt.Errorf("%w: %s action=off exited %d: %s (check options and password_file; `%s -h` lists the agent's options)", ErrAgentFailed, c.s.agent, r.exit, c.message(r), c.s.agent))
	}
	offSaid := firstLine(r.stdout) // "Success: Powered OFF" or "Success: Already OFF"
	d.log.Info("fence: agent powered off", "node", node, "agent", c.s.agent, "said", offSaid)

	// The agent's word for the off is not the confirmation: its status
	// action, a separate query to the device, is.
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	var (
		last    error // the last status run's failure, nil if it said on
		sawOnce bool  // a status run answered at all
	)
	for {
		st, err := c.status(ctx)
		if err == nil && st == sdk.PowerOff {
			break
		}
		// A run killed by the deadline says nothing new: the previous
		// answer is the better account of why the wait failed.
		if err == nil || ctx.Err() == nil || !sawOnce {
			last, sawOnce = err, true
		}
		select {
		case <-ctx.Done():
			after := time.Since(start).Round(time.Millisecond)
			if last == nil {
				return fail(fmt.Errorf("%w: power still on after %s (the agent's status still reports it on)", ErrNotConfirmed, after))
			}
			return fail(fmt.Errorf("%w after %s: %w", ErrNotConfirmed, after, last))
		case <-t.C:
		}
	}
	took := time.Since(start).Round(time.Millisecond)
	d.log.Info("fence: power off confirmed", "node", node, "agent", c.s.agent, "took", took.String())
	return []string{
		fmt.Sprintf("%s action=off on %s: %s", c.s.agent, node, offSaid),
		fmt.Sprintf("%s is off (confirmed by %s action=status after %s)", node, c.s.agent, took),
	}, nil
}

// PowerStatus runs the agent's status action.
func (d *Driver) PowerStatus(ctx context.Context, node string, kw map[string]string) (string, error) {
	c, err := d.newCall(node, kw)
	if err != nil {
		return sdk.PowerUnknown, fmt.Errorf("power status of %s: %w", node, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	st, err := c.status(ctx)
	if err != nil {
		return sdk.PowerUnknown, fmt.Errorf("power status of %s with %s: %w", node, c.s.agent, err)
	}
	return st, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if l == "" {
		return "no output"
	}
	return l
}
