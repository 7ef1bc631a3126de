package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/plugin/plugintest"
)

func TestMetrics_FollowPrometheusConventions(t *testing.T) {
	etc, marker := monitoredWeb(t, "")
	os.WriteFile(marker, nil, 0o600)
	run := t.TempDir()
	d, err := New(Config{ConfigDir: etc, StateDir: filepath.Join(etc, "..", "state"), RunDir: run, PluginDir: plugintest.Dir(t),
		Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.host.Close() })
	d.scanConfigs(context.Background())
	d.refreshNow(context.Background(), "web")
	families, err := d.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if strings.Contains(f.GetName(), "instance") {
			t.Errorf("%s: a metric word that reads as Prometheus's instance label", f.GetName())
		}
		if f.GetType().String() == "COUNTER" && !strings.HasSuffix(f.GetName(), "_total") {
			t.Errorf("counter %s does not end in _total", f.GetName())
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "instance" {
					t.Errorf("%s has an instance label", f.GetName())
				}
				if f.GetName() != "vigil_build_info" && strings.ContainsAny(l.GetValue(), " /") {
					t.Errorf("%s{%s=%q}: a label value with a space or slash", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, want := range []string{"vigil_service_status", "vigil_resource_status", "vigil_actions_total", "vigil_build_info",
		"go_goroutines", "process_resident_memory_bytes"} {
		if !names[want] {
			t.Errorf("no %s", want)
		}
	}
	if names["vigil_heartbeat_age_seconds"] || names["vigil_fence_total"] {
		t.Error("the old names are still served")
	}
	// A removed service's series go with it.
	d.mu.Lock()
	delete(d.svcs, "web")
	d.mu.Unlock()
	families, _ = d.metrics.reg.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == "web" {
					t.Fatalf("%s still has a series of the removed service", f.GetName())
				}
			}
		}
	}
}
