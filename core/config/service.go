package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/vigil-ha/vigil/plugins/sdk/value"
)

// Service is a loaded, validated service configuration.
type Service struct {
	Name string
	Path string
	// Keywords holds the [DEFAULT] section: canonical names, defaults
	// applied.
	Keywords map[string]string
	// Resources are sorted in start order: by group (see Groups), then
	// subset name, then resource id number.
	Resources []*Resource
	// Subsets maps "<type>:<name>" to the subset sections; <type> is a
	// full type (container.docker) or a bare group (container), as
	// written. Use SubsetOf to find a resource's subset.
	Subsets map[string]*Subset
}

// Resource is one resource section.
type Resource struct {
	RID   string // section name: "fs#1"
	Group string // "fs", "container"
	Type  string // "fs", "container.docker"
	// Keywords maps canonical keyword names to values, defaults applied;
	// every common resource keyword is present. A [<group>#n] section's
	// `type` selector is not a keyword and is left out.
	Keywords map[string]string
	Subset   string
	Line     int
	// KeywordLines maps the keywords the section sets to their lines.
	KeywordLines map[string]int

	Monitor, Optional, Disable, Standby bool
	Restart                             int
	RestartDelay                        time.Duration
	Tags                                []string
}

// Subset is one [subset#<type>:<name>] section.
type Subset struct {
	Type, Name string
	Parallel   bool
	Line       int
}

// SubsetOf returns the subset section governing r: the one naming r's
// type, else the one naming r's group, else nil (a subset without a
// section is not parallel).
func (s *Service) SubsetOf(r *Resource) *Subset {
	if r.Subset == "" {
		return nil
	}
	if ss := s.Subsets[r.Type+":"+r.Subset]; ss != nil {
		return ss
	}
	return s.Subsets[r.Group+":"+r.Subset]
}

// Resource returns the resource with the given id, or nil.
func (s *Service) Resource(rid string) *Resource {
	for _, r := range s.Resources {
		if r.RID == rid {
			return r
		}
	}
	return nil
}

// Load reads and parses the service file at path (see Parse).
func Load(path string, s *Schema) (*Service, error) {
	data, err := ReadFile(path)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("read service config: %w", err)
	}
	return Parse(path, data, s)
}

// Parse parses and validates a service file read from path. The service
// is named after the file, less its .env or .conf extension. Either the
// service or an error comes back, never both: on any problem the error is
// Errors, holding every problem found in the file.
//
// A resource section [P#n] gets its type this way: a type listing P in
// its SectionAliases ([vg#1] → disk.vg); else the type named P ([fs#1] →
// fs), whose `type` keyword, if it declares one, is an ordinary keyword
// (fs type = ext4); else, P being a group, the section's `type` keyword T
// selects P.T ([container#1] type = docker → container.docker, and
// [ip#2] type = cni → ip.cni since ip declares no `type`) and is not
// passed on as a keyword. A subset section names a type or a bare
// group and covers the resources of that type or group whose `subset`
// keyword is its name. A file over MaxFileSize is refused (ErrTooLarge).
func Parse(path string, data []byte, s *Schema) (*Service, error) {
	if s == nil {
		return nil, errors.New("config: Parse needs a schema; start from CoreSchema()")
	}
	if err := checkSize(path, int64(len(data))); err != nil {
		return nil, err
	}
	l := &loader{path: path, schema: s}
	name := l.serviceName()
	f, errs := parseINI(path, data)
	l.errs = append(l.errs, errs...)

	l.svc = &Service{Name: name, Path: path, Subsets: map[string]*Subset{}}
	def := f.Section(DefaultSection)
	if def == nil {
		def = &Section{Name: DefaultSection}
	}
	l.svc.Keywords, _ = l.keywords(def, s.Service, "", nil)
	for _, sec := range f.Sections {
		if sec.Name != DefaultSection {
			l.section(sec)
		}
	}
	if err := l.errs.err(); err != nil {
		return nil, err
	}
	sort.SliceStable(l.svc.Resources, func(i, j int) bool {
		a, b := l.svc.Resources[i], l.svc.Resources[j]
		if ga, gb := groupIndex(a.Group), groupIndex(b.Group); ga != gb {
			return ga < gb
		}
		if a.Subset != b.Subset {
			return a.Subset < b.Subset
		}
		return ridLess(a.RID, b.RID)
	})
	return l.svc, nil
}

