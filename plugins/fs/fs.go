// Package fs is the resource driver for local filesystems (type "fs"): it
// mounts a block device on a directory and unmounts it. It never kills a
// process to get a filesystem unmounted: a busy filesystem fails the stop
// with the list of the processes holding it, and the operator decides.
package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Version is the plugin's version, shown by svcmgr plugins.
const Version = "0.1.0"

// Keyword names.
const (
	KwDev    = "dev"
	KwMnt    = "mnt"
	KwType   = "type"
	KwMntOpt = "mnt_opt"
)

// Errors callers may branch on.
var (
	// ErrBusy: the filesystem could not be unmounted because it is in use.
	ErrBusy = errors.New("filesystem is busy")
	// ErrDevMountedElsewhere: the device is already mounted on another directory.
	ErrDevMountedElsewhere = errors.New("device is mounted elsewhere")
	// ErrMountPointInUse: another filesystem is mounted on the mount point.
	ErrMountPointInUse = errors.New("mount point is in use by another filesystem")
	// ErrMountedInOtherNamespace: the device is still mounted in another
	// mount namespace of this host (a container, a process that ran
	// unshare -m), so it is not free for a peer to mount.
	ErrMountedInOtherNamespace = errors.New("device is still mounted in another mount namespace")
)

// Config configures a Driver. The zero value is the production setup.
type Config struct {
	// ProcRoot is where the proc filesystem is mounted. Default "/proc".
	ProcRoot string
	// SysBlock is the sysfs block directory, searched for loop devices
	// backed by files on a busy filesystem. Default "/sys/block".
	SysBlock string
	// UnmountAttempts is how many times a busy unmount is tried before the
	// holders are reported; the kernel can stay busy for a moment after
	// the last user exits. Default 3.
	UnmountAttempts int
	// UnmountRetryDelay separates unmount attempts. Default 100ms.
	UnmountRetryDelay time.Duration
	// Logger defaults to sdk.Logger().
	Logger hclog.Logger
}

// Driver mounts and unmounts filesystems.
type Driver struct {
	cfg Config
	log hclog.Logger
}

var _ sdk.ResourceDriver = (*Driver)(nil)

// New returns a Driver with cfg's defaults applied.
func New(cfg Config) *Driver {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.SysBlock == "" {
		cfg.SysBlock = "/sys/block"
	}
	if cfg.UnmountAttempts <= 0 {
		cfg.UnmountAttempts = 3
	}
	if cfg.UnmountRetryDelay <= 0 {
		cfg.UnmountRetryDelay = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = sdk.Logger()
	}
	return &Driver{cfg: cfg, log: cfg.Logger.Named("fs")}
}

// Info declares the fs type.
func (d *Driver) Info() sdk.Info {
	return sdk.Info{
		Name:    "fs",
		Version: Version,
		Types: []sdk.TypeInfo{{
			Type: "fs",
			Help: "A filesystem on a block device, mounted on a directory.",
			Keywords: []sdk.Keyword{
				{Name: KwDev, Required: true, Help: "The block device to mount (a path, symlinks allowed), e.g. /dev/mapper/vg-lv."},
				{Name: KwMnt, Required: true, Help: "The mount point, an absolute path; created when missing."},
				{Name: KwType, Required: true, Help: "The filesystem type, e.g. ext4, xfs."},
				{Name: KwMntOpt, Default: "defaults", Help: "Comma-separated mount options, as in fstab (rw, ro, noatime, nodev, nosuid, noexec, sync, ...; other options go to the filesystem)."},
			},
		}},
	}
}

// spec is a resource's keywords, checked.
type spec struct {
	dev, mnt, fstype string
	opts             mountOptions
}

func parseSpec(r sdk.Resource) (spec, []sdk.FieldError) {
	var errs []sdk.FieldError
	s := spec{dev: r.Get(KwDev), mnt: r.Get(KwMnt), fstype: r.Get(KwType)}
	if s.dev == "" {
		errs = append(errs, sdk.FieldError{Keyword: KwDev, Message: "required: the block device to mount"})
	}
	switch {
	case s.mnt == "":
		errs = append(errs, sdk.FieldError{Keyword: KwMnt, Message: "required: the directory to mount on"})
	case !filepath.IsAbs(s.mnt):
		errs = append(errs, sdk.FieldError{Keyword: KwMnt, Message: fmt.Sprintf("%q is not an absolute path", s.mnt)})
	case filepath.Clean(s.mnt) == "/":
		errs = append(errs, sdk.FieldError{Keyword: KwMnt, Message: "cannot mount on /"})
	default:
		s.mnt = filepath.Clean(s.mnt)
	}
	if s.fstype == "" {
		errs = append(errs, sdk.FieldError{Keyword: KwType, Message: "required: the filesystem type, e.g. ext4"})
	}
	opts, err := parseMountOptions(r.Get(KwMntOpt))
	if err != nil {
		errs = append(errs, sdk.FieldError{Keyword: KwMntOpt, Message: err.Error()})
	}
	s.opts = opts
	return s, errs
}

