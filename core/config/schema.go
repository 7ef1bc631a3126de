package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// KeywordType is the type of a keyword's value.
type KeywordType string

// Keyword types; they match the sdk.Type* strings plugins declare.
const (
	String   KeywordType = "string"
	Int      KeywordType = "int"
	Bool     KeywordType = "bool"
	Duration KeywordType = "duration" // Go syntax or bare seconds
	List     KeywordType = "list"     // whitespace-separated words
	Size     KeywordType = "size"     // bytes, with an optional unit
)

// Keyword declares one configuration keyword. An empty Type means String.
// Candidates, when set, are the only accepted values (each word of a
// List).
type Keyword struct {
	Name       string
	Type       KeywordType
	Default    string
	Required   bool
	Aliases    []string
	Help       string
	Candidates []string
}

// TypeSchema is one resource type and the keywords it takes.
type TypeSchema struct {
	// Type is "<group>.<driver>" (container.docker, disk.vg) or a bare
	// group (fs, ip) for a group's default driver.
	Type string
	// Group is the part of Type before '.', or the whole; AddType fills
	// it in.
	Group string
	// SectionAliases are section prefixes that also select this type:
	// "vg" makes [vg#1] a disk.vg resource.
	SectionAliases []string
	Keywords       []Keyword
	// Plugin names the plugin serving the type, for messages.
	Plugin string
}

// Schema is everything a service file may say: core's keywords plus the
// types and service keywords plugins declared.
type Schema struct {
	// Service lists the [DEFAULT] section's keywords.
	Service []Keyword
	// Common lists the keywords every resource section takes.
	Common []Keyword
	// Subset lists the keywords of [subset#<type>:<name>] sections.
	Subset []Keyword
	// Types maps a type name to its schema.
	Types map[string]*TypeSchema

	serviceOwner map[string]string // service keyword name or alias → plugin ("" for core)
}

// Groups are the resource groups, in start order (stop runs in reverse).
var Groups = []string{"ip", "disk", "fs", "share", "container", "app", "sync"}

// groupIndex returns a group's position in Groups, or len(Groups).
func groupIndex(g string) int {
	if i := slices.Index(Groups, g); i >= 0 {
		return i
	}
	return len(Groups)
}

