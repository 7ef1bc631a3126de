package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const vendorPluginSource = `// A vendor's resource plugin, built against plugins/sdk alone.
package main

import (
	"context"
	"os"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

type hello struct{}

func (hello) Info() sdk.Info {
	return sdk.Info{Name: "hello", Version: "1.2.3", Types: []sdk.TypeInfo{{
		Type: "app.hello",
		Keywords: []sdk.Keyword{
			{Name: "greeting", Required: true, Help: "what to write"},
			{Name: "path", Required: true, Help: "where to write it"},
		},
	}}}
}

func (hello) Validate(_ context.Context, r sdk.Resource) []sdk.FieldError {
	if r.Get("greeting") == "boom" {
		return []sdk.FieldError{{Keyword: "greeting", Message: "boom is not a greeting"}}
	}
	return nil
}

func (hello) Start(_ context.Context, r sdk.Resource) ([]string, error) {
	return []string{"wrote " + r.Get("path")}, os.WriteFile(r.Get("path"), []byte(r.Get("greeting")), 0o600)
}

func (hello) Stop(_ context.Context, r sdk.Resource) ([]string, error) {
	if err := os.Remove(r.Get("path")); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return nil, nil
}

func (hello) Status(_ context.Context, r sdk.Resource) sdk.ResourceStatus {
	if _, err := os.Stat(r.Get("path")); err != nil {
		return sdk.ResourceStatus{Status: sdk.StatusDown, Label: r.Get("greeting")}
	}
	return sdk.ResourceStatus{Status: sdk.StatusUp, Label: r.Get("greeting")}
}

func main() { sdk.Serve(hello{}) }
`

// TestVendorPlugin_OutOfTreeTypeValidatesStartsAndStops builds a plugin in
// a module of its own that requires only the SDK module (replaced by
// plugins/sdk, never the main module), drops it in the plugin directory,
// and drives a service of its new type through svcmgr: the way vendors
// ship resource types.
func TestVendorPlugin_OutOfTreeTypeValidatesStartsAndStops(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go toolchain not in PATH: cannot build the vendor plugin")
	}
	n := newNode(t)
	mod := t.TempDir()
	root, _ := filepath.Abs(repoRoot(t))
	sdkDir := filepath.Join(root, "plugins", "sdk")
	gomod := "module example.com/hello\n\ngo 1.26\n\nrequire github.com/vigil-ha/vigil/plugins/sdk v0.0.0\n\nreplace github.com/vigil-ha/vigil/plugins/sdk => " + sdkDir + "\n"
	must(t, os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o600))
	must(t, os.WriteFile(filepath.Join(mod, "main.go"), []byte(vendorPluginSource), 0o600))
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", filepath.Join(n.pluginDir, "vigil-plugin-hello"), "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The vendor module depends on nothing of vigil but the SDK module
	// (the SDK, its wire and the value parsers core shares), and the main
	// module is not even in its module graph.
	list, err := exec.Command("go", "-C", mod, "list", "-deps", ".").Output()
	must(t, err)
	for _, dep := range strings.Fields(string(list)) {
		if strings.HasPrefix(dep, "github.com/vigil-ha/vigil/") && !slices.Contains([]string{"github.com/vigil-ha/vigil/plugins/sdk", "github.com/vigil-ha/vigil/plugins/sdk/proto", "github.com/vigil-ha/vigil/plugins/sdk/value"}, dep) {
			t.Errorf("vendor plugin pulls in %s", dep)
		}
	}
	mods, err := exec.Command("go", "-C", mod, "list", "-m", "all").Output()
	must(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(mods)), "\n") {
		if m := strings.Fields(line)[0]; strings.HasPrefix(m, "github.com/vigil-ha/vigil") && m != "github.com/vigil-ha/vigil/plugins/sdk" {
			t.Errorf("vendor module's graph holds %s: it must need the SDK module alone", line)
		}
	}

	out := n.must("plugins")
	if !regexp.MustCompile(`(?m)^hello\s+1\.2\.3\s+1\s+app\.hello\s`).MatchString(out) {
		t.Fatalf("svcmgr plugins does not list the vendor plugin:\n%s", out)
	}

	marker := filepath.Join(t.TempDir(), "hello.out")
	good := n.writeService("hello.conf", "[DEFAULT]\nnodes = "+hostname(t)+"\n\n[app#1]\ntype = hello\ngreeting = bonjour\npath = "+marker+"\n")
	n.must("validate", good)

	// The plugin's own keywords get the same errors as built-in ones.
	bad := n.writeService("typo.conf", "[DEFAULT]\nnodes = n1\n\n[app#1]\ntype = hello\ngreting = bonjour\npath = /x\n")
	_, errs, err := n.svcmgr("validate", bad)
	if err == nil || !strings.Contains(errs, "typo.conf:6") || !strings.Contains(errs, `did you mean "greeting"`) {
		t.Fatalf("typo not reported with line and suggestion: %v\n%s", err, errs)
	}
	// And the plugin's Validate runs.
	boom := n.writeService("boom.conf", "[DEFAULT]\nnodes = "+hostname(t)+"\n\n[app#1]\ntype = hello\ngreeting = boom\npath = /x\n")
	if _, errs, err := n.svcmgr("validate", boom); err == nil || !strings.Contains(errs, "boom is not a greeting") {
		t.Fatalf("plugin validation not reported: %v\n%s", err, errs)
	}

	n.must("-s", "hello", "start")
	if b, err := os.ReadFile(marker); err != nil || string(b) != "bonjour" {
		t.Fatalf("start did not run the vendor driver: %v %q", err, b)
	}
	out = n.must("-s", "hello", "print", "status")
	if !regexp.MustCompile(`app#1\s+\.\.\.\.\s+up\s+bonjour`).MatchString(out) || !strings.Contains(out, "overall                   up") {
		t.Fatalf("print status:\n%s", out)
	}
	var st struct {
		Overall   string `json:"overall"`
		Resources []struct {
			RID    string `json:"rid"`
			Status string `json:"status"`
		} `json:"resources"`
	}
	must(t, json.Unmarshal([]byte(n.must("-s", "hello", "print", "status", "--format", "json")), &st))
	if st.Overall != "up" || len(st.Resources) == 0 || st.Resources[0].RID != "app#1" || st.Resources[0].Status != "up" {
		t.Fatalf("json status: %+v", st)
	}
	n.must("-s", "hello", "stop")
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("stop left the marker: %v", err)
	}
	if out := n.must("-s", "hello", "print", "status"); !strings.Contains(out, "overall                   down") {
		t.Fatalf("print status after stop:\n%s", out)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
