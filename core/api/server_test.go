package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-ha/vigil/core/config"
)

// recordingBackend answers every call at once and records it.
type recordingBackend struct {
	mu    sync.Mutex
	calls []string
}

func (b *recordingBackend) record(format string, a ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf(format, a...))
}

func (b *recordingBackend) recorded() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *recordingBackend) Status(context.Context) *ClusterStatus {
	b.record("status")
	return &ClusterStatus{Cluster: "lab"}
}

func (b *recordingBackend) Action(_ context.Context, svc string, req ActionRequest, progress func(string)) error {
	b.record("action %s %+v", svc, req)
	progress("step")
	return nil
}

func (b *recordingBackend) ConfigGet(_ context.Context, svc string) ([]byte, error) {
	b.record("get %s", svc)
	return []byte("[DEFAULT]\n"), nil
}

func (b *recordingBackend) ConfigSet(_ context.Context, svc string, kv []string) error {
	b.record("set %s %d", svc, len(kv))
	return nil
}

func (b *recordingBackend) ConfigCommit(_ context.Context, svc string) error {
	b.record("commit %s", svc)
	return nil
}

func (b *recordingBackend) Subscribe(context.Context) <-chan Event {
	b.record("subscribe")
	ch := make(chan Event)
	close(ch)
	return ch
}

var _ Backend = (*recordingBackend)(nil)

// serve runs a Server for b on a real unix socket and returns an HTTP
// client dialling it.
func serve(t *testing.T, b Backend) (*http.Client, string) {
	t.Helper()
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "api")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid := os.Getuid()
	sock := filepath.Join(dir, SocketName)
	srv, err := Listen(ServerConfig{Socket: sock, Backend: b, AllowUID: &uid})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, sock
}

func do(t *testing.T, c *http.Client, method, path string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://vigild"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func TestServer_PassesGoodRequestsOn(t *testing.T) {
	b := &recordingBackend{}
	c, _ := serve(t, b)
	for _, tc := range []struct {
		method, path, body, call string
	}{
		{"GET", "/v1/status", "", "status"},
		{"POST", "/v1/services/registry.opensvc.com/action", `{"action":"switch","to":"n2","rids":["fs#1"]}`, "action registry.opensvc.com {Action:switch To:n2 RIDs:[fs#1] Wait:false}"},
		{"GET", "/v1/services/busybox/config", "", "get busybox"},
		{"POST", "/v1/services/busybox/config", `{"kv":["orchestrate=ha","fs#1.mnt_opt=ro"]}`, "set busybox 2"},
		{"POST", "/v1/services/busybox/commit", "", "commit busybox"},
		{"GET", "/v1/events", "", "subscribe"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			from := len(b.recorded())
			if code, out := do(t, c, tc.method, tc.path, []byte(tc.body)); code != http.StatusOK {
				t.Fatalf("status %d: %s", code, out)
			}
			if calls := b.recorded()[from:]; len(calls) != 1 || calls[0] != tc.call {
				t.Fatalf("backend calls %q, want %q", calls, tc.call)
			}
		})
	}
}

func TestServer_RefusesBadRequestsBeforeTheBackend(t *testing.T) {
	b := &recordingBackend{}
	c, _ := serve(t, b)
	huge := `{"kv":["comment=` + strings.Repeat("x", MaxRequestBody) + `"]}`
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"service name with a slash", "GET", "/v1/services/..%2F..%2Fetc%2Fshadow/config", "", 400, "bad service name"},
		// The mux cleans a literal "..": whatever it answers, the
		// backend must not hear of it.
		{"dot-dot service name", "POST", "/v1/services/../commit", "", 0, ""},
		{"escaped dot-dot service name", "POST", "/v1/services/%2E%2E/commit", "", 0, ""},
		{"hidden service name", "POST", "/v1/services/.x/action", `{"action":"start"}`, 400, "bad service name"},
		{"NUL in service name", "POST", "/v1/services/a%00b/config", `{"kv":[]}`, 400, "bad service name"},
		{"body not JSON", "POST", "/v1/services/a/action", `start`, 400, "bad request"},
		{"two JSON values", "POST", "/v1/services/a/action", `{"action":"start"}{"action":"stop"}`, 400, "one JSON object"},
		{"body over the limit", "POST", "/v1/services/a/config", huge, 413, fmt.Sprintf("at most %d bytes", MaxRequestBody)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := len(b.recorded())
			code, out := do(t, c, tc.method, tc.path, []byte(tc.body))
			if (tc.code == 0 && code == http.StatusOK) || (tc.code != 0 && code != tc.code) || !strings.Contains(out, tc.msg) {
				t.Fatalf("status %d %q, want %d with %q", code, out, tc.code, tc.msg)
			}
			if calls := b.recorded()[from:]; len(calls) != 0 {
				t.Fatalf("the backend was called: %q", calls)
			}
		})
	}
}

func TestServer_BodyLimitHoldsAConfigAtItsLimit(t *testing.T) {
	if MaxRequestBody < 2*config.MaxFileSize {
		t.Fatalf("MaxRequestBody %d cannot carry a %d-byte value escaped", MaxRequestBody, config.MaxFileSize)
	}
	b := &recordingBackend{}
	c, _ := serve(t, b)
	// Newlines escape to two bytes: the worst a config's text does.
	body := `{"kv":["comment=` + strings.Repeat(`\n`, config.MaxFileSize) + `"]}`
	if code, out := do(t, c, "POST", "/v1/services/a/config", []byte(body)); code != http.StatusOK {
		t.Fatalf("status %d: %s", code, out)
	}
}

func TestClient_RefusesBadServiceNameFromTheServer(t *testing.T) {
	_, sock := serve(t, &recordingBackend{})
	cl, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ConfigGet(context.Background(), "../../etc/shadow"); err == nil || !strings.Contains(err.Error(), "bad service name") {
		t.Fatalf("ConfigGet(../../etc/shadow) = %v, want a bad service name error", err)
	}
}