func (s spec) label() string { return s.dev + "@" + s.mnt }

// Validate checks the keywords without touching the system.
func (d *Driver) Validate(_ context.Context, r sdk.Resource) []sdk.FieldError {
	_, errs := parseSpec(r)
	return errs
}

// state is what the mount table says about a resource.
type state struct {
	mounted   bool    // dev is mounted on mnt
	elsewhere []mount // dev is mounted on other directories
	onMnt     *mount  // the visible mount on mnt, when it is not dev
	children  []mount // mounts below mnt
	mntPath   string  // mnt with symlinks resolved, as in mountinfo
}

// inspect reads the mount table. A missing device is not an error: the
// resource is simply not mounted (the device may appear when its volume
// group is activated).
func (d *Driver) inspect(s spec) (state, error) {
	var st state
	st.mntPath = s.mnt
	if p, err := filepath.EvalSymlinks(s.mnt); err == nil {
		st.mntPath = p
	}
	mounts, err := readMountinfo(filepath.Join(d.cfg.ProcRoot, "self", "mountinfo"))
	if err != nil {
		return st, err
	}
	dv := resolveDevice(s.dev)
	isDev := func(m mount) bool { return dv.holds(m, true) }
	var top *mount
	for i := range mounts {
		m := mounts[i]
		switch {
		case m.Point == st.mntPath:
			top = &mounts[i]
		case strings.HasPrefix(m.Point, st.mntPath+"/"):
			st.children = append(st.children, m)
		case isDev(m):
			st.elsewhere = append(st.elsewhere, m)
		}
	}
	if top != nil {
		if isDev(*top) {
			st.mounted = true
		} else {
			st.onMnt = top
		}
	}
	return st, nil
}

// device is a resource's dev as this mount namespace resolves it.
type device struct {
	name, path string // as configured, and with symlinks resolved
	rdev       uint64
	isBlock    bool
}

func resolveDevice(dev string) device {
	dv := device{name: dev, path: dev}
	if p, err := filepath.EvalSymlinks(dev); err == nil {
		dv.path = p
	}
	var sb unix.Stat_t
	if err := unix.Stat(dv.path, &sb); err == nil && sb.Mode&unix.S_IFMT == unix.S_IFBLK {
		dv.rdev, dv.isBlock = sb.Rdev, true
	}
	return dv
}

// holds reports whether m is a mount of the device. local says m was read
// from this mount namespace, where its source path means what it means
// here.
func (dv device) holds(m mount, local bool) bool {
	if dv.isBlock && m.Major != 0 {
		// A real device number decides, whatever name the device was
		// mounted by (another namespace may have its own /dev).
		return m.Major == unix.Major(dv.rdev) && m.Minor == unix.Minor(dv.rdev)
	}
	// Filesystems such as btrfs report an anonymous device number;
	// fall back to the mount source. Resolving costs syscalls: only
	// for sources that are paths, and only here.
	if m.Source == dv.name || m.Source == dv.path {
		return true
	}
	if !local || !strings.HasPrefix(m.Source, "/") {
		return false
	}
	p, err := filepath.EvalSymlinks(m.Source)
	return err == nil && p == dv.path
}

// otherNamespaces lists the mounts of dev in the host's other mount
// namespaces.
func (d *Driver) otherNamespaces(s spec) (nsScan, error) {
	dv := resolveDevice(s.dev)
	scan, err := scanMountNamespaces(d.cfg.ProcRoot, func(m mount) bool { return dv.holds(m, false) })
	if err != nil {
		return scan, fmt.Errorf("look for %s in other mount namespaces: %w", s.dev, err)
	}
	return scan, nil
}

// checkReleased fails unless dev is mounted nowhere on this host, in this
// mount namespace or any other. A stop that succeeds tells the cluster a
// peer may mount the device: a mount left in a container or in a process
// that ran unshare -m would have the filesystem mounted on this host and
// the peer at once.
// The processes whose mounts could not be read are returned for the
// stop's output: the operator checks those.
func (d *Driver) checkReleased(s spec) ([]Holder, error) {
	st, err := d.inspect(s)
	if err != nil {
		return nil, fmt.Errorf("check that %s is mounted nowhere: %w; stop again", s.dev, err)
	}
	scan, err := d.otherNamespaces(s)
	if err != nil {
		return nil, fmt.Errorf("check that %s is mounted nowhere: %w; stop again", s.dev, err)
	}
	others := scan.Found
	points := st.elsewhere
	if st.mounted {
		points = append(points, mount{Point: st.mntPath})
	}
	if len(points) == 0 && len(others) == 0 {
		return scan.Unreadable, nil
	}
	format, args := "%s is not released", []any{s.dev}
	if len(points) > 0 {
		var cmds []string
		for _, m := range points {
			cmds = append(cmds, "umount "+shellQuote(m.Point))
		}
		format += ": %w: on %s in this mount namespace (%s)"
		args = append(args, ErrDevMountedElsewhere, mountPoints(points), strings.Join(cmds, "; "))
	}
	if len(others) > 0 {
		format += ": %w: %s"
		args = append(args, ErrMountedInOtherNamespace, strings.Join(describeNamespaces(others), "; "))
	}
	format += "; vigil kills nothing: unmount it or stop what holds it, then stop again (until then no peer may mount %s)"
	args = append(args, s.dev)
	return nil, fmt.Errorf(format, args...)
}

