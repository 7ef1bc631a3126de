package docker

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// connectOutcome is what a client sees of one connection to a published
// port: refused, not answered (no SYN-ACK within the wait), or accepted.
type connectOutcome int

const (
	refused connectOutcome = iota
	unanswered
	accepted
)

func connectOnce(addr string) connectOutcome {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	switch {
	case err == nil:
		c.Close()
		return accepted
	case errors.Is(err, syscall.ECONNREFUSED):
		return refused
	}
	return unanswered
}

// A takeover's first clients come while the container starts: the port
// must refuse them (or leave them unanswered) rather than accept and then
// reset them, as docker-proxy does. The container's server waits for a
// file the test creates, so "before it listens" is a state, not a delay.
func TestPrivateDaemon_PublishedPortNotAcceptedBeforeContainerListens(t *testing.T) {
	requireDocker(t)
	s := newTakeoverService(t)
	ctl := filepath.Join(s.base, "ctl")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 110*time.Second)
	s.node(t, "n1")
	d := New(testConfig)
	r := func() sdk.Resource {
		r := s.res("")
		r.Keywords[KwRunArgs] += " -v " + ctl + ":/ctl"
		r.Keywords[KwRunCommand] = `sh -c 'while [ ! -e /ctl/go ]; do sleep 0.05; done; mkdir -p /www/v2; echo ok > /www/v2/index.html; exec httpd -f -p 5000 -h /www'`
		return r
	}
	if _, err := d.ensureDaemon(ctx, r(), s.paths); err != nil {
		t.Fatal(err)
	}
	c, _ := d.clientFor(s.paths, true)
	s.image = importRegistry(t, c)
	if _, err := d.Start(ctx, r()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wantStatus(t, d.Status(ctx, r()), sdk.StatusUp)
	addr := net.JoinHostPort(s.addr, s.port)
	for i := 0; i < 20; i++ {
		if got := connectOnce(addr); got == accepted {
			t.Fatalf("connection %d to %s was accepted while the container's server does not listen yet", i, addr)
		}
	}
	if err := os.WriteFile(filepath.Join(ctl, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := waitAPI(ctx, addr); err != nil {
		t.Fatalf("the published port does not answer once the server listens: %v", err)
	}
	if _, err := d.Stop(ctx, r()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := connectOnce(addr); got == accepted {
		t.Errorf("%s still accepts after the service stopped", addr)
	}
}

// The peer of a powered-off node starts the service's daemon on the data
// root the dead node left: the user's networks, volumes and images are
// all there, and the container runs again with its data.
func TestPrivateDaemon_RestoreAfterPowerOffKeepsUserState(t *testing.T) {
	requireDocker(t)
	s := newTakeoverService(t)
	ctx := testCtx(t, 110*time.Second)
	s.node(t, "n1")
	d1 := New(testConfig)
	netName, volName := "vtnet"+randSuffix(t), "vtvol"+randSuffix(t)
	r := func() sdk.Resource {
		r := s.res("")
		r.Keywords[KwRunArgs] += " -v " + volName + ":/vol --network " + netName
		r.Keywords[KwRunCommand] = `sh -c 'cat /vol/kept > /dev/null || exit 1; mkdir -p /www/v2; cp /vol/kept /www/v2/index.html; exec httpd -f -p 5000 -h /www'`
		return r
	}
	if _, err := d1.ensureDaemon(ctx, r(), s.paths); err != nil {
		t.Fatal(err)
	}
	c1, _ := d1.clientFor(s.paths, true)
	s.image = importRegistry(t, c1)
	nw, err := c1.NetworkCreate(ctx, netName, client.NetworkCreateOptions{Driver: "bridge"})
	if err != nil {
		t.Fatalf("create network %s: %v", netName, err)
	}
	t.Cleanup(func() { // the dead node's bridge outlives it on this one host
		_ = exec.Command("ip", "link", "del", "br-"+nw.ID[:12]).Run()
	})
	if _, err := c1.VolumeCreate(ctx, client.VolumeCreateOptions{Name: volName}); err != nil {
		t.Fatalf("create volume %s: %v", volName, err)
	}
	// Write into the volume through a container of its own, as a user would.
	writer := ContainerName(s.name, "writer")
	wr, err := buildSpec(sdk.Resource{Service: sdk.Service{Name: s.name}, RID: "writer", Keywords: map[string]string{
		KwRunImage: s.image, KwRunArgs: "-v " + volName + ":/vol --network none", KwRunCommand: `sh -c 'echo kept-across-the-takeover > /vol/kept'`}})
	if err != nil {
		t.Fatal(err)
	}
	created, err := c1.ContainerCreate(ctx, client.ContainerCreateOptions{Name: writer, Config: &wr.Config, HostConfig: &wr.Host})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	wait := c1.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{})
	select {
	case err := <-wait.Error:
		t.Fatal(err)
	case <-wait.Result:
	}
	if _, err := d1.Start(ctx, r()); err != nil {
		t.Fatalf("Start on n1: %v", err)
	}
	addr := net.JoinHostPort(s.addr, s.port)
	if _, err := waitAPI(ctx, addr); err != nil {
		t.Fatal(err)
	}

	powerOff(t, s.paths, s.name, s.base)

	s.node(t, "n2")
	d2 := New(testConfig)
	if _, err := d2.Start(ctx, r()); err != nil {
		t.Fatalf("Start on the peer over the dead node's data root: %v\n%s", err, logTail(s.paths, 20))
	}
	wantStatus(t, d2.Status(ctx, r()), sdk.StatusUp)
	if _, err := waitAPI(ctx, addr); err != nil {
		t.Fatalf("the registry does not answer on the peer: %v", err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "kept-across-the-takeover\n" {
		t.Errorf("the container serves %q, want the volume's file", body)
	}
	c2, _ := d2.clientFor(s.paths, true)
	nets, err := c2.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(nets.Items, func(n network.Summary) bool { return n.Name == netName && n.ID == nw.ID }) {
		t.Errorf("network %s (%s) is gone after the takeover", netName, shortID(nw.ID))
	}
	if _, err := c2.VolumeInspect(ctx, volName, client.VolumeInspectOptions{}); err != nil {
		t.Errorf("volume %s: %v", volName, err)
	}
	if _, err := c2.ImageInspect(ctx, s.image); err != nil {
		t.Errorf("image %s: %v", s.image, err)
	}
	if _, err := c2.ContainerInspect(ctx, writer, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("the user's stopped container %s is gone: %v", writer, err)
	}
	if _, err := d2.Stop(ctx, r()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
