// Package lvm is the resource driver for LVM volume groups (type "disk.vg",
// section alias "vg"). Ownership of a shared volume group is recorded with
// an LVM host tag: the node that starts the group removes the other nodes'
// tags, tags it with its own host name and activates it; stopping
// deactivates it and removes the tag. With activation/volume_list = ["@*"]
// in lvm.conf, LVM itself then refuses to activate the group on a node that
// does not own it.
//
// With scsireserv = true the group's physical volumes are also protected
// by a SCSI-3 persistent reservation (see scsireserv.go), taken before the
// tag moves and released after the group is deactivated.
//
// The driver runs the lvm command and sg_persist; it never edits lvm.conf.
package lvm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// Keyword names.
const (
	KwVGName     = "vgname"
	KwSCSIReserv = "scsireserv"
)

// ErrVGNotFound: LVM does not see the volume group on this node.
var ErrVGNotFound = errors.New("volume group not found")

// Config configures a Driver. The zero value is the production setup.
type Config struct {
	// Hostname is the tag that marks this node's ownership. Default:
	// os.Hostname().
	Hostname string
	// LVMConfig, when set, is passed as --config to every lvm command,
	// e.g. `devices { filter=["a|^/dev/loop3$|","r|.*|"] }` to keep LVM
	// away from other disks.
	LVMConfig string
	// Command is the lvm binary. Default: "lvm" from PATH, else
	// /usr/sbin/lvm or /sbin/lvm.
	Command string
	// SGPersist is the sg_persist binary (sg3-utils), used when a group
	// has scsireserv = true. Default: "sg_persist" from PATH, else
	// /usr/bin/sg_persist.
	SGPersist string
	// Logger defaults to sdk.Logger().
	Logger hclog.Logger
}

// Driver activates and deactivates volume groups.
type Driver struct {
	cfg Config
	log hclog.Logger
	// hostErr is why Hostname could not be set; Start and Stop report it.
	hostErr error
	// openPR gives the reservation interface of a physical volume; tests
	// replace it with a model of a PR-capable device.
	openPR func(dev string) prDevice
}

var _ sdk.ResourceDriver = (*Driver)(nil)

// New returns a Driver with cfg's defaults applied.
func New(cfg Config) *Driver {
	d := &Driver{}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			d.hostErr = fmt.Errorf("get host name: %w", err)
		}
		cfg.Hostname = h
	}
	if d.hostErr == nil && !validTag(cfg.Hostname) {
		d.hostErr = fmt.Errorf("host name %q is not a valid LVM tag (letters, digits and _+.-/=!:&# only)", cfg.Hostname)
	}
	if cfg.Command == "" {
		cfg.Command = "lvm"
		if _, err := exec.LookPath("lvm"); err != nil {
			for _, p := range []string{"/usr/sbin/lvm", "/sbin/lvm"} {
				if _, err := os.Stat(p); err == nil {
					cfg.Command = p
					break
				}
			}
		}
	}
	if cfg.SGPersist == "" {
		cfg.SGPersist = "sg_persist"
		if _, err := exec.LookPath("sg_persist"); err != nil {
			cfg.SGPersist = "/usr/bin/sg_persist"
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = sdk.Logger()
	}
	d.openPR = func(dev string) prDevice { return &sgPersist{cmd: cfg.SGPersist, dev: dev} }
	d.cfg = cfg
	d.log = cfg.Logger.Named("lvm")
	return d
}

// Info declares the disk.vg type.
func (d *Driver) Info() sdk.Info {
	return sdk.Info{
		Name:    "lvm",
		Version: Version,
		Types: []sdk.TypeInfo{{
			Type:           "disk.vg",
			SectionAliases: []string{"vg"},
			Help:           "An LVM volume group on shared disks, owned by one node at a time through a host tag.",
			Keywords: []sdk.Keyword{
				{Name: KwVGName, Required: true, Aliases: []string{"name"}, Help: "The volume group name."},
				{Name: KwSCSIReserv, Type: sdk.TypeBool, Default: "false", Aliases: []string{"scsi_reserve"},
					Help: "Protect the group's disks with a SCSI-3 persistent reservation (Write Exclusive, registrants only): start registers this node's key on every physical volume, reserves them and preempts any other node's key; stop releases and unregisters. Needs sg_persist (sg3-utils) and disks that take PERSISTENT RESERVE."},
				{Name: KwSCSIReservKey, Type: sdk.TypeList,
					Help: "The reservation keys, one per node: node1=0x1a2b node2=0x3c4d. A node not listed uses the first 8 bytes of sha256(\"vigil:\" + its host name)."},
			},
		}},
	}
}

