package view

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/status"
)

func failedService() status.Service {
	s := status.Summarize("tour", []status.Resource{
		{RID: "container#1", Group: status.GroupContainer, Type: "container.docker", Status: status.Down, Monitor: true},
	})
	s.State, s.Reason = "start failed", "container#1: no such image; svcmgr -s tour start"
	return s
}

func TestWriteTree_FailedStateAndReasonUnderOverall(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTree(&b, failedService()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.HasPrefix(lines[1], "overall") || !strings.Contains(lines[2], "# start failed: container#1:") {
		t.Fatalf("tree:\n%s\nwant the state and its reason right under overall", b.String())
	}
	ok := failedService()
	ok.State, ok.Reason = "started", ""
	b.Reset()
	WriteTree(&b, ok)
	if strings.Contains(b.String(), "# started") {
		t.Fatalf("tree:\n%s\nwant no state line when nothing failed", b.String())
	}
}

func TestWriteMonitor_ListsFailedInstances(t *testing.T) {
	cs := &api.ClusterStatus{Cluster: "c", Local: "n1", Nodes: []string{"n1"}, Node: map[string]*api.NodeStatus{
		"n1": {State: cluster.Ready, Services: map[string]*cluster.ServiceInstance{"tour": {Status: failedService()}}},
	}}
	var b bytes.Buffer
	if err := WriteMonitor(&b, MonitorRows(cs, "n1", MonitorOptions{})); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "failed:\n  tour: start failed: container#1: no such image") {
		t.Fatalf("svcmon:\n%s\nwant the failed list under the table", b.String())
	}
	b.Reset()
	if err := WriteClusterMonitor(&b, cs, MonitorOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "failed:\n  tour on n1: start failed:") {
		t.Fatalf("svcmon --cluster:\n%s\nwant the failed list naming the node", b.String())
	}
}
