package plugin

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"

	"github.com/vigil-ha/vigil/core/status"
)

// TestStatus_UnknownValueFromPluginReadsUndefWithReason runs a real plugin
// that answers a status number core does not know. One such value once made
// the node's whole dataset unmarshallable: publishing stopped and peers
// fenced a healthy node.
func TestStatus_UnknownValueFromPluginReadsUndefWithReason(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "oddstatus", "odd")
	h := newTestHost(t, dir)
	ctx := context.Background()
	d, err := h.Driver(ctx, "app.odd")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wire int
		want status.Status
		why  string
	}{
		{"known value passes", int(status.Warn), status.Warn, ""},
		{"value past the enum", 42, status.Undef, "plugin returned unknown status 42"},
		{"negative value", -3, status.Undef, "plugin returned unknown status -3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Service: ServiceEnv{Name: "svc"}, RID: "app#1", Type: "app.odd", Keywords: map[string]string{"status": strconv.Itoa(tc.wire)}}
			st := d.Status(ctx, req)
			if st.Status != tc.want {
				t.Errorf("status = %v, want %v (log %q)", st.Status, tc.want, st.Log)
			}
			if !slices.Contains(st.Log, "the plugin's own line") {
				t.Errorf("the plugin's log was dropped: %q", st.Log)
			}
			if tc.why != "" && !slices.Contains(st.Log, tc.why) {
				t.Errorf("log %q does not give the reason %q", st.Log, tc.why)
			}
			svc := status.Service{Name: "svc", Resources: []status.Resource{{RID: "app#1", Group: "app", Type: "app.odd", Status: st.Status, Log: st.Log}}}
			svc.Avail = status.Avail(svc.Resources)
			svc.Overall = status.Overall(svc.Avail, svc.Resources)
			if _, err := json.Marshal(svc); err != nil {
				t.Fatalf("a service holding this resource does not marshal: %v", err)
			}
		})
	}
}
