package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/config"
)

// MaxRequestBody bounds a request's body. The largest a caller needs is a
// config set whose values make up a whole config file (config.MaxFileSize)
// with every byte escaped to two in JSON, plus the request around it.
const MaxRequestBody = 2*config.MaxFileSize + 64<<10

// ServerConfig configures a Server.
type ServerConfig struct {
	// Socket is the unix socket path. Required.
	Socket  string
	Backend Backend
	Logger  hclog.Logger
	// AllowUID is the only uid allowed to call (default 0, root); tests
	// running unprivileged set their own.
	AllowUID *int
}

// Server serves the local API.
type Server struct {
	cfg  ServerConfig
	log  hclog.Logger
	http *http.Server
	ln   net.Listener
}

// Listen creates the socket (mode 0600, replacing a stale one) and returns
// a Server ready to Serve.
func Listen(cfg ServerConfig) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.AllowUID == nil {
		root := 0
		cfg.AllowUID = &root
	}
	if c, err := net.DialTimeout("unix", cfg.Socket, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another vigild answers on %s: stop it first", cfg.Socket)
	}
	os.Remove(cfg.Socket)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", cfg.Socket)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Socket, err)
	}
	if err := os.Chmod(cfg.Socket, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.Named("api"), ln: &credListener{Listener: ln, uid: *cfg.AllowUID, log: cfg.Logger.Named("api")}}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Serve answers until Close.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	os.Remove(s.cfg.Socket)
	return err
}

// credListener refuses callers whose uid is not the allowed one: the API
// starts and stops services, so only root may use it.
type credListener struct {
	net.Listener
	uid int
	log hclog.Logger
}

func (l *credListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		raw, err := uc.SyscallConn()
		if err != nil {
			c.Close()
			continue
		}
		var cred *syscall.Ucred
		var cerr error
		raw.Control(func(fd uintptr) {
			cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		})
		if cerr != nil || int(cred.Uid) != l.uid {
			if cred != nil {
				l.log.Warn("refused a caller that is not root", "uid", cred.Uid, "pid", cred.Pid)
			}
			c.Close()
			continue
		}
		return c, nil
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.cfg.Backend.Status(r.Context()))
	})
	mux.HandleFunc("POST /v1/services/{svc}/action", func(w http.ResponseWriter, r *http.Request) {
		var req ActionRequest
		svc, ok := service(w, r)
		if !ok || !decodeBody(w, r, &req) {
			return
		}
		stream(w, func(progress func(string)) error {
			err := s.cfg.Backend.Action(r.Context(), svc, req, progress)
			s.noteOperator(r, svc, req.Action+" "+strings.Join(append(req.RIDs, req.To), " "), err)
			return err
		})
	})
	mux.HandleFunc("GET /v1/services/{svc}/config", func(w http.ResponseWriter, r *http.Request) {
		svc, ok := service(w, r)
		if !ok {
			return
		}
		b, err := s.cfg.Backend.ConfigGet(r.Context(), svc)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("POST /v1/services/{svc}/config", func(w http.ResponseWriter, r *http.Request) {
		var req ConfigSet
		svc, ok := service(w, r)
		if !ok || !decodeBody(w, r, &req) {
			return
		}
		stream(w, func(func(string)) error {
			err := s.cfg.Backend.ConfigSet(r.Context(), svc, req.KV)
			s.noteOperator(r, svc, "set "+strings.Join(req.KV, " "), err)
			return err
		})
	})
	mux.HandleFunc("POST /v1/services/{svc}/commit", func(w http.ResponseWriter, r *http.Request) {
		svc, ok := service(w, r)
		if !ok {
			return
		}
		stream(w, func(func(string)) error { return s.cfg.Backend.ConfigCommit(r.Context(), svc) })
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fl, _ := w.(http.Flusher)
		enc := json.NewEncoder(w)
		for ev := range s.cfg.Backend.Subscribe(r.Context()) {
			if enc.Encode(ev) != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	})
	s.opsRoutes(mux)
	return mux
}

// service returns the request's service name, or answers 400 and false
// when it cannot be one: backends make paths of it, and a name such as
// "../x" arrives unescaped from "..%2Fx".
func service(w http.ResponseWriter, r *http.Request) (string, bool) {
	svc := r.PathValue("svc")
	if err := config.CheckServiceName(svc); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", false
	}
	return svc, true
}

// decodeBody decodes the request's body, one JSON value of at most
// MaxRequestBody bytes, into v, or answers 400 or 413 and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	err := dec.Decode(v)
	if err == nil {
		if _, next := dec.Token(); next != io.EOF {
			err = errors.New("the body must be one JSON object")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, fmt.Sprintf("request body too large: a request may be at most %d bytes", MaxRequestBody), http.StatusRequestEntityTooLarge)
		return false
	case err != nil:
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// stream runs fn, sending each progress line as it comes and a final line.
func stream(w http.ResponseWriter, fn func(progress func(string)) error) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	var mu sync.Mutex // progress comes from every resource of a parallel wave at once
	send := func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(p)
		if fl != nil {
			fl.Flush()
		}
	}
	err := fn(func(line string) { send(Progress{Line: strings.TrimRight(line, "\n")}) })
	if err != nil {
		send(Progress{Done: true, Error: err.Error()})
		return
	}
	send(Progress{Done: true})
}
