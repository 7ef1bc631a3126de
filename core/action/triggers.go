package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/plugins/sdk/value"
)

// triggerTimeout bounds one trigger: a blocking trigger that hangs must
// not hold a failover for ever.
const triggerTimeout = 2 * time.Minute

// serviceTriggerRID is the Step.RID of a service's own triggers.
const serviceTriggerRID = "DEFAULT"

// runTriggers runs the triggers of one phase ("pre" or "post") of verb
// (start, stop, rollback) set in kw, the keywords of the service (rid
// "") or of resource rid. The error is a blocking trigger's failure,
// which aborts the action; other failures are logged and reported as
// steps. A rollback is never blocked: it undoes a failed start. A service's
// triggers run around whole-service actions only, not around a restart of
// some of its resources (opts.RIDs).
func (e *Engine) runTriggers(ctx context.Context, svc *config.Service, rid string, kw map[string]string, verb, phase string, opts Options) error {
	action := verb
	if verb == "rollback" {
		action = "stop"
	}
	names := []string{phase + "_" + action}
	if phase == "pre" {
		names = append(names, "blocking_pre_"+action)
	}
	for _, name := range names {
		cmdline := strings.TrimSpace(kw[name])
		if cmdline == "" {
			continue
		}
		blocking := strings.HasPrefix(name, "blocking_") && verb != "rollback"
		stepRID := rid
		if stepRID == "" {
			stepRID = serviceTriggerRID
		}
		begin := time.Now()
		log, err := runTrigger(ctx, svc.Name, rid, action, cmdline)
		step := Step{Service: svc.Name, RID: stepRID, Action: name, Phase: "done", Log: log, Elapsed: time.Since(begin)}
		if err == nil {
			e.progress(opts, step)
			continue
		}
		step.Phase, step.Err = "failed", err
		e.progress(opts, step)
		if blocking {
			return fmt.Errorf("%s: %w; the %s is aborted", name, err, action)
		}
		e.log.Warn("trigger failed; going on", "service", svc.Name, "rid", stepRID, "trigger", name, "error", err)
	}
	return nil
}

// runTrigger runs one trigger command in its own session (a timeout kills
// all it started), with the service, resource and action in its
// environment, and returns its output's last lines.
func runTrigger(ctx context.Context, svc, rid, action, cmdline string) ([]string, error) {
	argv, err := value.SplitWords(cmdline)
	if err != nil || len(argv) == 0 {
		return nil, fmt.Errorf("trigger %q: %v", cmdline, err)
	}
	ctx, cancel := context.WithTimeout(ctx, triggerTimeout)
	defer cancel()
	// A file, not a pipe: a daemon the trigger leaves behind keeps its
	// output open, and a pipe would never end.
	out, err := os.CreateTemp("", "vigil-trigger-")
	if err != nil {
		return nil, fmt.Errorf("trigger output: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root",
		"VIGIL_SVCNAME=" + svc, "VIGIL_RID=" + rid, "VIGIL_ACTION=" + action,
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	b, _ := os.ReadFile(out.Name())
	log := lastLines(string(b), 5)
	var exit *exec.ExitError
	switch {
	case runErr == nil:
		return log, nil
	case ctx.Err() != nil:
		return log, fmt.Errorf("%s did not finish within %s: killed", argv[0], triggerTimeout)
	case errors.As(runErr, &exit):
		msg := fmt.Sprintf("%s exited %d", argv[0], exit.ExitCode())
		if len(log) > 0 {
			msg += ": " + strings.Join(log, " | ")
		}
		return log, errors.New(msg)
	}
	return log, fmt.Errorf("run trigger %s: %w", argv[0], runErr)
}

func lastLines(s string, n int) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// serviceTriggers runs the service's own triggers of a phase, around a
// whole-service action.
func (e *Engine) serviceTriggers(ctx context.Context, svc *config.Service, verb, phase string, opts Options) error {
	if len(opts.RIDs) > 0 {
		return nil
	}
	if err := e.runTriggers(ctx, svc, "", svc.Keywords, verb, phase, opts); err != nil {
		return &ResourceError{Service: svc.Name, RID: serviceTriggerRID, Action: verb, Err: err}
	}
	return nil
}