// Start mounts dev on mnt, creating mnt when missing. It refuses when dev is
// mounted elsewhere or another filesystem sits on mnt.
func (d *Driver) Start(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, errs := parseSpec(r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("fs", errs)
	}
	log := d.log.With("rid", r.RID, "service", r.Service.Name, "dev", s.dev, "mnt", s.mnt)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.mnt, 0o755); err != nil {
		return nil, fmt.Errorf("create mount point %s: %w", s.mnt, err)
	}
	st, err := d.inspect(s)
	if err != nil {
		return nil, fmt.Errorf("mount %s on %s: %w", s.dev, s.mnt, err)
	}
	if st.mounted {
		return []string{fmt.Sprintf("%s is already mounted on %s", s.dev, s.mnt)}, nil
	}
	if len(st.elsewhere) > 0 {
		return nil, fmt.Errorf("mount %s on %s: %w: on %s; unmount it there first (two mounts of one block device corrupt it when another node mounts it too)",
			s.dev, s.mnt, ErrDevMountedElsewhere, mountPoints(st.elsewhere))
	}
	if st.onMnt != nil {
		return nil, fmt.Errorf("mount %s on %s: %w: %s (%s) is mounted there; unmount it or change mnt",
			s.dev, s.mnt, ErrMountPointInUse, st.onMnt.Source, st.onMnt.FSType)
	}
	if _, err := os.Stat(s.dev); err != nil {
		return nil, fmt.Errorf("mount %s on %s: device %s: %w; check that the disk resource providing it (e.g. the volume group) is up", s.dev, s.mnt, s.dev, err)
	}
	if err := unix.Mount(s.dev, s.mnt, s.fstype, s.opts.Flags, s.opts.Data); err != nil {
		return nil, fmt.Errorf("mount %s on %s (type %s, options %q): %w; check the device, the filesystem type and mnt_opt (see dmesg)",
			s.dev, s.mnt, s.fstype, r.Get(KwMntOpt), err)
	}
	log.Info("mounted", "type", s.fstype, "options", r.Get(KwMntOpt))
	return []string{fmt.Sprintf("mounted %s on %s", s.dev, s.mnt)}, nil
}

// Stop unmounts mnt. A filesystem that is not mounted is left alone. A busy
// filesystem fails the stop with the processes holding it; none is killed.
// The stop fails as well, after the unmount, while the device is still
// mounted anywhere else on this host (another directory, another mount
// namespace): it is not free for a peer to mount.
func (d *Driver) Stop(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, errs := parseSpec(r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("fs", errs)
	}
	log := d.log.With("rid", r.RID, "service", r.Service.Name, "dev", s.dev, "mnt", s.mnt)
	st, err := d.inspect(s)
	if err != nil {
		return nil, fmt.Errorf("umount %s: %w", s.mnt, err)
	}
	if !st.mounted {
		var out []string
		out = append(out, fmt.Sprintf("%s is not mounted on %s", s.dev, s.mnt))
		if len(st.children) > 0 {
			// The parent went away (lazy unmount, or by hand) but
			// filesystems below it are still mounted; they are the
			// resources stopped before this one, so say so rather
			// than fail.
			out = append(out, fmt.Sprintf("filesystems are still mounted below %s: %s", s.mnt, mountPoints(st.children)))
		}
		// A retried stop lands here after a first one unmounted mnt and
		// failed on another namespace's mount: it must fail again.
		unread, err := d.checkReleased(s)
		if err != nil {
			return nil, fmt.Errorf("umount %s: %s is not mounted on %s, but %w", s.mnt, s.dev, s.mnt, err)
		}
		return append(out, unreadableLines(unread)...), nil
	}
	if len(st.children) > 0 {
		return nil, fmt.Errorf("umount %s: %w: filesystems are mounted below it: %s; stop (unmount) them first",
			s.mnt, ErrBusy, mountPoints(st.children))
	}
	for attempt := 1; ; attempt++ {
		err = unix.Unmount(st.mntPath, 0)
		if err == nil || errors.Is(err, unix.EINVAL) {
			// EINVAL: no longer a mount point, someone unmounted it meanwhile.
			break
		}
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("umount %s: %w", s.mnt, err)
		}
		if attempt >= d.cfg.UnmountAttempts {
			return nil, d.busyError(s, st.mntPath)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("umount %s: %w (%w)", s.mnt, ErrBusy, ctx.Err())
		case <-time.After(d.cfg.UnmountRetryDelay):
		}
	}
	log.Info("unmounted")
	unread, err := d.checkReleased(s)
	if err != nil {
		log.Error("unmounted, but the device is still mounted", "error", err)
		return nil, fmt.Errorf("umount %s: unmounted here, but %w", s.mnt, err)
	}
	return append([]string{fmt.Sprintf("unmounted %s from %s", s.dev, s.mnt)}, unreadableLines(unread)...), nil
}

