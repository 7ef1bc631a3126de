package app

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// OCF return codes (the Open Cluster Framework's resource agent API).
const (
	ocfSuccess       = 0
	ocfNotRunning    = 7
	ocfRunningMaster = 8
	ocfDegraded      = 190
	ocfDegradedMastr = 191
)

// ocfCodes names every OCF return code, for reasons and errors.
var ocfCodes = map[int]string{
	0:   "OCF_SUCCESS",
	1:   "OCF_ERR_GENERIC: generic error",
	2:   "OCF_ERR_ARGS: wrong or missing parameters",
	3:   "OCF_ERR_UNIMPLEMENTED: action not implemented by the agent",
	4:   "OCF_ERR_PERM: insufficient permission",
	5:   "OCF_ERR_INSTALLED: a program or file the agent needs is missing on this node",
	6:   "OCF_ERR_CONFIGURED: the parameters are wrong",
	7:   "OCF_NOT_RUNNING",
	8:   "OCF_RUNNING_MASTER",
	9:   "OCF_FAILED_MASTER: failed as master",
	190: "OCF_DEGRADED: running, degraded",
	191: "OCF_DEGRADED_MASTER: running as master, degraded",
}

func ocfCodeName(code int) string {
	if n, ok := ocfCodes[code]; ok {
		return n
	}
	return "not an OCF return code"
}

// metaData is what Vigil reads of an agent's meta-data.
type metaData struct {
	Name       string `xml:"name,attr"`
	Parameters []struct {
		Name      string `xml:"name,attr"`
		Required  string `xml:"required,attr"`
		ShortDesc string `xml:"shortdesc"`
		Content   struct {
			Type    string `xml:"type,attr"`
			Default string `xml:"default,attr"`
		} `xml:"content"`
	} `xml:"parameters>parameter"`
	Actions []struct {
		Name    string `xml:"name,attr"`
		Timeout string `xml:"timeout,attr"`
		Depth   string `xml:"depth,attr"`
	} `xml:"actions>action"`
}

type cachedMeta struct {
	mtime time.Time
	size  int64
	md    *metaData
}

// actionTimeout is the agent's advised timeout for action (the depth-0
// monitor), or 0.
func (m *metaData) actionTimeout(action string) time.Duration {
	for _, a := range m.Actions {
		if a.Name != action || (a.Depth != "" && a.Depth != "0") {
			continue
		}
		if d, err := parseOCFDuration(a.Timeout); err == nil {
			return d
		}
	}
	return 0
}

// parseOCFDuration reads Pacemaker's spellings: "20s", "20", "2min", "1m",
// "500ms", "1h".
func parseOCFDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "ins"), "in") // min, mins → m
	return sdk.ParseDuration(s)
}

// ocfSpec is an OCF resource's keywords, checked against its agent.
type ocfSpec struct {
	provider, agent string
	path            string
	params          [][2]string // name, value, as written
	md              *metaData
}