// ridLess orders resource ids by number ("fs#2" before "fs#10"), ids
// without a number after numbered ones, then by name.
func ridLess(a, b string) bool {
	_, sa, _ := strings.Cut(a, "#")
	_, sb, _ := strings.Cut(b, "#")
	na, ea := strconv.ParseUint(sa, 10, 64)
	nb, eb := strconv.ParseUint(sb, 10, 64)
	switch {
	case ea == nil && eb == nil && na != nb:
		return na < nb
	case (ea == nil) != (eb == nil):
		return ea == nil
	case sa != sb:
		return sa < sb
	}
	return a < b
}

type loader struct {
	path   string
	schema *Schema
	svc    *Service
	errs   Errors
}

func (l *loader) fail(line int, section, keyword string, kind error, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.path, Line: line, Section: section, Keyword: keyword,
		Msg: fmt.Sprintf(format, args...), Err: kind})
}

var (
	serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	ridRE         = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// CheckServiceName refuses a name that cannot be a service's: one that
// is not letters, digits, '.', '_' and '-' starting with a letter or
// digit, or is longer than a file name may be. Check names that come from
// outside (a peer's dataset, an API path) with it before they make a path.
func CheckServiceName(name string) error {
	if len(name) > 250 || !serviceNameRE.MatchString(name) {
		return fmt.Errorf("%w %q: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 250 bytes", ErrBadServiceName, name)
	}
	if slices.Contains(reservedNames, name) {
		return fmt.Errorf("%w %q: %s.conf is reserved", ErrBadServiceName, name, name)
	}
	return nil
}

// reservedNames are files of the config directory that are not services.
var reservedNames = []string{"cluster", "node"}

func (l *loader) serviceName() string {
	base := filepath.Base(l.path)
	for _, ext := range []string{".env", ".conf"} {
		if name, ok := strings.CutSuffix(base, ext); ok {
			if !serviceNameRE.MatchString(name) {
				l.fail(0, "", "", ErrBadServiceName,
					"service name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
			}
			return name
		}
	}
	l.fail(0, "", "", ErrBadServiceName, "a service file is named <service>.env or <service>.conf")
	return ""
}

func (l *loader) section(sec *Section) {
	prefix, suffix, ok := strings.Cut(sec.Name, "#")
	if !ok || prefix == "" || suffix == "" {
		msg := "expected [DEFAULT], [<driver>#<n>] or [subset#<type>:<name>]"
		if strings.EqualFold(sec.Name, DefaultSection) {
			msg = "write [DEFAULT] in capitals"
		}
		l.fail(sec.Line, sec.Name, "", ErrUnknownSection, "%s", msg)
		return
	}
	if prefix == "subset" {
		l.subset(sec, suffix)
		return
	}
	if !ridRE.MatchString(suffix) {
		l.fail(sec.Line, sec.Name, "", ErrUnknownSection,
			"resource id %q: after '#' use letters, digits, '_' and '-' (e.g. [%s#1])", suffix, prefix)
		return
	}
	l.resource(sec, prefix)
}

// how a resource section found its type
const (
	byAlias    = iota // [vg#1]: a section alias
	byName            // [fs#1]: the type's own name; `type` is its keyword
	bySelector        // [container#1] type = docker
)

// resolve finds the type of a resource section (the rules are in Parse's
// documentation), or reports why it cannot.
func (l *loader) resolve(sec *Section, prefix string) (*TypeSchema, int) {
	if t := l.schema.aliasOwner(prefix); t != nil {
		return t, byAlias
	}
	typeEntry := sec.Entry("type")
	exact := l.schema.Types[prefix]
	if exact != nil && (typeEntry == nil || exact.has("type")) {
		return exact, byName
	}
	if slices.Contains(Groups, prefix) {
		drivers := l.schema.drivers(prefix)
		known := "none; no plugin serves this group"
		if len(drivers) > 0 {
			known = strings.Join(drivers, ", ")
		}
		if typeEntry == nil {
			l.fail(sec.Line, sec.Name, "type", ErrMissingKeyword,
				"required to select the %s driver; known %s types: %s", prefix, prefix, known)
			return nil, 0
		}
		drv := strings.ToLower(strings.TrimSpace(typeEntry.Value))
		if t := l.schema.Types[prefix+"."+drv]; t != nil {
			return t, bySelector
		}
		if drv == prefix && exact != nil {
			return exact, bySelector
		}
		msg := fmt.Sprintf("unknown type %q; known %s types: %s", drv, prefix, known)
		switch {
		case exact != nil && len(drivers) == 0:
			msg = fmt.Sprintf("unknown type %q; only the plain %s type is served: remove type", drv, prefix)
		case exact != nil:
			msg += fmt.Sprintf(", or remove type for the plain %s type", prefix)
		}
		if s := suggest(drv, drivers); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		l.fail(typeEntry.Line, sec.Name, "type", ErrUnknownType, "%s", msg)
		return nil, 0
	}
	for _, t := range l.schema.sortedTypes() {
		if g, drv, ok := strings.Cut(t.Type, "."); ok && drv == prefix {
			l.fail(sec.Line, sec.Name, "", ErrUnknownSection,
				"unknown section prefix %q; write [%s#<n>] with type = %s", prefix, g, drv)
			return nil, 0
		}
	}
	candidates := append(slices.Clone(Groups), "subset")
	for _, t := range l.schema.sortedTypes() {
		candidates = append(candidates, t.SectionAliases...)
	}
	msg := fmt.Sprintf("unknown section prefix %q", prefix)
	if s := suggest(prefix, candidates); s != "" {
		msg += fmt.Sprintf("; did you mean [%s#...]?", s)
	} else {
		msg += "; expected one of " + strings.Join(candidates, ", ")
	}
	l.fail(sec.Line, sec.Name, "", ErrUnknownSection, "%s", msg)
	return nil, 0
}

func (l *loader) resource(sec *Section, prefix string) {
	t, how := l.resolve(sec, prefix)
	if t == nil {
		return
	}
	var skip *Entry
	if e := sec.Entry("type"); e != nil && !t.has("type") {
		skip = e
		if how == byAlias {
			// [vg#1] type = vg is redundant but fine; anything else is a
			// contradiction.
			drv := strings.ToLower(strings.TrimSpace(e.Value))
			_, tdrv, _ := strings.Cut(t.Type, ".")
			if drv != tdrv && drv != t.Type {
				l.fail(e.Line, sec.Name, "type", ErrInvalidValue,
					"%q contradicts the section prefix %q, which selects %s; remove type", drv, prefix, t.Type)
			}
		}
	}
	kws := append(slices.Clone(t.Keywords), l.schema.Common...)
	vals, seen := l.keywords(sec, kws, fmt.Sprintf("%s (plugin %q)", t.Type, t.Plugin), skip)
	for _, kw := range l.schema.Common {
		if _, ok := vals[kw.Name]; !ok {
			vals[kw.Name] = kw.Default
		}
	}
	r := &Resource{
		RID:      sec.Name,
		Group:    t.Group,
		Type:     t.Type,
		Keywords: vals,
		Subset:   strings.TrimSpace(vals["subset"]),
		Line:     sec.Line,
		Tags:     strings.Fields(vals["tags"]),

		KeywordLines: entryLines(seen),
	}
	// Values were checked against their types above; a failed parse here
	// only happens for a value already reported.
	r.Monitor, _ = value.ParseBool(vals["monitor"])
	r.Optional, _ = value.ParseBool(vals["optional"])
	r.Disable, _ = value.ParseBool(vals["disable"])
	r.Standby, _ = value.ParseBool(vals["standby"])
	r.RestartDelay, _ = value.ParseDuration(vals["restart_delay"])
	r.Restart, _ = parseInt(vals["restart"])
	if e := seen["restart"]; e != nil && r.Restart < 0 {
		l.fail(e.Line, sec.Name, e.Key, ErrInvalidValue, "%d: cannot be negative", r.Restart)
	}
	if e := seen["subset"]; e != nil && strings.ContainsFunc(r.Subset, unicode.IsSpace) {
		l.fail(e.Line, sec.Name, e.Key, ErrInvalidValue, "%q: a subset name cannot contain spaces", r.Subset)
	}
	l.svc.Resources = append(l.svc.Resources, r)
}

func (l *loader) subset(sec *Section, spec string) {
	typ, name, ok := strings.Cut(spec, ":")
	if !ok || typ == "" || name == "" {
		l.fail(sec.Line, sec.Name, "", ErrUnknownSection,
			"expected [subset#<type>:<name>], e.g. [subset#container.docker:appservers]")
		return
	}
	if strings.ContainsFunc(name, unicode.IsSpace) {
		l.fail(sec.Line, sec.Name, "", ErrUnknownSection, "subset name %q cannot contain spaces", name)
		return
	}
	switch t := l.schema.aliasOwner(typ); {
	case l.schema.Types[typ] != nil || slices.Contains(Groups, typ):
	case t != nil:
		typ = t.Type
	default:
		candidates := slices.Clone(Groups)
		for _, t := range l.schema.sortedTypes() {
			candidates = append(candidates, t.Type)
			candidates = append(candidates, t.SectionAliases...)
		}
		msg := fmt.Sprintf("unknown type %q; a subset names a type (container.docker) or a group (%s)",
			typ, strings.Join(Groups, ", "))
		if s := suggest(typ, candidates); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		l.fail(sec.Line, sec.Name, "", ErrUnknownType, "%s", msg)
		return
	}
	key := typ + ":" + name
	if prev := l.svc.Subsets[key]; prev != nil {
		l.fail(sec.Line, sec.Name, "", ErrDuplicate,
			"subset %s is already defined on line %d; merge the two", key, prev.Line)
		return
	}
	vals, _ := l.keywords(sec, l.schema.Subset, "subset sections", nil)
	parallel, _ := value.ParseBool(vals["parallel"])
	l.svc.Subsets[key] = &Subset{Type: typ, Name: name, Parallel: parallel, Line: sec.Line}
}

// keywords maps a section's entries to canonical names, checks their
// values and that required ones are set, and applies defaults. what names
// the section's kind in messages ("" for [DEFAULT]); skip is an entry
// already consumed (a type selector). seen maps canonical names to the
// entries that set them.
func (l *loader) keywords(sec *Section, kws []Keyword, what string, skip *Entry) (vals map[string]string, seen map[string]*Entry) {
	index := map[string]*Keyword{}
	var names []string
	for i := range kws {
		for _, n := range kws[i].names() {
			index[n] = &kws[i]
			names = append(names, n)
		}
	}
	vals = map[string]string{}
	seen = map[string]*Entry{}
	for _, e := range sec.Entries {
		if e == skip {
			continue
		}
		kw := index[e.Key]
		if kw == nil {
			l.fail(e.Line, sec.Name, e.Key, ErrUnknownKeyword, "%s", l.unknownKeyword(e.Key, names, what))
			continue
		}
		if first := seen[kw.Name]; first != nil {
			alias := e.Key
			if alias == kw.Name {
				alias = first.Key
			}
			l.fail(e.Line, sec.Name, e.Key, ErrAliasConflict,
				"also set as %q on line %d (%q is an alias of %q); keep one", first.Key, first.Line, alias, kw.Name)
			continue
		}
		seen[kw.Name] = e
		if err := checkValue(kw, e.Value); err != nil {
			l.fail(e.Line, sec.Name, e.Key, ErrInvalidValue, "%v", err)
			continue
		}
		vals[kw.Name] = e.Value
	}
	for i := range kws {
		kw := &kws[i]
		e, set := seen[kw.Name]
		switch {
		case kw.Required && !set:
			msg := "required keyword is missing"
			if kw.Help != "" {
				msg += " (" + strings.TrimSuffix(kw.Help, ".") + ")"
			}
			l.fail(sec.Line, sec.Name, kw.Name, ErrMissingKeyword, "%s", msg)
		case kw.Required && strings.TrimSpace(e.Value) == "":
			l.fail(e.Line, sec.Name, e.Key, ErrMissingKeyword, "required keyword is empty")
		case !set && kw.Default != "":
			vals[kw.Name] = kw.Default
		}
	}
	return vals, seen
}

// unknownKeyword says what to do about a keyword the section does not
// take: fix a typo, or move it to the section it belongs to.
func (l *loader) unknownKeyword(key string, names []string, what string) string {
	if s := suggest(key, names); s != "" {
		return fmt.Sprintf("unknown keyword; did you mean %q?", s)
	}
	if what == "" {
		for _, kw := range l.schema.Common {
			if kw.Name == key {
				return "unknown keyword; it belongs in resource sections, not [DEFAULT]"
			}
		}
		for _, t := range l.schema.sortedTypes() {
			if t.has(key) {
				return fmt.Sprintf("unknown keyword; it is a %s keyword and belongs in its resource sections", t.Type)
			}
		}
		return "unknown keyword for [DEFAULT] (svcmgr doc service lists them)"
	}
	for _, kw := range l.schema.Service {
		if slices.Contains(kw.names(), key) {
			return "unknown keyword; it is a service keyword and belongs in [DEFAULT]"
		}
	}
	return "unknown keyword for " + what + " (svcmgr doc " + strings.Fields(what)[0] + " lists them)"
}

// has reports whether the type declares name as a keyword or alias.
func (t *TypeSchema) has(name string) bool {
	for _, kw := range t.Keywords {
		if slices.Contains(kw.names(), name) {
			return true
		}
	}
	return false
}

// drivers returns the driver names of a group's dotted types, sorted.
func (s *Schema) drivers(group string) []string {
	var out []string
	for name := range s.Types {
		if g, drv, ok := strings.Cut(name, "."); ok && g == group {
			out = append(out, drv)
		}
	}
	sort.Strings(out)
	return out
}

// sortedTypes returns the types in name order, so that messages do not
// depend on map order.
func (s *Schema) sortedTypes() []*TypeSchema {
	out := make([]*TypeSchema, 0, len(s.Types))
	for _, t := range s.Types {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}
