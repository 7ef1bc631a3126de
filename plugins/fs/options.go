package fs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOptions is mnt_opt split the way mount(8) splits it: the generic VFS
// options become mount(2) flags, the rest is the filesystem's data string.
type mountOptions struct {
	Flags uintptr
	Data  string
}

// flagOptions maps an option to the flag it sets (set=true) or clears.
var flagOptions = map[string]struct {
	flag uintptr
	set  bool
}{
	"ro":          {unix.MS_RDONLY, true},
	"rw":          {unix.MS_RDONLY, false},
	"nosuid":      {unix.MS_NOSUID, true},
	"suid":        {unix.MS_NOSUID, false},
	"nodev":       {unix.MS_NODEV, true},
	"dev":         {unix.MS_NODEV, false},
	"noexec":      {unix.MS_NOEXEC, true},
	"exec":        {unix.MS_NOEXEC, false},
	"sync":        {unix.MS_SYNCHRONOUS, true},
	"async":       {unix.MS_SYNCHRONOUS, false},
	"dirsync":     {unix.MS_DIRSYNC, true},
	"noatime":     {unix.MS_NOATIME, true},
	"atime":       {unix.MS_NOATIME, false},
	"nodiratime":  {unix.MS_NODIRATIME, true},
	"diratime":    {unix.MS_NODIRATIME, false},
	"relatime":    {unix.MS_RELATIME, true},
	"norelatime":  {unix.MS_RELATIME, false},
	"strictatime": {unix.MS_STRICTATIME, true},
	"lazytime":    {unix.MS_LAZYTIME, true},
	"nolazytime":  {unix.MS_LAZYTIME, false},
	"silent":      {unix.MS_SILENT, true},
	"loud":        {unix.MS_SILENT, false},
}

// ignoredOptions are fstab/mount(8) conventions with no meaning to the
// kernel; mount(8) drops them too, and passing them as data would make the
// filesystem refuse the mount.
var ignoredOptions = map[string]bool{
	"defaults": true, "auto": true, "noauto": true, "nofail": true,
	"user": true, "nouser": true, "users": true, "owner": true, "group": true,
	"_netdev": true,
}

// refusedOptions change what a mount is (not how the filesystem behaves);
// this driver manages plain device mounts only.
var refusedOptions = map[string]bool{
	"bind": true, "rbind": true, "move": true, "remount": true,
}

// parseMountOptions reads a comma-separated mnt_opt value.
func parseMountOptions(s string) (mountOptions, error) {
	var o mountOptions
	var data []string
	for _, opt := range strings.Split(s, ",") {
		opt = strings.TrimSpace(opt)
		switch {
		case opt == "" || ignoredOptions[opt] || strings.HasPrefix(opt, "x-") || strings.HasPrefix(opt, "comment="):
			continue
		case refusedOptions[opt]:
			return mountOptions{}, fmt.Errorf("mount option %q is not supported by the fs driver (it mounts block devices only)", opt)
		}
		if f, ok := flagOptions[opt]; ok {
			if f.set {
				o.Flags |= f.flag
			} else {
				o.Flags &^= f.flag
			}
			continue
		}
		data = append(data, opt)
	}
	o.Data = strings.Join(data, ",")
	return o, nil
}
