// Package sdk is what a Vigil plugin author imports: the Go interface of a
// resource driver, the types it exchanges with core, and Serve, which runs
// the plugin process. The built-in plugins (docker, fs, ip, lvm) are written
// against this package exactly as a vendor's plugin would be.
//
// A plugin is an executable named vigil-plugin-<name> dropped in the plugin
// directory. Core starts it on first use, talks to it over gRPC
// (hashicorp/go-plugin) and restarts it when it dies. A plugin must be
// stateless: anything long-lived it starts for a service (a private docker
// daemon, say) must survive the plugin's own restart and be found again.
//
// The SDK is a Go module of its own (github.com/vigil-ha/vigil/plugins/sdk)
// and owns the wire: the .proto files and their generated code
// (plugins/sdk/proto, `make proto`) and the value parsers core shares
// (plugins/sdk/value). A vendor's plugin therefore depends on grpc,
// protobuf, go-plugin and hclog alone; core imports the SDK and the SDK
// never imports core (deps_test.go keeps it so).
package sdk

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk/value"
)

// ProtocolVersion is the resource-driver protocol this SDK speaks. Core
// refuses a plugin whose protocol version it does not know.
const ProtocolVersion = 1

// Status is the state of a resource.
type Status int

// Resource status values, as shown by print status.
const (
	StatusUndef Status = iota
	StatusUp
	StatusDown
	StatusWarn
	StatusNA
	StatusStdbyUp
	StatusStdbyDown
)

var statusNames = [...]string{"undef", "up", "down", "warn", "n/a", "stdby up", "stdby down"}

func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("status(%d)", int(s))
	}
	return statusNames[s]
}

// Keyword types a plugin may declare.
const (
	TypeString   = "string"
	TypeInt      = "int"
	TypeBool     = "bool"
	TypeDuration = "duration"
	TypeList     = "list" // whitespace-separated words
	TypeSize     = "size"
)

// Keyword declares one configuration keyword.
type Keyword struct {
	Name       string
	Type       string // one of the Type* constants; empty means TypeString
	Default    string
	Required   bool
	Aliases    []string
	Help       string
	Candidates []string // when set, the value must be one of these
}

// TypeInfo declares one resource type served by the plugin.
type TypeInfo struct {
	// Type is "<group>.<driver>" (container.docker, disk.vg) or a bare
	// group (fs, ip) when the plugin is that group's default driver.
	// Groups, in start order: ip, disk, fs, share, container, app, sync.
	Type string
	// SectionAliases are section prefixes that also select this type,
	// e.g. "vg" so that [vg#1] is a disk.vg resource.
	SectionAliases []string
	Keywords       []Keyword
	Help           string
}

// Info describes a plugin.
type Info struct {
	Name    string
	Version string
	Types   []TypeInfo
	// ServiceKeywords are keywords the plugin adds to the service's
	// [DEFAULT] section (e.g. docker_data_dir).
	ServiceKeywords []Keyword
}

// Service is what a driver learns about the service of a resource.
type Service struct {
	Name string
	// Keywords holds the [DEFAULT] section, canonical names.
	Keywords map[string]string
	// RunDir is a runtime directory private to the service (sockets,
	// pid files); it exists when the driver is called.
	RunDir string
	// VarDir is a persistent directory private to the service.
	VarDir string
}

// Resource is one resource section of a service, as a driver sees it.
type Resource struct {
	Service Service
	RID     string // "fs#1"
	Type    string // "fs", "container.docker"
	// Keywords maps canonical keyword names to values, defaults applied.
	Keywords map[string]string
	// Siblings holds every resource of the same type in the service
	// (including this one), rid to keywords.
	Siblings map[string]map[string]string
}

// Get returns a keyword's value ("" when unset).
func (r Resource) Get(name string) string { return r.Keywords[name] }

// Bool returns a boolean keyword; unset or unparsable reads false.
func (r Resource) Bool(name string) bool {
	b, _ := ParseBool(r.Keywords[name])
	return b
}

// Duration returns a duration keyword; unset reads 0.
func (r Resource) Duration(name string) (time.Duration, error) {
	return ParseDuration(r.Keywords[name])
}

// ResourceStatus is the answer to a status call.
type ResourceStatus struct {
	Status Status
	// Log lines are shown as "# reason" lines under the resource.
	Log []string
	// Label is shown after the status: "e9828ec4620a@registry:latest".
	Label string
}

// FieldError is one validation problem. Keyword is empty when the problem
// is about the resource as a whole.
type FieldError struct {
	Keyword string
	Message string
}

// FieldErrors joins validation problems into one error, for the calls that
// must fail on a resource that does not validate ("invalid fs resource:
// mnt: required; type: ...").
func FieldErrors(kind string, errs []FieldError) error {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		if e.Keyword == "" {
			msgs = append(msgs, e.Message)
			continue
		}
		msgs = append(msgs, e.Keyword+": "+e.Message)
	}
	return fmt.Errorf("invalid %s resource: %s", kind, strings.Join(msgs, "; "))
}

// ResourceDriver is what a resource plugin implements. Every call gets a
// context carrying core's deadline; honour it. Start and Stop must be
// idempotent. Errors returned by Start and Stop are shown to the operator:
// say what failed and what to do.
type ResourceDriver interface {
	Info() Info
	Validate(ctx context.Context, r Resource) []FieldError
	Start(ctx context.Context, r Resource) (log []string, err error)
	Stop(ctx context.Context, r Resource) (log []string, err error)
	Status(ctx context.Context, r Resource) ResourceStatus
}

// ParseBool reads the boolean spellings configs use ("true", "yes", "on",
// "1", ...); empty is false. Core reads values with the same function.
func ParseBool(s string) (bool, error) { return value.ParseBool(s) }

// ParseDuration reads a duration: Go syntax ("1.5s", "200ms") or a bare
// number of seconds ("10"); empty is 0.
func ParseDuration(s string) (time.Duration, error) { return value.ParseDuration(s) }

// ParseSize reads a size in bytes: "4096", "1M", "1MiB" (units are binary
// whatever the spelling).
func ParseSize(s string) (int64, error) { return value.ParseSize(s) }
