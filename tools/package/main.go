// Command package builds Vigil's Debian packages with nfpm: `vigil` (the
// daemon, the commands, the built-in plugins, the systemd unit, man pages
// and shell completions generated from the binaries it ships) and
// `vigil-lab` (the test lab, apart: no production host needs it). It runs
// from `make package` on binaries `make build` made, and builds nothing
// itself. It is a module of its own so that nfpm's dependencies stay out
// of Vigil's.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

// Where the vigil package puts things. The plugins sit at
// ../lib/vigil/plugins from the commands, where core/plugin.DefaultDir
// looks first.
const (
	sbinDir   = "/usr/sbin"
	binDir    = "/usr/bin"
	pluginDir = "/usr/lib/vigil/plugins"
	unitPath  = "/usr/lib/systemd/system/vigild.service"
	labDir    = "/usr/lib/vigil-lab"
)

var (
	// commands the vigil package ships, and where.
	commands = map[string]string{
		"vigild": sbinDir, "svcmgr": binDir, "svcmon": binDir, "nodemgr": binDir, "vigil-arbitrator": binDir,
	}
	// completed are the commands an operator types: they get shell
	// completions.
	completed = []string{"svcmgr", "svcmon", "nodemgr"}
)

// debOptions: gzip at its fastest level. Level 9 (nfpm's default) takes
// most of `make package`'s time on ~300 MB of Go binaries for a few
// percent; gzip (not zstd or xz) so that every dpkg reads it.
var debOptions = nfpm.Deb{Compression: "gzip:1"}

type options struct {
	bin, repo, out, version, arch string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory holding the built binaries (make build)")
	flag.StringVar(&o.repo, "repo", ".", "the repository (for the unit and the docs)")
	flag.StringVar(&o.out, "out", "dist", "where the .deb files go")
	flag.StringVar(&o.version, "version", "", "the version, as git describe prints it (default: git describe in -repo)")
	flag.StringVar(&o.arch, "arch", "amd64", "the Debian architecture of the binaries")
	flag.Parse()
	paths, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "package: "+err.Error())
		os.Exit(1)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
}

func run(o options) ([]string, error) {
	if o.version == "" {
		out, err := exec.Command("git", "-C", o.repo, "describe", "--tags", "--always", "--dirty").Output()
		if err != nil {
			return nil, fmt.Errorf("git describe in %s (or give -version): %w", o.repo, err)
		}
		o.version = strings.TrimSpace(string(out))
	}
	ver, err := debVersion(o.version)
	if err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp("", "vigil-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	vigil, err := vigilPackage(o, ver, stage)
	if err != nil {
		return nil, err
	}
	lab := labPackage(o, ver)
	var paths []string
	for _, info := range []*nfpm.Info{vigil, lab} {
		p, err := write(o.out, info)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", info.Name, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

var describeRE = regexp.MustCompile(`^v?(\d+(?:\.\d+)*)(?:-(\d+)-g([0-9a-f]+))?(-dirty)?$`)
var hashRE = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)

// debVersion turns git describe's output into a Debian version that sorts
// as the history does: v1.2.0 is 1.2.0, three commits later 1.2.0+3.gabc,
// and a tree without tags 0~git.abc (below any release).
func debVersion(describe string) (string, error) {
	dirty := ""
	if m := describeRE.FindStringSubmatch(describe); m != nil {
		if m[4] != "" {
			dirty = "+dirty"
		}
		if m[2] != "" {
			return m[1] + "+" + m[2] + ".g" + m[3] + dirty, nil
		}
		return m[1] + dirty, nil
	}
	if m := hashRE.FindStringSubmatch(describe); m != nil {
		if m[2] != "" {
			dirty = "+dirty"
		}
		return "0~git." + m[1] + dirty, nil
	}
	return "", fmt.Errorf("version %q: expected what git describe --tags --always --dirty prints (v1.2.3, v1.2.3-4-gabcdef, abcdef)", describe)
}

func file(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, Type: files.TypeFile, FileInfo: &files.ContentFileInfo{Mode: mode}}
}

func dir(dst string, mode os.FileMode) *files.Content {
	return &files.Content{Destination: dst, Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: mode}}
}