// CoreSchema returns a schema holding core's own keywords and no types;
// the plugin host adds what plugins declare.
func CoreSchema() *Schema {
	s := &Schema{
		Service: []Keyword{
			{Name: "nodes", Type: List, Help: "Nodes that may run the service, in placement order."},
			{Name: "drpnodes", Type: List, Help: "Disaster-recovery nodes."},
			{Name: "orchestrate", Default: "no", Candidates: []string{"no", "start", "ha"},
				Help: "no: operator only; start: start at cluster start-up; ha: also fail over."},
			{Name: "app", Help: "Application code, for reporting."},
			{Name: "service_type", Aliases: []string{"env"}, Help: "Service type (PRD, DEV, ...), for reporting."},
			{Name: "comment", Help: "Free text."},
			{Name: "monitor_action", Default: "failover", Candidates: []string{"failover", "freeze_stop", "none"},
				Help: "What to do when a monitored resource stays down after its restarts."},
			{Name: "status_schedule", Type: Duration, Default: "10s", Help: "Interval between status evaluations."},
			{Name: "monitor_schedule", Type: Duration, Default: "1s", Help: "Interval between checks of monitored resources."},
			{Name: "stonith", Type: Bool, Default: "true", Help: "Fence a lost peer before taking its services over."},
			{Name: "priority", Type: Int, Default: "50", Help: "Start priority (OpenSVC's): 0 is the highest. When several services start on a node at once (a takeover), one waits while a service of a higher priority (a lower number) starts there."},
			{Name: "failure_timeout", Type: Duration, Default: "0", Help: "A failed or start-failed mark expires after this long, putting the node back among the candidates (0: kept until svcmgr clear)."},
			{Name: "placement", Default: "nodes order", Candidates: []string{"nodes order"},
				Help: "Placement policy: the first eligible node of nodes."},
		},
		Common: []Keyword{
			{Name: "monitor", Type: Bool, Default: "false", Help: "A down resource triggers restart, then monitor_action."},
			// Restarted in place before monitor_action, as Pacemaker restarts
			// a failed resource where it is before moving it: one crash of a
			// container must not leave a single-node service down for good.
			{Name: "restart", Type: Int, Default: "3", Help: "Local restart attempts before monitor_action (0: none)."},
			{Name: "restart_delay", Type: Duration, Default: "2s", Help: "Delay between restart attempts."},
			{Name: "optional", Type: Bool, Default: "false", Help: "Failures do not fail the action nor count in avail."},
			{Name: "disable", Type: Bool, Default: "false", Help: "Ignore the resource."},
			{Name: "standby", Type: Bool, Default: "false", Help: "Keep the resource up on standby nodes too."},
			{Name: "subset", Help: "Subset the resource belongs to, within its group."},
			{Name: "tags", Type: List, Help: "Tags, for selecting resources."},
		},
		Subset: []Keyword{
			{Name: "parallel", Type: Bool, Default: "false", Help: "Start and stop the subset's resources concurrently."},
		},
		Types:        map[string]*TypeSchema{},
		serviceOwner: map[string]string{},
	}
	s.Service, s.Common = append(s.Service, triggerKeywords("the service's")...), append(s.Common, triggerKeywords("the resource's")...)
	for _, list := range [][]Keyword{s.Service, s.Common, s.Subset} {
		taken := map[string]string{}
		for i := range list {
			if err := normalizeKeyword(&list[i], taken); err != nil {
				panic("config: core schema: " + err.Error())
			}
		}
	}
	for _, kw := range s.Service {
		for _, n := range kw.names() {
			s.serviceOwner[n] = ""
		}
	}
	return s
}

func (k *Keyword) names() []string { return append([]string{k.Name}, k.Aliases...) }

