package cluster

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/plugins/sdk/value"
)

// The operations keywords of cluster.conf: fence levels (several
// [stonith#...] sections for one node, tried in order), the periodic check
// of every fencing method, and [alert#n] sections.

var fenceCheckKeyword = config.Keyword{Name: "fence_check_interval", Type: config.Duration, Default: "60s",
	Help: "how often every node's fencing methods are asked their power status (nothing is powered), so a broken BMC is known before it is needed; 0 turns the check off"}

var stonithNodeKeyword = config.Keyword{Name: "node",
	Help: "the node this method fences (default: the section's name after stonith#); several sections for one node are fence levels"}

var stonithLevelKeyword = config.Keyword{Name: "level", Type: config.Int, Default: "1",
	Help: "this method's rank among the node's fencing methods: level 1 is tried first, the next one when it fails (e.g. IPMI, then a PDU)"}

// DefaultAlertTimeout bounds an alert command's run.
const DefaultAlertTimeout = 10 * time.Second

// AlertKinds are the event kinds an [alert#n] may name.
var AlertKinds = []string{"joined", "lost", "fence", "fence_failed", "fence_confirm", "fence_check", "claim", "start", "stop",
	"failover", "monitor", "operator", "config", "quorum", "warn"}

var alertKeywords = []config.Keyword{
	{Name: "command", Required: true, Help: "absolute path of the program run for each event (the event in VIGIL_EVENT_* variables and as JSON on stdin)"},
	{Name: "kinds", Type: config.List, Help: "the event kinds it is run for (default all): " + strings.Join(AlertKinds, ", ")},
	{Name: "timeout", Type: config.Duration, Default: "10s", Help: "the command is killed after this long; it never delays a failover"},
}

// AlertConfig is one [alert#n] section.
type AlertConfig struct {
	Name    string // "alert#1"
	Command string
	// Kinds: the event kinds it takes; empty for all.
	Kinds   []string
	Timeout time.Duration
}

// Wants reports whether the alert is run for an event of kind.
func (a AlertConfig) Wants(kind string) bool {
	return len(a.Kinds) == 0 || slices.Contains(a.Kinds, kind)
}

func (c *NodeConfig) alert(path string, sec *config.Section, errs *config.Errors) {
	vals, e := config.CheckSection(path, sec, alertKeywords)
	*errs = append(*errs, e...)
	fail := func(key, format string, args ...any) {
		line := sec.Line
		if en := sec.Entry(key); en != nil {
			line = en.Line
		}
		*errs = append(*errs, &config.Error{File: path, Line: line, Section: sec.Name, Keyword: key, Msg: fmt.Sprintf(format, args...), Err: config.ErrInvalidValue})
	}
	a := AlertConfig{Name: sec.Name, Command: vals["command"], Kinds: strings.Fields(vals["kinds"])}
	a.Timeout, _ = value.ParseDuration(vals["timeout"])
	if a.Timeout <= 0 {
		a.Timeout = DefaultAlertTimeout
	}
	if a.Command != "" && !filepath.IsAbs(a.Command) {
		fail("command", "%q: give an absolute path (alerts run with no PATH of their own)", a.Command)
	}
	for _, k := range a.Kinds {
		if !slices.Contains(AlertKinds, k) {
			fail("kinds", "%q is not an event kind; use %s", k, strings.Join(AlertKinds, ", "))
		}
	}
	c.Alerts = append(c.Alerts, a)
}

// addStonith records one fencing method of a node: its node is the
// section's name after stonith#, or its node keyword; its level orders it
// among the node's methods. Stonith keeps the first level.
func (c *NodeConfig) addStonith(path string, sec *config.Section, st StonithConfig, errs *config.Errors) {
	st.Name = sec.Name
	if n := st.Keywords["node"]; n != "" {
		st.Node = n
	}
	st.Level = 1
	if l := st.Keywords["level"]; l != "" {
		st.Level, _ = strconv.Atoi(l)
	}
	delete(st.Keywords, "node")
	delete(st.Keywords, "level")
	if st.Level < 1 {
		*errs = append(*errs, &config.Error{File: path, Line: sec.Line, Section: sec.Name, Keyword: "level", Err: config.ErrInvalidValue,
			Msg: fmt.Sprintf("%d: levels start at 1 (tried first)", st.Level)})
		return
	}
	if c.FenceLevels == nil {
		c.FenceLevels = map[string][]StonithConfig{}
	}
	for _, o := range c.FenceLevels[st.Node] {
		if o.Level == st.Level {
			*errs = append(*errs, &config.Error{File: path, Line: sec.Line, Section: sec.Name, Keyword: "level", Err: config.ErrInvalidValue,
				Msg: fmt.Sprintf("[%s] is level %d for %s too: give each method of a node its own level", o.Name, st.Level, st.Node)})
			return
		}
	}
	levels := append(c.FenceLevels[st.Node], st)
	slices.SortFunc(levels, func(a, b StonithConfig) int { return a.Level - b.Level })
	c.FenceLevels[st.Node] = levels
	c.Stonith[st.Node] = levels[0]
}
