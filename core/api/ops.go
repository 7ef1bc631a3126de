package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/journal"
)

// The operations part of the API: node maintenance, fencing operations,
// failure clearing and the event journal. A Backend that serves them also
// implements OpsBackend; the server answers 501 otherwise.

// NodeRequest asks for a node operation.
type NodeRequest struct {
	// Cluster: freeze or thaw the whole cluster, not only this node.
	Cluster bool `json:"cluster,omitempty"`
	// Wait (drain): answer once the node has nothing left and is frozen.
	Wait bool `json:"wait,omitempty"`
	// Node is the target of fence confirm and fence test.
	Node string `json:"node,omitempty"`
}

// ClearRequest asks to forget a service's failures.
type ClearRequest struct {
	// Node whose marks are cleared ("" for this node, "*" for every node).
	Node string `json:"node,omitempty"`
}

// FenceCheck is the last status call to one fencing method of one node.
type FenceCheck struct {
	Node   string    `json:"node"`
	Method string    `json:"method"` // the section: stonith#n1
	Type   string    `json:"type"`
	Level  int       `json:"level"`
	OK     bool      `json:"ok"`
	Power  string    `json:"power,omitempty"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
	// Took is how long the call took.
	Took time.Duration `json:"took"`
}

// OpsStatus is the maintenance and fencing state as this node knows it.
type OpsStatus struct {
	Local string `json:"local"`
	// Frozen lists every node's freeze (its own, or the cluster's).
	Frozen map[string]bool `json:"frozen"`
	// ClusterFrozen: the cluster-wide freeze is in force.
	ClusterFrozen bool `json:"cluster_frozen"`
	// Draining: this node is moving its services away.
	Draining    bool         `json:"draining,omitempty"`
	FenceChecks []FenceCheck `json:"fence_checks,omitempty"`
	// AlertFailures counts failed alert runs, by alert.
	AlertFailures map[string]int `json:"alert_failures,omitempty"`
}

// OpsBackend is what the operations routes need of a backend.
type OpsBackend interface {
	Ops(ctx context.Context) *OpsStatus
	// NodeAction runs freeze, thaw, drain, fence-confirm or fence-test.
	NodeAction(ctx context.Context, verb string, req NodeRequest, progress func(string)) error
	Clear(ctx context.Context, svc string, req ClearRequest) error
	Journal(ctx context.Context, f journal.Filter) ([]journal.Entry, error)
	// FollowJournal returns the entries appended from now on, until ctx
	// ends.
	FollowJournal(ctx context.Context) (<-chan journal.Entry, error)
}

// OperatorNoter is told of every operator action on a service through the
// API (start, stop, switch..., set) with its outcome, for the journal.
type OperatorNoter interface {
	NoteOperator(ctx context.Context, svc, action string, err error)
}

func (s *Server) noteOperator(r *http.Request, svc, action string, err error) {
	if n, ok := s.cfg.Backend.(OperatorNoter); ok {
		n.NoteOperator(context.WithValue(r.Context(), uidKey{}, *s.cfg.AllowUID), svc, strings.TrimSpace(action), err)
	}
}

type uidKey struct{}

// CallerUID is the uid of the caller of an API request: the server admits
// only one (root, or the test's), so it is that one.
func CallerUID(ctx context.Context) (int, bool) {
	uid, ok := ctx.Value(uidKey{}).(int)
	return uid, ok
}

func (s *Server) opsRoutes(mux *http.ServeMux) {
	ops := func(w http.ResponseWriter) (OpsBackend, bool) {
		b, ok := s.cfg.Backend.(OpsBackend)
		if !ok {
			http.Error(w, "this daemon does not serve node operations", http.StatusNotImplemented)
		}
		return b, ok
	}
	withUID := func(r *http.Request) context.Context {
		return context.WithValue(r.Context(), uidKey{}, *s.cfg.AllowUID)
	}
	mux.HandleFunc("GET /v1/ops", func(w http.ResponseWriter, r *http.Request) {
		if b, ok := ops(w); ok {
			writeJSON(w, b.Ops(r.Context()))
		}
	})
	mux.HandleFunc("POST /v1/node/{verb}", func(w http.ResponseWriter, r *http.Request) {
		var req NodeRequest
		b, ok := ops(w)
		if !ok || !decodeBody(w, r, &req) {
			return
		}
		ctx := withUID(r)
		stream(w, func(progress func(string)) error { return b.NodeAction(ctx, r.PathValue("verb"), req, progress) })
	})
	mux.HandleFunc("POST /v1/services/{svc}/clear", func(w http.ResponseWriter, r *http.Request) {
		var req ClearRequest
		svc, ok := service(w, r)
		if !ok {
			return
		}
		b, ok := ops(w)
		if !ok || !decodeBody(w, r, &req) {
			return
		}
		ctx := withUID(r)
		stream(w, func(func(string)) error { return b.Clear(ctx, svc, req) })
	})
	mux.HandleFunc("GET /v1/journal", func(w http.ResponseWriter, r *http.Request) {
		b, ok := ops(w)
		if !ok {
			return
		}
		f, err := ParseJournalQuery(r.URL.Query(), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		follow := r.URL.Query().Get("follow") == "1"
		var live <-chan journal.Entry
		if follow { // subscribed before the read: nothing falls between
			if live, err = b.FollowJournal(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		entries, err := b.Journal(r.Context(), f)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		fl, _ := w.(http.Flusher)
		enc := json.NewEncoder(w)
		var last uint64
		for _, e := range entries {
			enc.Encode(e)
			last = e.Seq
		}
		if fl != nil {
			fl.Flush()
		}
		if !follow {
			return
		}
		f.Since, f.Limit = time.Time{}, 0
		for e := range live {
			if e.Seq <= last || !f.Match(e) {
				continue
			}
			if enc.Encode(e) != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	})
}

// ParseJournalQuery reads a journal request's filter: since (a duration
// back from now, or an RFC 3339 time), service, kind (comma separated),
// limit.
func ParseJournalQuery(q url.Values, now time.Time) (journal.Filter, error) {
	var f journal.Filter
	if s := q.Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			f.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			f.Since = t
		} else {
			return f, fmt.Errorf("since %q: give a duration (10m) or an RFC 3339 time", s)
		}
	}
	f.Service = q.Get("service")
	if k := q.Get("kind"); k != "" {
		f.Kinds = strings.Split(k, ",")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return f, fmt.Errorf("limit %q: give a count", l)
		}
		f.Limit = n
	}
	return f, nil
}

// Ops returns the maintenance and fencing state.
func (c *Client) Ops(ctx context.Context) (*OpsStatus, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/ops", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("vigild: %s", resp.Status)
	}
	var st OpsStatus
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}

// NodeAction runs a node operation (freeze, thaw, drain, fence-confirm,
// fence-test), telling its progress.
func (c *Client) NodeAction(ctx context.Context, verb string, req NodeRequest, progress func(string)) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/node/"+url.PathEscape(verb), req)
	if err != nil {
		return err
	}
	return readStream(resp, progress)
}

// Clear forgets a service's failed and start-failed marks.
func (c *Client) Clear(ctx context.Context, svc string, req ClearRequest) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(svc)+"/clear", req)
	if err != nil {
		return err
	}
	return readStream(resp, func(string) {})
}

// Journal reads the journal with query (since, service, kind, limit,
// follow=1); fn gets each entry until the stream ends or ctx does.
func (c *Client) Journal(ctx context.Context, query url.Values, fn func(journal.Entry)) error {
	resp, err := c.do(ctx, http.MethodGet, "/v1/journal?"+query.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("vigild: %s", resp.Status)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var e journal.Entry
		if err := dec.Decode(&e); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		fn(e)
	}
}
