// Package pkgtest checks what `make package` builds as an operator gets
// it: the vigil .deb unpacked into a throwaway root runs its commands from
// there, installs and upgrades with dpkg (into another root, scripts run
// chrootless) keeping /etc/vigil, and, in a lab, runs the demo's failover
// and nodemgr's cluster bootstrap on the packaged binaries.
package pkgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binDir is where the binaries the package is made of are: the one `make
// test` built (VIGIL_BIN_DIR), else a fresh `make build` into a
// temporary directory.
func binDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VIGIL_BIN_DIR"); d != "" {
		return d
	}
	buildOnce.Do(func() {
		if builtBin, buildErr = os.MkdirTemp("", "vigil-pkg-bin-"); buildErr != nil {
			return
		}
		cmd := exec.Command("make", "build", "BIN="+builtBin)
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &cmdError{"make build", err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

type cmdError struct {
	what string
	err  error
	out  string
}

func (e *cmdError) Error() string { return e.what + ": " + e.err.Error() + "\n" + e.out }

// buildDebs runs tools/package on binDir's binaries with this version.
func buildDebs(t *testing.T, version string) (vigil, lab string) {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("go", "run", ".", "-bin", binDir(t), "-repo", repoRoot(), "-out", out, "-version", version)
	cmd.Dir = filepath.Join(repoRoot(), "tools", "package")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tools/package: %v\n%s", err, b)
	}
	return debIn(t, out)
}

func debIn(t *testing.T, dir string) (vigil, lab string) {
	t.Helper()
	v, _ := filepath.Glob(filepath.Join(dir, "vigil_*.deb"))
	l, _ := filepath.Glob(filepath.Join(dir, "vigil-lab_*.deb"))
	if len(v) != 1 || len(l) != 1 {
		t.Fatalf("%s holds %v and %v: want one vigil and one vigil-lab .deb (make package)", dir, v, l)
	}
	return v[0], l[0]
}

// debs are the packages `make package` put in dist/ (VIGIL_DIST_DIR),
// else ones built now.
func debs(t *testing.T) (vigil, lab string) {
	t.Helper()
	if d := os.Getenv("VIGIL_DIST_DIR"); d != "" {
		return debIn(t, d)
	}
	return buildDebs(t, "v0.0.1")
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: this test needs it", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDeb_UnpackedIntoARootRunsItsCommandsFromThere(t *testing.T) {
	need(t, "dpkg-deb")
	deb, _ := debs(t)
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	at := func(p string) string { return filepath.Join(root, p) }

	t.Run("vigild --version", func(t *testing.T) {
		out := run(t, at("usr/sbin/vigild"), "--version")
		if !strings.HasPrefix(out, "vigild version ") || strings.Contains(out, "devel") {
			t.Errorf("vigild --version: %q, want the git version the package was built with", out)
		}
	})
	t.Run("svcmgr plugins finds the packaged plugins", func(t *testing.T) {
		out := run(t, at("usr/bin/svcmgr"), "plugins")
		if !strings.HasPrefix(out, "svcmgr ") || strings.HasPrefix(out, "svcmgr devel") {
			t.Errorf("svcmgr plugins does not begin with svcmgr's git version:\n%s", out)
		}
		for _, p := range []string{"docker", "fs", "ip", "lvm", "hb-net", "hb-disk", "stonith-ipmi", "stonith-fence-agent"} {
			if !strings.Contains(out, filepath.Join(root, "usr/lib/vigil/plugins", "vigil-plugin-"+p)) {
				t.Errorf("svcmgr plugins does not list %s from %s:\n%s", p, at("usr/lib/vigil/plugins"), out)
			}
		}
	})
	t.Run("nodemgr validate", func(t *testing.T) {
		host, _ := os.Hostname()
		etc := at("etc/vigil")
		os.WriteFile(filepath.Join(etc, "cluster.conf"), []byte("[cluster]\nname = pkg\nnodes = "+host+"\n\n[hb#1]\ntype = net\nport = 10000\naddrs = "+host+"=127.0.0.1\n"), 0o600)
		out := run(t, at("usr/bin/nodemgr"), "--config-dir", etc, "validate")
		if !strings.Contains(out, ": ok (cluster pkg") {
			t.Errorf("nodemgr validate: %s", out)
		}
		os.WriteFile(filepath.Join(etc, "cluster.conf"), []byte("[cluster]\nname = pkg\nnodes = "+host+"\n\n[hb#1]\ntype = net\nport = many\n"), 0o600)
		b, err := exec.Command(at("usr/bin/nodemgr"), "--config-dir", etc, "validate").CombinedOutput()
		if err == nil || !strings.Contains(string(b), filepath.Join(etc, "cluster.conf")+":7: [hb#1] port") {
			t.Errorf("nodemgr validate of a bad port: %v\n%s", err, b)
		}
	})
	t.Run("layout", func(t *testing.T) {
		unit, err := os.ReadFile(at("usr/lib/systemd/system/vigild.service"))
		if err != nil || !strings.Contains(string(unit), "\nExecStart=/usr/sbin/vigild ") {
			t.Errorf("the unit does not run the packaged /usr/sbin/vigild (%v):\n%s", err, unit)
		}
		for _, d := range []string{"etc/vigil", "var/lib/vigil"} {
			if fi, err := os.Stat(at(d)); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("/%s: %v, want a directory of mode 0700", d, err)
			}
		}
		for _, p := range []string{"usr/share/man/man8/nodemgr-cluster-init.8.gz", "usr/share/man/man8/vigild.8.gz",
			"usr/share/bash-completion/completions/svcmgr", "usr/share/zsh/vendor-completions/_nodemgr"} {
			if _, err := os.Stat(at(p)); err != nil {
				t.Errorf("missing /%s: %v", p, err)
			}
		}
	})
}

// dpkg installs into root, its maintainer scripts run on this host with
// DPKG_ROOT set (they then never call systemctl).
func dpkgInto(t *testing.T, root string, args ...string) string {
	t.Helper()
	return run(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends"}, args...)...)
}

func TestDeb_InstallUpgradeAndPurgeKeepEtcVigil(t *testing.T) {
	need(t, "dpkg", "dpkg-deb")
	if os.Geteuid() != 0 {
		t.Skip("dpkg installs as root")
	}
	v1, _ := debs(t)
	v2, _ := buildDebs(t, "v99.0.0")
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)

	out := dpkgInto(t, root, "-i", v1)
	if !strings.Contains(out, "vigild is not started") {
		t.Errorf("a first install says nothing of the missing cluster.conf:\n%s", out)
	}
	conf := filepath.Join(root, "etc/vigil/cluster.conf")
	if err := os.WriteFile(conf, []byte("[cluster]\nname = keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(root, "etc/vigil"), 0o700)

	out = dpkgInto(t, root, "-i", v2)
	if !strings.Contains(out, "Unpacking vigil (99.0.0) over") {
		t.Errorf("not an upgrade:\n%s", out)
	}
	if b, err := os.ReadFile(conf); err != nil || string(b) != "[cluster]\nname = keep\n" {
		t.Errorf("the upgrade did not keep cluster.conf: %q, %v", b, err)
	}
	if strings.Contains(out, "vigild is not started") {
		t.Errorf("a configured node is told it is not:\n%s", out)
	}
	if v := run(t, filepath.Join(root, "usr/sbin/vigild"), "--version"); strings.Contains(v, "devel") {
		t.Errorf("upgraded vigild: %s", v)
	}

	dpkgInto(t, root, "-P", "vigil")
	if _, err := os.Stat(conf); err != nil {
		t.Errorf("a purge removed /etc/vigil/cluster.conf: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/vigild")); err == nil {
		t.Error("a purge left /usr/sbin/vigild")
	}
}