var vgNameRE = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$`)

func validTag(s string) bool {
	return s != "" && s[0] != '-' && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-/=!:&#") == ""
}

// Validate checks the keywords without touching the system.
func (d *Driver) Validate(_ context.Context, r sdk.Resource) []sdk.FieldError {
	var errs []sdk.FieldError
	vg := r.Get(KwVGName)
	switch {
	case vg == "":
		errs = append(errs, sdk.FieldError{Keyword: KwVGName, Message: "required: the volume group name"})
	case !vgNameRE.MatchString(vg) || vg == "." || vg == "..":
		errs = append(errs, sdk.FieldError{Keyword: KwVGName, Message: fmt.Sprintf("%q is not a valid volume group name (letters, digits and +_.- only)", vg)})
	}
	if _, err := sdk.ParseBool(r.Get(KwSCSIReserv)); err != nil {
		errs = append(errs, sdk.FieldError{Keyword: KwSCSIReserv, Message: err.Error()})
	}
	if _, err := parseKeyMap(r.Get(KwSCSIReservKey)); err != nil {
		errs = append(errs, sdk.FieldError{Keyword: KwSCSIReservKey, Message: err.Error()})
	}
	return errs
}

func (d *Driver) check(r sdk.Resource) (string, error) {
	if errs := d.Validate(context.Background(), r); len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			msgs = append(msgs, e.Keyword+": "+e.Message)
		}
		return "", fmt.Errorf("invalid disk.vg resource: %s", strings.Join(msgs, "; "))
	}
	return r.Get(KwVGName), nil
}

// Start takes the volume group: with scsireserv it first reserves every
// physical volume for this node, then it removes other hosts' tags, tags
// it with this host and activates it.
func (d *Driver) Start(ctx context.Context, r sdk.Resource) ([]string, error) {
	vg, err := d.check(r)
	if err != nil {
		return nil, err
	}
	if d.hostErr != nil {
		return nil, fmt.Errorf("start vg %s: %w", vg, d.hostErr)
	}
	log := d.log.With("rid", r.RID, "service", r.Service.Name, "vg", vg)
	var out []string
	info, err := d.vgInfo(ctx, vg)
	if err != nil {
		return out, fmt.Errorf("start vg %s: %w", vg, err)
	}
	if r.Bool(KwSCSIReserv) {
		// Before the tag moves: the tag is written to the disks,
		// and a lost peer's reservation refuses our writes until
		// we preempt it.
		rs, devs, err := d.reserverOf(r, vg, info)
		if err != nil {
			return out, fmt.Errorf("start vg %s: %w", vg, err)
		}
		lines, err := rs.acquire(ctx, devs)
		out = append(out, lines...)
		if err != nil {
			return out, fmt.Errorf("start vg %s: %w", vg, err)
		}
	}
	// One vgchange moves the ownership, so that the group is never left
	// untagged or tagged twice by a failure halfway. Every tag is read as
	// a host tag: a shared group carries no other kind in this scheme.
	var tagArgs, removed []string
	mine := false
	for _, tag := range info.tags {
		if tag == d.cfg.Hostname {
			mine = true
			continue
		}
		tagArgs = append(tagArgs, "--deltag", tag)
		removed = append(removed, tag)
	}
	if !mine {
		tagArgs = append(tagArgs, "--addtag", d.cfg.Hostname)
	}
	if len(tagArgs) > 0 {
		if _, err := d.run(ctx, "vgchange", append(tagArgs, vg)...); err != nil {
			return out, fmt.Errorf("start vg %s: move the host tag to %s: %w", vg, d.cfg.Hostname, err)
		}
		for _, tag := range removed {
			log.Info("removed host tag", "tag", tag)
			out = append(out, fmt.Sprintf("removed the tag of host %s", tag))
		}
		if !mine {
			out = append(out, fmt.Sprintf("tagged %s with %s", vg, d.cfg.Hostname))
		}
	}
	if _, err := d.run(ctx, "vgchange", "-ay", vg); err != nil {
		return out, fmt.Errorf("start vg %s: activate: %w; check lvm.conf activation/volume_list and dmesg", vg, err)
	}
	log.Info("activated", "lvs", info.lvCount)
	out = append(out, fmt.Sprintf("activated %s (%d logical volumes)", vg, info.lvCount))
	return out, nil
}

// Stop deactivates the volume group, removes this host's tag and, with
// scsireserv, releases the reservation and unregisters this node's key. A
// group LVM does not see is left alone.
func (d *Driver) Stop(ctx context.Context, r sdk.Resource) ([]string, error) {
	vg, err := d.check(r)
	if err != nil {
		return nil, err
	}
	if d.hostErr != nil {
		return nil, fmt.Errorf("stop vg %s: %w", vg, d.hostErr)
	}
	info, err := d.vgInfo(ctx, vg)
	if errors.Is(err, ErrVGNotFound) {
		return []string{fmt.Sprintf("volume group %s not found: nothing to stop", vg)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stop vg %s: %w", vg, err)
	}
	var out []string
	if _, err := d.run(ctx, "vgchange", "-an", vg); err != nil {
		return nil, fmt.Errorf("stop vg %s: deactivate: %w; a logical volume is probably still open (mounted filesystem, process): stop its users and stop again", vg, err)
	}
	out = append(out, fmt.Sprintf("deactivated %s", vg))
	for _, tag := range info.tags {
		if tag != d.cfg.Hostname {
			continue
		}
		if _, err := d.run(ctx, "vgchange", "--deltag", tag, vg); err != nil {
			return out, fmt.Errorf("stop vg %s: remove the tag %s: %w", vg, tag, err)
		}
		out = append(out, fmt.Sprintf("removed the tag %s", tag))
	}
	d.log.Info("deactivated", "rid", r.RID, "service", r.Service.Name, "vg", vg)
	if r.Bool(KwSCSIReserv) {
		rs, devs, err := d.reserverOf(r, vg, info)
		if err != nil {
			return out, fmt.Errorf("stop vg %s: %w", vg, err)
		}
		lines, err := rs.release(ctx, devs)
		out = append(out, lines...)
		if err != nil {
			return out, fmt.Errorf("stop vg %s: %w", vg, err)
		}
	}
	return out, nil
}

// Status reports up when the group is tagged with this host and its
// logical volumes are active and, with scsireserv, this node holds the
// reservation of every physical volume. A reservation held by another key
// or missing is named in a reason line; the status is then warn when the
// group is otherwise up here, down when it is not (a passive node).
func (d *Driver) Status(ctx context.Context, r sdk.Resource) sdk.ResourceStatus {
	vg, err := d.check(r)
	if err != nil {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: r.Get(KwVGName), Log: []string{err.Error()}}
	}
	if d.hostErr != nil {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: vg, Log: []string{d.hostErr.Error()}}
	}
	info, err := d.vgInfo(ctx, vg)
	if errors.Is(err, ErrVGNotFound) {
		return sdk.ResourceStatus{Status: sdk.StatusDown, Label: vg, Log: []string{fmt.Sprintf("volume group %s not found on this node", vg)}}
	}
	if err != nil {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: vg, Log: []string{err.Error()}}
	}
	var lvs []lvState
	if info.lvCount > 0 {
		if lvs, err = d.lvStates(ctx, vg); err != nil {
			return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: vg, Log: []string{err.Error()}}
		}
	}
	st := assess(d.cfg.Hostname, info, lvs)
	st.Label = vg
	if r.Bool(KwSCSIReserv) {
		rs, devs, err := d.reserverOf(r, vg, info)
		if err != nil {
			return sdk.ResourceStatus{Status: sdk.StatusUndef, Label: vg, Log: append(st.Log, err.Error())}
		}
		pr := assessReservation(rs.key, rs.states(ctx, devs))
		st.Status = combine(st.Status, pr.Status)
		st.Log = append(st.Log, pr.Log...)
	}
	return st
}

// assess turns what LVM says into a status:
//
//   - tagged by this host only: up when every LV is active (or there is
//     none), down when none is, warn in between;
//   - tagged by this host and another: warn;
//   - not tagged by this host: down, with the owner named, unless LVs are
//     active here (warn: this node uses a group it does not own).
func assess(host string, info vgState, lvs []lvState) sdk.ResourceStatus {
	var others []string
	mine := false
	for _, t := range info.tags {
		if t == host {
			mine = true
		} else {
			others = append(others, t)
		}
	}
	var active, inactive []string
	for _, lv := range lvs {
		if lv.active {
			active = append(active, lv.name)
		} else {
			inactive = append(inactive, lv.name)
		}
	}
	var st sdk.ResourceStatus
	if info.partial {
		st.Log = append(st.Log, "volume group is partial: physical volumes are missing")
	}
	tagged := ""
	if len(others) > 0 {
		tagged = fmt.Sprintf("vg is tagged by host %s", strings.Join(others, ", "))
	}
	switch {
	case mine && len(others) > 0:
		st.Status = sdk.StatusWarn
		st.Log = append(st.Log, tagged+" too")
	case mine && len(inactive) == 0:
		st.Status = sdk.StatusUp
	case mine && len(active) == 0:
		st.Status = sdk.StatusDown
		st.Log = append(st.Log, "logical volumes not active: "+strings.Join(inactive, ", "))
	case mine:
		st.Status = sdk.StatusWarn
		st.Log = append(st.Log, "logical volumes not active: "+strings.Join(inactive, ", "))
	case len(active) > 0:
		st.Status = sdk.StatusWarn
		st.Log = append(st.Log, fmt.Sprintf("logical volumes active but the vg is not tagged with this host (%s): %s", host, strings.Join(active, ", ")))
		if tagged != "" {
			st.Log = append(st.Log, tagged)
		}
	default:
		st.Status = sdk.StatusDown
		if tagged != "" {
			st.Log = append(st.Log, tagged)
		}
	}
	if info.partial && st.Status == sdk.StatusUp {
		st.Status = sdk.StatusWarn
	}
	return st
}

// reservation returns the reserver of r and the physical volumes of vg.
func (d *Driver) reservation(ctx context.Context, r sdk.Resource, vg string) (reserver, []string, error) {
	info, err := d.vgInfo(ctx, vg)
	if err != nil {
		return reserver{}, nil, err
	}
	return d.reserverOf(r, vg, info)
}

// reserverOf returns the reserver of r and the physical volumes of vg as
// info lists them. A missing one (partial group) is an error: its
// reservation cannot be checked or taken.
func (d *Driver) reserverOf(r sdk.Resource, vg string, info vgState) (reserver, []string, error) {
	key, err := d.reservationKey(r)
	if err != nil {
		return reserver{}, nil, err
	}
	if info.pvMissing {
		return reserver{}, nil, fmt.Errorf("volume group %s has a missing physical volume: its SCSI reservation cannot be handled; check pvs", vg)
	}
	if len(info.pvs) == 0 {
		return reserver{}, nil, fmt.Errorf("vgs lists no physical volume for %s", vg)
	}
	log := d.log.With("rid", r.RID, "service", r.Service.Name, "vg", vg)
	return reserver{key: key, open: d.openPR, log: log}, info.pvs, nil
}

// vgState is what vgs says about a group.
type vgState struct {
	tags    []string
	lvCount int
	partial bool
	// pvs are the devices of its physical volumes, sorted; pvMissing
	// is set when one of them is missing (LVM names it [unknown]).
	pvs       []string
	pvMissing bool
}

// lvState is what lvs says about a logical volume.
type lvState struct {
	name   string
	active bool
}

// vgInfo reads the group's tags, logical volume count, state and physical
// volumes in one vgs (one row per physical volume): each lvm command scans
// the devices and, on Debian 12's lvm2, spends ~30 ms tearing its AIO
// context down at exit, so what one action needs is asked once.
func (d *Driver) vgInfo(ctx context.Context, vg string) (vgState, error) {
	out, err := d.run(ctx, "vgs", "--reportformat", "json", "-o", "vg_name,vg_attr,vg_tags,lv_count,pv_name", vg)
	if err != nil {
		return vgState{}, err
	}
	rows, err := parseReport(out, "vg")
	if err != nil {
		return vgState{}, fmt.Errorf("read vgs output: %w", err)
	}
	var st vgState
	found := false
	for _, row := range rows {
		if row["vg_name"] != vg {
			continue
		}
		if !found {
			found = true
			if tags := row["vg_tags"]; tags != "" {
				st.tags = strings.Split(tags, ",")
				sort.Strings(st.tags)
			}
			st.lvCount, _ = strconv.Atoi(row["lv_count"])
			// vg_attr: permissions, resizeable, exported, partial, ...
			if a := row["vg_attr"]; len(a) >= 4 && a[3] == 'p' {
				st.partial = true
			}
		}
		switch dev := row["pv_name"]; {
		case dev == "" || strings.HasPrefix(dev, "[unknown]"):
			st.pvMissing = true
		default:
			st.pvs = append(st.pvs, dev)
		}
	}
	if !found {
		return vgState{}, fmt.Errorf("%w: %s; check that its disks are visible on this node (pvs)", ErrVGNotFound, vg)
	}
	sort.Strings(st.pvs)
	st.pvs = slices.Compact(st.pvs)
	return st, nil
}

func (d *Driver) lvStates(ctx context.Context, vg string) ([]lvState, error) {
	out, err := d.run(ctx, "lvs", "--reportformat", "json", "-o", "lv_name,lv_attr", vg)
	if err != nil {
		return nil, err
	}
	rows, err := parseReport(out, "lv")
	if err != nil {
		return nil, fmt.Errorf("read lvs output: %w", err)
	}
	lvs := make([]lvState, 0, len(rows))
	for _, row := range rows {
		// lv_attr: type, permissions, allocation, fixed minor, state ('a' active), ...
		a := row["lv_attr"]
		lvs = append(lvs, lvState{name: row["lv_name"], active: len(a) >= 5 && a[4] == 'a'})
	}
	return lvs, nil
}

// parseReport reads `--reportformat json` output: {"report":[{"vg":[{...}]}]}.
func parseReport(out []byte, kind string) ([]map[string]string, error) {
	var rep struct {
		Report []map[string][]map[string]string `json:"report"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, err
	}
	var rows []map[string]string
	for _, r := range rep.Report {
		rows = append(rows, r[kind]...)
	}
	return rows, nil
}

