package api

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vigil-ha/vigil/core/config"
)

// checkingBackend is a recordingBackend that fails the test when a
// service name reaches it that config would refuse: backends make paths
// of these names.
type checkingBackend struct {
	*recordingBackend
	t *testing.T
}

func (b checkingBackend) check(svc string) {
	if err := config.CheckServiceName(svc); err != nil {
		b.t.Fatalf("the backend got service %q: %v", svc, err)
	}
}

func (b checkingBackend) Action(ctx context.Context, svc string, req ActionRequest, progress func(string)) error {
	b.check(svc)
	return b.recordingBackend.Action(ctx, svc, req, progress)
}

func (b checkingBackend) ConfigGet(ctx context.Context, svc string) ([]byte, error) {
	b.check(svc)
	return b.recordingBackend.ConfigGet(ctx, svc)
}

func (b checkingBackend) ConfigSet(ctx context.Context, svc string, kv []string) error {
	b.check(svc)
	return b.recordingBackend.ConfigSet(ctx, svc, kv)
}

func (b checkingBackend) ConfigCommit(ctx context.Context, svc string) error {
	b.check(svc)
	return b.recordingBackend.ConfigCommit(ctx, svc)
}

// FuzzServer hands the API's routes whole HTTP requests as they come off
// the socket, parsed by net/http as the server parses them. Properties:
// no panic; the backend never sees a service name that cannot be one; a
// request either reaches the backend and gets 200, or is refused (4xx, or
// the mux's redirect of an unclean path) without reaching it.
func FuzzServer(f *testing.F) {
	for _, seed := range []string{
		"GET /v1/status HTTP/1.1\r\nHost: vigild\r\n\r\n",
		"GET /v1/events HTTP/1.1\r\nHost: vigild\r\n\r\n",
		"POST /v1/services/registry.opensvc.com/action HTTP/1.1\r\nHost: vigild\r\nContent-Length: 48\r\n\r\n" +
			`{"action":"switch","to":"n2","rids":["fs#1"]}  `,
		"GET /v1/services/busybox/config HTTP/1.1\r\nHost: vigild\r\n\r\n",
		"POST /v1/services/busybox/config HTTP/1.1\r\nHost: vigild\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"1a\r\n{\"kv\":[\"orchestrate=ha\"]}\n\r\n0\r\n\r\n",
		"POST /v1/services/busybox/commit HTTP/1.1\r\nHost: vigild\r\n\r\n",
		"GET /v1/services/..%2F..%2Fetc%2Fshadow/config HTTP/1.1\r\nHost: vigild\r\n\r\n",
		"POST /v1/services/%2E%2E/commit HTTP/1.1\r\nHost: vigild\r\n\r\n",
		"POST /v1/services/a/action HTTP/1.1\r\nHost: vigild\r\nContent-Length: 36\r\n\r\n" + `{"action":"start"}{"action":"stop"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		b := checkingBackend{&recordingBackend{}, t}
		s := &Server{cfg: ServerConfig{Backend: b}}
		w := httptest.NewRecorder()
		s.routes().ServeHTTP(w, req)
		calls := b.recorded()
		switch {
		case w.Code == http.StatusOK:
			if len(calls) != 1 {
				t.Fatalf("200 after backend calls %q", calls)
			}
		case w.Code >= 300 && w.Code < 500:
			if len(calls) != 0 {
				t.Fatalf("status %d after backend calls %q", w.Code, calls)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