var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]+$`)

// ocfSpec reads an OCF resource, running the agent's meta-data (cached by
// the agent file's mtime and size), with every problem at once.
func (d *Driver) ocfSpec(ctx context.Context, r sdk.Resource) (*ocfSpec, []sdk.FieldError) {
	var errs []sdk.FieldError
	s := &ocfSpec{}
	agent := strings.TrimSpace(r.Get("agent"))
	prov, name, ok := strings.Cut(agent, ":")
	if !ok || !agentNameRE.MatchString(prov) || !agentNameRE.MatchString(name) {
		return nil, []sdk.FieldError{{Keyword: "agent", Message: fmt.Sprintf("%q: write PROVIDER:AGENT, e.g. heartbeat:Dummy", agent)}}
	}
	s.provider, s.agent = prov, name
	s.path = filepath.Join(d.cfg.OCFRoot, "resource.d", prov, name)
	if words, err := splitWords(r.Get("params")); err != nil {
		errs = append(errs, sdk.FieldError{Keyword: "params", Message: err.Error()})
	} else {
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok || !agentNameRE.MatchString(k) {
				errs = append(errs, sdk.FieldError{Keyword: "params", Message: fmt.Sprintf("%q: write name=value (quote a value with spaces)", w)})
				continue
			}
			s.params = append(s.params, [2]string{k, v})
		}
	}
	md, err := d.metaData(ctx, s.path)
	if err != nil {
		return nil, append(errs, sdk.FieldError{Keyword: "agent", Message: err.Error()})
	}
	s.md = md
	known := map[string]bool{}
	var names []string
	for _, p := range md.Parameters {
		known[p.Name] = true
		names = append(names, p.Name)
	}
	set := map[string]bool{}
	for _, p := range s.params {
		if set[p[0]] {
			errs = append(errs, sdk.FieldError{Keyword: "params", Message: fmt.Sprintf("parameter %q is set twice; keep one", p[0])})
		}
		set[p[0]] = true
		if !known[p[0]] {
			msg := fmt.Sprintf("unknown parameter %q of %s", p[0], agent)
			if len(names) > 0 {
				msg += "; it takes " + strings.Join(names, ", ")
			} else {
				msg += "; it takes none"
			}
			errs = append(errs, sdk.FieldError{Keyword: "params", Message: msg})
		}
	}
	for _, p := range md.Parameters {
		if req, _ := sdk.ParseBool(p.Required); req && !set[p.Name] {
			msg := fmt.Sprintf("%s requires parameter %s", agent, p.Name)
			if desc := strings.TrimSpace(p.ShortDesc); desc != "" {
				msg += " (" + desc + ")"
			}
			errs = append(errs, sdk.FieldError{Keyword: "params", Message: msg + ": add " + p.Name + "=... to params"})
		}
	}
	return s, errs
}

// metaData runs the agent's meta-data action, or returns the cached one.
func (d *Driver) metaData(ctx context.Context, path string) (*metaData, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("no agent %s: install the package that ships it (resource-agents for heartbeat:*): %w", path, err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("the agent %s is not an executable file", path)
	}
	d.mu.Lock()
	c, ok := d.metadata[path]
	d.mu.Unlock()
	if ok && c.mtime.Equal(fi.ModTime()) && c.size == fi.Size() {
		return c.md, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "meta-data")
	cmd.Env = d.ocfEnv(nil, "", "meta-data", 10*time.Second)
	cmd.Dir = "/"
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s meta-data: %w", path, err)
	}
	md := &metaData{}
	if err := xml.Unmarshal(out, md); err != nil {
		return nil, fmt.Errorf("%s meta-data is not the OCF XML: %w", path, err)
	}
	d.mu.Lock()
	d.metadata[path] = cachedMeta{mtime: fi.ModTime(), size: fi.Size(), md: md}
	d.mu.Unlock()
	return md, nil
}

// ocfEnv is the environment an agent runs with, as Pacemaker gives it.
func (d *Driver) ocfEnv(s *ocfSpec, instance, action string, limit time.Duration) []string {
	env := []string{
		"PATH=" + basePath, "LANG=C", "HOME=/root",
		"OCF_ROOT=" + d.cfg.OCFRoot,
		"OCF_RA_VERSION_MAJOR=1", "OCF_RA_VERSION_MINOR=1",
		"OCF_RESKEY_CRM_meta_timeout=" + strconv.FormatInt(limit.Milliseconds(), 10),
	}
	if action == "monitor" {
		// Every monitor is a probe (interval 0): on a node where the
		// service is down, prerequisites on a shared disk that is not
		// mounted here read "not running", not an error.
		env = append(env, "OCF_RESKEY_CRM_meta_interval=0")
	}
	if s == nil {
		return env
	}
	env = append(env, "OCF_RESOURCE_INSTANCE="+instance, "OCF_RESOURCE_TYPE="+s.agent, "OCF_RESOURCE_PROVIDER="+s.provider)
	for _, p := range s.params {
		env = append(env, "OCF_RESKEY_"+p[0]+"="+p[1])
	}
	return env
}

// ocfInstance names the resource for the agent (its state files): unique
// on the node, service and resource id.
func ocfInstance(r sdk.Resource) string { return r.Service.Name + "-" + fileBase(r.RID) }

// ocfRun runs one action of the agent with its timeout: the resource's
// own keyword, else the agent's meta-data, else 20 s. HA_RSCTMP, where
// agents keep their state (Dummy's "running"), is the service's run
// directory rather than the host's /run/resource-agents: cleared at boot
// all the same, and private to the node when nodes share a host's /run
// (the lab's).
func (d *Driver) ocfRun(ctx context.Context, r sdk.Resource, s *ocfSpec, action, kw string) run {
	limit := timeout(r, kw, s.md.actionTimeout(action))
	if limit == 0 {
		limit = 20 * time.Second
	}
	dir, err := stateDir(r)
	if err != nil {
		return run{code: -1, err: err}
	}
	rsctmp := filepath.Join(dir, "rsctmp")
	if err := os.MkdirAll(rsctmp, 0o755); err != nil {
		return run{code: -1, err: err}
	}
	env := append(d.ocfEnv(s, ocfInstance(r), action, limit), "HA_RSCTMP="+rsctmp)
	return runCommand(ctx, []string{s.path, action}, "/", env, nil, limit,
		filepath.Join(dir, fileBase(r.RID)+"."+action+".out"))
}

func (d *Driver) ocfSpecOrError(ctx context.Context, r sdk.Resource) (*ocfSpec, error) {
	s, errs := d.ocfSpec(ctx, r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("app.ocf", errs)
	}
	return s, nil
}

// ocfFailed is the error of an action that did not return OCF_SUCCESS.
func ocfFailed(s *ocfSpec, action string, res run) error {
	if res.err != nil {
		return fmt.Errorf("%s:%s %s: %w", s.provider, s.agent, action, res.err)
	}
	msg := fmt.Sprintf("%s:%s %s returned %d (%s)", s.provider, s.agent, action, res.code, ocfCodeName(res.code))
	if t := res.tail(5); len(t) > 0 {
		msg += ": " + strings.Join(t, " | ")
	}
	return errors.New(msg)
}

// ocfStart probes the agent first: running is done; failed (neither
// running nor stopped) is stopped first, as Pacemaker recovers a resource.
func (d *Driver) ocfStart(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, err := d.ocfSpecOrError(ctx, r)
	if err != nil {
		return nil, err
	}
	var log []string
	switch probe := d.ocfRun(ctx, r, s, "monitor", "check_timeout"); {
	case probe.err == nil && (probe.code == ocfSuccess || probe.code == ocfRunningMaster):
		return []string{"already running"}, nil
	case probe.err == nil && probe.code == ocfNotRunning:
	default:
		log = append(log, fmt.Sprintf("monitor: %v; stopping it before the start", ocfFailed(s, "monitor", probe)))
		if stop := d.ocfRun(ctx, r, s, "stop", "stop_timeout"); stop.err != nil || stop.code != ocfSuccess {
			return log, ocfFailed(s, "stop", stop)
		}
	}
	res := d.ocfRun(ctx, r, s, "start", "start_timeout")
	if res.err != nil || res.code != ocfSuccess {
		return log, ocfFailed(s, "start", res)
	}
	return append(log, res.tail(3)...), nil
}

func (d *Driver) ocfStop(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, err := d.ocfSpecOrError(ctx, r)
	if err != nil {
		return nil, err
	}
	res := d.ocfRun(ctx, r, s, "stop", "stop_timeout")
	if res.err != nil || res.code != ocfSuccess {
		return nil, ocfFailed(s, "stop", res)
	}
	return res.tail(3), nil
}

// ocfStatus maps monitor's return code: 0 (and 8, master) up, 7 down,
// 190/191 warn (degraded), anything else warn with the code's meaning
// and the agent's output, which a monitored resource treats as a failure.
func (d *Driver) ocfStatus(ctx context.Context, r sdk.Resource) sdk.ResourceStatus {
	s, err := d.ocfSpecOrError(ctx, r)
	if err != nil {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Log: []string{err.Error()}}
	}
	label := s.provider + ":" + s.agent
	res := d.ocfRun(ctx, r, s, "monitor", "check_timeout")
	switch {
	case res.err != nil:
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Log: []string{"monitor: " + res.err.Error()}, Label: label}
	case res.code == ocfSuccess || res.code == ocfRunningMaster:
		return sdk.ResourceStatus{Status: sdk.StatusUp, Label: label}
	case res.code == ocfNotRunning:
		return sdk.ResourceStatus{Status: sdk.StatusDown, Label: label}
	}
	reason := []string{fmt.Sprintf("monitor returned %d (%s)", res.code, ocfCodeName(res.code))}
	if !slices.Contains([]int{ocfDegraded, ocfDegradedMastr}, res.code) {
		reason = append(reason, res.tail(2)...)
	}
	return sdk.ResourceStatus{Status: sdk.StatusWarn, Log: reason, Label: label}
}