func vigilPackage(o options, ver, stage string) (*nfpm.Info, error) {
	var contents files.Contents
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		src := filepath.Join(o.bin, name)
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("%w: run make build first", err)
		}
		contents = append(contents, file(src, filepath.Join(commands[name], name), 0o755))
	}
	plugins, _ := filepath.Glob(filepath.Join(o.bin, "vigil-plugin-*"))
	if len(plugins) == 0 {
		return nil, fmt.Errorf("no vigil-plugin-* in %s: run make build first", o.bin)
	}
	for _, p := range plugins {
		contents = append(contents, file(p, filepath.Join(pluginDir, filepath.Base(p)), 0o755))
	}
	contents = append(contents,
		file(filepath.Join(o.repo, "cmd/vigild/vigild.service"), unitPath, 0o644),
		// The secret, BMC passwords and service configs: root's alone.
		// Not the package's files: an upgrade leaves what is in it.
		dir("/etc/vigil", 0o700),
		dir("/var/lib/vigil", 0o700),
	)
	for _, doc := range []string{"README.md", "docs/production.md"} {
		if _, err := os.Stat(filepath.Join(o.repo, doc)); err == nil {
			contents = append(contents, file(filepath.Join(o.repo, doc), "/usr/share/doc/vigil/"+filepath.Base(doc), 0o644))
		}
	}
	man, err := manPages(o, stage)
	if err != nil {
		return nil, err
	}
	contents = append(contents, man...)
	comp, err := completions(o, stage)
	if err != nil {
		return nil, err
	}
	contents = append(contents, comp...)
	scripts := filepath.Join(o.repo, "tools/package/scripts")
	return &nfpm.Info{
		Name: "vigil", Arch: o.arch, Platform: "linux", Version: ver, VersionSchema: "none",
		Section: "admin", Priority: "optional",
		Maintainer:  "Vigil developers <vigil@localhost>",
		Homepage:    "https://github.com/vigil-ha/vigil",
		License:     "see /usr/share/doc/vigil",
		Description: "high-availability cluster agent\n Vigil keeps services (docker containers, addresses, LVM volume groups,\n filesystems) running on exactly one node of a cluster, fencing a lost\n node before starting them elsewhere. vigild is the node daemon; svcmgr,\n svcmon and nodemgr are its command line.",
		Overridables: nfpm.Overridables{
			Depends:    []string{"libc6"},
			Recommends: []string{"lvm2", "docker.io | docker-ce"},
			Suggests:   []string{"fence-agents", "ipmitool"},
			Contents:   contents,
			Deb:        debOptions,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(scripts, "postinst"),
				PreRemove:   filepath.Join(scripts, "prerm"),
				PostRemove:  filepath.Join(scripts, "postrm"),
			},
		},
	}, nil
}

func labPackage(o options, ver string) *nfpm.Info {
	return &nfpm.Info{
		Name: "vigil-lab", Arch: o.arch, Platform: "linux", Version: ver, VersionSchema: "none",
		Section: "devel", Priority: "optional",
		Maintainer:  "Vigil developers <vigil@localhost>",
		Homepage:    "https://github.com/vigil-ha/vigil",
		License:     "see /usr/share/doc/vigil",
		Description: "test lab for Vigil clusters on one host\n vigil-lab builds a cluster of Vigil nodes in namespaces on one host, with\n shared loop-device disks and simulated BMCs, and runs failovers and\n randomized faults against it. For testing only: a production node\n needs the vigil package alone.",
		Overridables: nfpm.Overridables{
			Depends: []string{"vigil (= " + ver + ")", "iproute2", "util-linux", "e2fsprogs", "lvm2", "openipmi", "ipmitool", "docker.io | docker-ce"},
			Contents: files.Contents{
				file(filepath.Join(o.bin, "vigil-lab"), labDir+"/vigil-lab", 0o755),
				file(filepath.Join(o.bin, "regclient"), labDir+"/regclient", 0o755),
				&files.Content{Source: labDir + "/vigil-lab", Destination: binDir + "/vigil-lab", Type: files.TypeSymlink},
			},
			Deb: debOptions,
		},
	}
}

// manPages runs each command's hidden gen-docs and gzips the pages.
func manPages(o options, stage string) (files.Contents, error) {
	raw := filepath.Join(stage, "man")
	for name := range commands {
		cmd := exec.Command(filepath.Join(o.bin, name), "gen-docs", "--man", raw)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s gen-docs: %w: %s", name, err, out)
		}
	}
	pages, _ := filepath.Glob(filepath.Join(raw, "*.8"))
	var out files.Contents
	for _, p := range pages {
		// cobra's completion commands are documented by their --help.
		if strings.Contains(filepath.Base(p), "-completion") {
			continue
		}
		gz := filepath.Join(stage, "man8", filepath.Base(p)+".gz")
		if err := gzipFile(p, gz); err != nil {
			return nil, err
		}
		out = append(out, file(gz, "/usr/share/man/man8/"+filepath.Base(gz), 0o644))
	}
	if len(out) == 0 {
		return nil, errors.New("gen-docs wrote no man page")
	}
	return out, nil
}

func gzipFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.ModTime = time.Unix(0, 0) // reproducible
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}

// completions asks each command's cobra completion command for its bash,
// zsh and fish scripts, installed where Debian's shells look.
func completions(o options, stage string) (files.Contents, error) {
	shells := []struct{ shell, dst string }{
		{"bash", "/usr/share/bash-completion/completions/%s"},
		{"zsh", "/usr/share/zsh/vendor-completions/_%s"},
		{"fish", "/usr/share/fish/vendor_completions.d/%s.fish"},
	}
	var out files.Contents
	for _, name := range completed {
		for _, s := range shells {
			script, err := exec.Command(filepath.Join(o.bin, name), "completion", s.shell).Output()
			if err != nil {
				return nil, fmt.Errorf("%s completion %s: %w", name, s.shell, err)
			}
			p := filepath.Join(stage, "completion", s.shell, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, script, 0o644); err != nil {
				return nil, err
			}
			out = append(out, file(p, fmt.Sprintf(s.dst, name), 0o644))
		}
	}
	return out, nil
}

// write builds info's .deb in dir, named as Debian names it.
func write(dir string, info *nfpm.Info) (string, error) {
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	pkger, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, pkger.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := pkger.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	return path, f.Close()
}