// run runs `lvm <cmd> [--config ...] args...` and returns its stdout. A
// group LVM does not know is reported as ErrVGNotFound.
//
// One process per command, not lvm's shell (commands on its stdin): on
// Debian 12's lvm2 (2.03.16) the shell exits 0 whatever its commands did
// (a command's status is only in the log report, which --config may not
// turn on), prints reports in its own format whatever --reportformat says,
// and saves only the exec: each command in it rescans the devices and
// tears its AIO context down like a process does (measured on a takeover
// start: 160 ms as three processes, 152 ms as one shell). That teardown,
// io_destroy waiting for an RCU grace period, is most of an lvm command's
// time on this host (about 33 of 50 ms): global/use_aio = 0 in lvm.conf
// removes it (the same start: 47 ms), a setting for the operator; lvm2
// reads it only when it starts, so --config cannot set it.
func (d *Driver) run(ctx context.Context, cmd string, args ...string) ([]byte, error) {
	argv := []string{cmd}
	if d.cfg.LVMConfig != "" {
		argv = append(argv, "--config", d.cfg.LVMConfig)
	}
	argv = append(argv, args...)
	c := exec.CommandContext(ctx, d.cfg.Command, argv...)
	// The plugin's inherited descriptors are close-on-exec, but lvm
	// also warns about descriptors of whoever runs us by hand.
	c.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "not found") && strings.Contains(msg, "Volume group") {
			return nil, fmt.Errorf("%w: %s; check that its disks are visible on this node (pvs)", ErrVGNotFound, args[len(args)-1])
		}
		return nil, fmt.Errorf("lvm %s %s: %w: %s", cmd, strings.Join(args, " "), err, oneLine(msg))
	}
	return stdout.Bytes(), nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