var (
	typeRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)?$`)
	keywordRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// AddType registers a resource type. It refuses a type already served, a
// type outside the resource Groups (heartbeat and stonith types belong to
// the node configuration), a section alias that another type owns, and
// keyword declarations that are malformed or clash with the common
// resource keywords. The schema keeps a copy of t.
func (s *Schema) AddType(t *TypeSchema) error {
	if t == nil {
		return fmt.Errorf("add type: nil type: %w", ErrSchemaKeyword)
	}
	if s.Types == nil {
		s.Types = map[string]*TypeSchema{}
	}
	c := *t
	c.SectionAliases = slices.Clone(t.SectionAliases)
	c.Keywords = slices.Clone(t.Keywords)
	who := fmt.Sprintf("type %q (plugin %q)", c.Type, c.Plugin)

	if !typeRE.MatchString(c.Type) {
		return fmt.Errorf("%s: a type is <group>.<driver> or <group>, lowercase: %w", who, ErrSchemaKeyword)
	}
	group, _, _ := strings.Cut(c.Type, ".")
	if c.Group != "" && c.Group != group {
		return fmt.Errorf("%s: group %q does not match the type's group %q: %w", who, c.Group, group, ErrSchemaKeyword)
	}
	c.Group = group
	if !slices.Contains(Groups, group) {
		return fmt.Errorf("%s: %q is not a resource group (%s): %w",
			who, group, strings.Join(Groups, ", "), ErrNotResourceType)
	}
	if prev, ok := s.Types[c.Type]; ok {
		return fmt.Errorf("%s: already served by plugin %q: %w", who, prev.Plugin, ErrSchemaConflict)
	}
	for i, a := range c.SectionAliases {
		switch {
		case !keywordRE.MatchString(a):
			return fmt.Errorf("%s: section alias %q: use lowercase letters, digits and '_': %w", who, a, ErrSchemaKeyword)
		case a == "subset" || slices.Contains(Groups, a):
			return fmt.Errorf("%s: section alias %q is reserved: %w", who, a, ErrSchemaConflict)
		case slices.Contains(c.SectionAliases[:i], a):
			return fmt.Errorf("%s: section alias %q listed twice: %w", who, a, ErrSchemaKeyword)
		}
		if other := s.aliasOwner(a); other != nil {
			return fmt.Errorf("%s: section alias %q already selects %s (plugin %q): %w",
				who, a, other.Type, other.Plugin, ErrSchemaConflict)
		}
	}

	taken := map[string]string{} // name or alias → what declared it
	for _, kw := range s.Common {
		for _, n := range kw.names() {
			taken[n] = "the common resource keyword " + kw.Name
		}
	}
	if strings.Contains(c.Type, ".") {
		taken["type"] = "the section's type selector"
	}
	for i := range c.Keywords {
		if err := normalizeKeyword(&c.Keywords[i], taken); err != nil {
			return fmt.Errorf("%s: %w", who, err)
		}
	}
	s.Types[c.Type] = &c
	return nil
}

// aliasOwner returns the type selected by section alias a, or nil.
func (s *Schema) aliasOwner(a string) *TypeSchema {
	for _, t := range s.Types {
		if slices.Contains(t.SectionAliases, a) {
			return t
		}
	}
	return nil
}

// AddServiceKeywords adds keywords a plugin declares for the [DEFAULT]
// section (docker_data_dir, say). A name or alias already declared by
// core or another plugin is refused.
func (s *Schema) AddServiceKeywords(plugin string, kws []Keyword) error {
	if s.serviceOwner == nil {
		s.serviceOwner = map[string]string{}
		for _, kw := range s.Service {
			for _, n := range kw.names() {
				s.serviceOwner[n] = ""
			}
		}
	}
	taken := map[string]string{}
	for n, owner := range s.serviceOwner {
		if owner == "" {
			taken[n] = "core's service keyword " + n
		} else {
			taken[n] = fmt.Sprintf("service keyword %s of plugin %q", n, owner)
		}
	}
	add := slices.Clone(kws)
	for i := range add {
		if err := normalizeKeyword(&add[i], taken); err != nil {
			return fmt.Errorf("plugin %q: service keywords: %w", plugin, err)
		}
	}
	for _, kw := range add {
		for _, n := range kw.names() {
			s.serviceOwner[n] = plugin
		}
	}
	s.Service = append(s.Service, add...)
	return nil
}

// normalizeKeyword checks a declaration, fills in the default type, and
// records its names in taken.
func normalizeKeyword(kw *Keyword, taken map[string]string) error {
	if kw.Type == "" {
		kw.Type = String
	}
	kw.Aliases = slices.Clone(kw.Aliases)
	kw.Candidates = slices.Clone(kw.Candidates)
	switch kw.Type {
	case String, Int, Bool, Duration, List, Size, Command:
	default:
		return fmt.Errorf("keyword %q: unknown type %q (string, int, bool, duration, list, size, command): %w",
			kw.Name, kw.Type, ErrSchemaKeyword)
	}
	for _, n := range kw.names() {
		if !keywordRE.MatchString(n) {
			return fmt.Errorf("keyword %q: name %q: use lowercase letters, digits and '_': %w", kw.Name, n, ErrSchemaKeyword)
		}
		if by, ok := taken[n]; ok {
			return fmt.Errorf("keyword %q: %q is already %s: %w", kw.Name, n, by, ErrSchemaConflict)
		}
		taken[n] = "keyword " + kw.Name
	}
	if kw.Required && kw.Default != "" {
		return fmt.Errorf("keyword %q: a required keyword cannot have a default: %w", kw.Name, ErrSchemaKeyword)
	}
	if kw.Default != "" {
		if err := checkValue(kw, kw.Default); err != nil {
			return fmt.Errorf("keyword %q: default: %v: %w", kw.Name, err, ErrSchemaKeyword)
		}
	}
	return nil
}
