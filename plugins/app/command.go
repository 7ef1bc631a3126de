package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// commandSpec is a forking or simple app's keywords, read once.
type commandSpec struct {
	start, stop, check []string // argv; nil when unset
	cwd                string
	cred               *syscall.Credential // nil: root, as the plugin
	home, user         string
	env                []string // the environment keyword's words
}

// basePath is the commands' PATH: the plugin's own environment (vigild's,
// with its plugin cookie) is not handed down.
const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// commandSpecOf reads a forking or simple resource, with every problem at
// once.
func commandSpecOf(r sdk.Resource) (*commandSpec, []sdk.FieldError) {
	var errs []sdk.FieldError
	s := &commandSpec{cwd: "/", user: "root", home: "/root"}
	shell := r.Bool("shell")
	for _, c := range []struct {
		kw  string
		dst *[]string
	}{{"start", &s.start}, {"stop", &s.stop}, {"check", &s.check}} {
		v := strings.TrimSpace(r.Get(c.kw))
		if v == "" {
			continue
		}
		if shell {
			*c.dst = []string{"/bin/sh", "-c", v}
			continue
		}
		words, err := splitWords(v)
		if err != nil {
			errs = append(errs, sdk.FieldError{Keyword: c.kw, Message: err.Error()})
			continue
		}
		if !strings.Contains(words[0], "/") {
			errs = append(errs, sdk.FieldError{Keyword: c.kw, Message: fmt.Sprintf(
				"%q is not a path: no shell runs, so write the program's absolute path (%s), or set shell = true", words[0], lookPathHint(words[0]))})
			continue
		}
		*c.dst = words
	}
	if r.Type == TypeSimple && shell && s.start != nil {
		// exec keeps the shell's pid for the program, so the pid file and
		// the signals reach it and not an idle shell.
		s.start[2] = "exec " + s.start[2]
	}
	if cwd := r.Get("cwd"); cwd != "" {
		if !filepath.IsAbs(cwd) {
			errs = append(errs, sdk.FieldError{Keyword: "cwd", Message: fmt.Sprintf("%q is not an absolute path", cwd)})
		}
		s.cwd = cwd
	}
	if name := strings.TrimSpace(r.Get("user")); name != "" && name != "root" && name != "0" {
		cred, u, err := lookupUser(name)
		if err != nil {
			errs = append(errs, sdk.FieldError{Keyword: "user", Message: err.Error()})
		} else {
			s.cred, s.user, s.home = cred, u.Username, u.HomeDir
		}
	}
	if v := r.Get("environment"); v != "" {
		words, err := splitWords(v)
		if err != nil {
			errs = append(errs, sdk.FieldError{Keyword: "environment", Message: err.Error()})
		}
		for _, w := range words {
			if k, _, ok := strings.Cut(w, "="); !ok || k == "" || strings.ContainsAny(k, " \t") {
				errs = append(errs, sdk.FieldError{Keyword: "environment", Message: fmt.Sprintf("%q: write NAME=VALUE", w)})
				continue
			}
			s.env = append(s.env, w)
		}
	}
	return s, errs
}

func lookPathHint(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return "/usr/bin/" + name + ", say"
}

func lookupUser(name string) (*syscall.Credential, *user.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.Atoi(name); numErr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("no user %q on this node: create it, or change user", name)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return cred, u, nil
}

// environ is what a command of r sees.
func (s *commandSpec) environ(r sdk.Resource, extra ...string) []string {
	env := []string{
		"PATH=" + basePath, "LANG=C.UTF-8", "HOME=" + s.home, "USER=" + s.user, "LOGNAME=" + s.user,
		"VIGIL_SVCNAME=" + r.Service.Name, "VIGIL_RID=" + r.RID,
	}
	env = append(env, extra...)
	return append(env, s.env...)
}

// run is one command run to its end.
type run struct {
	code   int // exit status; -1 when it did not run or was killed
	output string
	err    error // nil when the command ran and exited (whatever its code)
}

