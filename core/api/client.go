package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Client talks to the daemon of this node.
type Client struct {
	socket string
	http   *http.Client
}

// Dial returns a client for the daemon on socket, or ErrNoDaemon when
// none answers there.
func Dial(socket string) (*Client, error) {
	if _, err := os.Stat(socket); errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("%w: %s is root's", ErrNotRoot, socket)
	} else if err != nil {
		return nil, fmt.Errorf("%w on %s", ErrNoDaemon, socket)
	}
	c, err := net.DialTimeout("unix", socket, time.Second)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("%w: %s is root's", ErrNotRoot, socket)
	}
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %v", ErrNoDaemon, socket, err)
	}
	c.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vigild"+path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("vigild on %s: %w (is it running, and are you root?)", c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("vigild: %s", bytes.TrimSpace(b))
	}
	return resp, nil
}

// Status returns the cluster status.
func (c *Client) Status(ctx context.Context) (*ClusterStatus, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/status", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st ClusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("vigild status: %w", err)
	}
	return &st, nil
}

// Action runs an action on a service in the daemon, calling progress for
// each step line.
func (c *Client) Action(ctx context.Context, svc string, req ActionRequest, progress func(string)) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(svc)+"/action", req)
	if err != nil {
		return err
	}
	return readStream(resp, progress)
}

// ConfigGet returns a service's config file.
func (c *Client) ConfigGet(ctx context.Context, svc string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(svc)+"/config", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// ConfigSet sets keywords of a service's config; the change is validated
// before it is written and propagated.
func (c *Client) ConfigSet(ctx context.Context, svc string, kv []string) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(svc)+"/config", ConfigSet{KV: kv})
	if err != nil {
		return err
	}
	return readStream(resp, nil)
}

// ConfigCommit validates a hand-edited config and publishes it.
func (c *Client) ConfigCommit(ctx context.Context, svc string) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(svc)+"/commit", nil)
	if err != nil {
		return err
	}
	return readStream(resp, nil)
}

// Events streams the daemon's events until ctx ends.
func (c *Client) Events(ctx context.Context, fn func(Event)) error {
	resp, err := c.do(ctx, http.MethodGet, "/v1/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev Event
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("vigild events: %w", err)
		}
		fn(ev)
	}
}

func readStream(resp *http.Response, progress func(string)) error {
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var p Progress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return fmt.Errorf("vigild: bad answer: %w", err)
		}
		if p.Done {
			if p.Error != "" {
				return errors.New(p.Error)
			}
			return nil
		}
		if progress != nil {
			progress(p.Line)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("vigild: the answer ended early (did the daemon stop?)")
}
