package sdk

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestModule_DependsOnTheWireLibrariesAlone asks the go command what the
// SDK module builds from, tests included: a vendor who imports the SDK
// must not get core, the docker client, the cluster's gossip, the CLI or
// the metrics libraries with it, and the module requires only grpc,
// protobuf, go-plugin and hclog directly.
func TestModule_DependsOnTheWireLibrariesAlone(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go toolchain not in PATH: cannot list the SDK module's dependencies")
	}
	// The test runs in the package directory, which is the module's root.
	out, err := exec.Command("go", "list", "-deps", "-test", "./...").Output()
	if err != nil {
		t.Fatalf("go list -deps -test ./...: %v\n%s", err, stderr(err))
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/vigil-ha/vigil/plugins/sdk/proto") {
		t.Errorf("go list -deps does not list the SDK's own wire package (plugins/sdk/proto)")
	}
	for _, tc := range []struct {
		what, prefix string
	}{
		{"core", "github.com/vigil-ha/vigil/core"},
		{"cmd", "github.com/vigil-ha/vigil/cmd"},
		{"moby", "github.com/moby/"},
		{"docker", "github.com/docker/"},
		{"memberlist", "github.com/hashicorp/memberlist"},
		{"cobra", "github.com/spf13/cobra"},
		{"prometheus", "github.com/prometheus/"},
	} {
		t.Run("no "+tc.what, func(t *testing.T) {
			for _, d := range deps {
				if strings.HasPrefix(d, tc.prefix) {
					t.Errorf("the SDK module pulls in %s (%s)", d, tc.what)
				}
			}
		})
	}

	t.Run("direct requirements", func(t *testing.T) {
		out, err := exec.Command("go", "mod", "edit", "-json").Output()
		if err != nil {
			t.Fatalf("go mod edit -json: %v\n%s", err, stderr(err))
		}
		var mod struct {
			Module  struct{ Path string }
			Require []struct {
				Path     string
				Indirect bool
			}
		}
		if err := json.Unmarshal(out, &mod); err != nil {
			t.Fatalf("reading go mod edit -json: %v", err)
		}
		if mod.Module.Path != "github.com/vigil-ha/vigil/plugins/sdk" {
			t.Fatalf("module path %q, want github.com/vigil-ha/vigil/plugins/sdk", mod.Module.Path)
		}
		allowed := []string{
			"google.golang.org/grpc",
			"google.golang.org/protobuf",
			"github.com/hashicorp/go-plugin",
			"github.com/hashicorp/go-hclog",
		}
		for _, r := range mod.Require {
			if !r.Indirect && !slices.Contains(allowed, r.Path) {
				t.Errorf("go.mod requires %s directly; a vendor's plugin should need only %s", r.Path, strings.Join(allowed, ", "))
			}
		}
	})
}

// stderr is what a failed command printed, for the failure message.
func stderr(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