// busyError names what keeps mnt busy.
func (d *Driver) busyError(s spec, mntPath string) error {
	holders := findHolders(d.cfg.ProcRoot, mntPath)
	loops := loopBackingFiles(d.cfg.SysBlock, mntPath)
	var parts []string
	for _, h := range holders {
		parts = append(parts, h.String())
	}
	for _, l := range loops {
		parts = append(parts, "loop device "+l)
	}
	if len(parts) == 0 {
		return fmt.Errorf("umount %s: %w and no process of this mount namespace holds it; look for bind mounts in other mount namespaces (containers), swap files or NFS exports, then stop again",
			s.mnt, ErrBusy)
	}
	return fmt.Errorf("umount %s: %w, held by %s; stop these processes (vigil does not kill them) and stop again",
		s.mnt, ErrBusy, strings.Join(parts, "; "))
}

// Status reports up when dev is mounted on mnt, down when it is mounted
// nowhere on this host, and warn when it is mounted only somewhere else:
// on another directory, or in another mount namespace (a container, a
// process that ran unshare -m). Such a device is not the resource up
// (nothing is on mnt for the service), but it is not free either: the
// filesystem is live on this host and a peer mounting it would corrupt it.
// Core's placement counts warn as active, so no peer starts the service
// beside it, and a peer running it too shows the service up on two nodes;
// nothing unmounts it automatically. Another namespace is looked at only
// when mnt is not mounted: the scan costs a readlink per process, and the
// service's own containers hold bind mounts of a mounted filesystem.
func (d *Driver) Status(_ context.Context, r sdk.Resource) sdk.ResourceStatus {
	s, errs := parseSpec(r)
	out := sdk.ResourceStatus{Label: s.label()}
	if len(errs) > 0 {
		out.Status = sdk.StatusUndef
		out.Log = []string{sdk.FieldErrors("fs", errs).Error()}
		return out
	}
	st, err := d.inspect(s)
	if err != nil {
		out.Status = sdk.StatusUndef
		out.Log = []string{err.Error()}
		return out
	}
	if st.mounted {
		out.Status = sdk.StatusUp
		return out
	}
	scan, err := d.otherNamespaces(s)
	if err != nil {
		out.Status = sdk.StatusUndef
		out.Log = []string{err.Error()}
		return out
	}
	others := scan.Found
	out.Status = sdk.StatusDown
	if len(st.elsewhere) > 0 {
		out.Status = sdk.StatusWarn
		out.Log = append(out.Log, fmt.Sprintf("%s is mounted on %s", s.dev, mountPoints(st.elsewhere)))
	}
	if len(others) > 0 {
		out.Status = sdk.StatusWarn
		for _, ns := range describeNamespaces(others) {
			out.Log = append(out.Log, fmt.Sprintf("%s is mounted in %s", s.dev, ns))
		}
	}
	if st.onMnt != nil {
		out.Log = append(out.Log, fmt.Sprintf("%s (%s) is mounted on %s", st.onMnt.Source, st.onMnt.FSType, s.mnt))
	}
	return out
}

// unreadableLines tells a stop's output which processes' mounts could not
// be checked; the stop succeeds (refusing would make it impossible under
// an LSM that hides some processes), and the operator knows what to check.
func unreadableLines(hs []Holder) []string {
	if len(hs) == 0 {
		return nil
	}
	var ps []string
	for _, h := range hs {
		ps = append(ps, fmt.Sprintf("pid %d (%s)", h.PID, h.Command))
	}
	return []string{fmt.Sprintf("could not read the mounts of %s (permission denied): check by hand that the device is not mounted there", strings.Join(ps, ", "))}
}

func mountPoints(ms []mount) string {
	ps := make([]string, 0, len(ms))
	for _, m := range ms {
		ps = append(ps, m.Point)
	}
	return strings.Join(ps, ", ")
}