// tail is the last lines of the output, for reasons and errors.
func (r run) tail(n int) []string {
	lines := strings.Split(strings.TrimRight(r.output, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// runCommand runs argv to its end within limit (and ctx), in its own
// session so that a timeout kills everything it started that is still in
// its process group. Its output goes to outFile rather than a pipe: a
// daemon that a forking start leaves behind keeps its inherited stdout
// open, and a pipe would never reach its end.
func runCommand(ctx context.Context, argv []string, dir string, env []string, cred *syscall.Credential, limit time.Duration, outFile string) run {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	out, err := os.OpenFile(outFile, os.O_CREATE|os.O_TRUNC|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return run{code: -1, err: fmt.Errorf("open the command's output file: %w", err)}
	}
	defer out.Close()
	argv = atNormalPriority(argv)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	res := run{code: -1, output: readTail(out, 8192)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.err = fmt.Errorf("%s did not finish within %s: killed (raise the timeout if it needs longer)", argv[0], limit)
	case errors.As(err, &exit) && exit.Exited():
		res.code = exit.ExitCode()
	case err != nil:
		res.err = fmt.Errorf("run %s: %w", argv[0], err)
	default:
		res.code = 0
	}
	return res
}

// readTail reads the last max bytes of f.
func readTail(f *os.File, max int64) string {
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max64(fi.Size()-max, 0)
	b := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(b, off)
	return string(b[:n])
}

func readFileTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	return readTail(f, max)
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// forkingStart runs start, unless check says the app is up already.
func (d *Driver) forkingStart(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, errs := commandSpecOf(r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("app", errs)
	}
	dir, err := stateDir(r)
	if err != nil {
		return nil, err
	}
	if s.check != nil {
		if st := d.check(ctx, r, s, dir); st.Status == sdk.StatusUp {
			return []string{"already up (check exits 0)"}, nil
		}
	}
	res := runCommand(ctx, s.start, s.cwd, s.environ(r), s.cred, timeout(r, "start_timeout", defaultStartTimeout), filepath.Join(dir, fileBase(r.RID)+".start.out"))
	if err := commandFailed("start", res); err != nil {
		return nil, err
	}
	return res.tail(5), nil
}

// forkingStop runs stop, unless check says the app is down already.
func (d *Driver) forkingStop(ctx context.Context, r sdk.Resource) ([]string, error) {
	s, errs := commandSpecOf(r)
	if len(errs) > 0 {
		return nil, sdk.FieldErrors("app", errs)
	}
	if s.stop == nil {
		return []string{"no stop command: nothing to do"}, nil
	}
	dir, err := stateDir(r)
	if err != nil {
		return nil, err
	}
	if s.check != nil {
		if st := d.check(ctx, r, s, dir); st.Status == sdk.StatusDown {
			return []string{"already down (check exits 1)"}, nil
		}
	}
	res := runCommand(ctx, s.stop, s.cwd, s.environ(r), s.cred, timeout(r, "stop_timeout", defaultStopTimeout), filepath.Join(dir, fileBase(r.RID)+".stop.out"))
	if err := commandFailed("stop", res); err != nil {
		return nil, err
	}
	return res.tail(5), nil
}

func (d *Driver) forkingStatus(ctx context.Context, r sdk.Resource) sdk.ResourceStatus {
	s, errs := commandSpecOf(r)
	if len(errs) > 0 {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Log: []string{sdk.FieldErrors("app", errs).Error()}}
	}
	if s.check == nil {
		return sdk.ResourceStatus{Status: sdk.StatusNA, Log: []string{"no check command"}}
	}
	dir, err := stateDir(r)
	if err != nil {
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Log: []string{err.Error()}}
	}
	return d.check(ctx, r, s, dir)
}

// check runs the check command: 0 up, 1 down, anything else warn, with
// the output as the reason.
func (d *Driver) check(ctx context.Context, r sdk.Resource, s *commandSpec, dir string, extraEnv ...string) sdk.ResourceStatus {
	res := runCommand(ctx, s.check, s.cwd, s.environ(r, extraEnv...), s.cred, timeout(r, "check_timeout", defaultCheckTimeout), filepath.Join(dir, fileBase(r.RID)+".check.out"))
	label := strings.Join(s.check, " ")
	switch {
	case res.err != nil:
		return sdk.ResourceStatus{Status: sdk.StatusUndef, Log: []string{"check: " + res.err.Error()}, Label: label}
	case res.code == 0:
		return sdk.ResourceStatus{Status: sdk.StatusUp, Label: label}
	case res.code == 1:
		return sdk.ResourceStatus{Status: sdk.StatusDown, Log: res.tail(3), Label: label}
	}
	reason := append([]string{fmt.Sprintf("check exited %d", res.code)}, res.tail(3)...)
	return sdk.ResourceStatus{Status: sdk.StatusWarn, Log: reason, Label: label}
}

// commandFailed turns a failed run into the operator's error.
func commandFailed(what string, res run) error {
	if res.err != nil {
		return fmt.Errorf("%s: %w", what, res.err)
	}
	if res.code == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s exited %d", what, res.code)
	if t := res.tail(5); len(t) > 0 {
		msg += ": " + strings.Join(t, " | ")
	}
	return errors.New(msg)
}
