package stonithipmi

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"
)

// attemptError is why one attempt at the BMC failed.
type attemptError struct {
	// kind is ErrUnreachable, ErrSession, ErrNotConfirmed, ErrConfig, or
	// nil for a request that failed in an open session before any
	// power-off was sent.
	kind error
	// hint says what to check, shown after the kind.
	hint string
	// final: the BMC refused in a way no retry cures (a wrong password
	// it proved wrong, a privilege it refused); the retries stop.
	final bool
	err   error
}

func (a *attemptError) Error() string {
	if a.kind == nil {
		return a.err.Error()
	}
	if a.hint != "" {
		return fmt.Sprintf("%v (%s): %v", a.kind, a.hint, a.err)
	}
	return fmt.Sprintf("%v: %v", a.kind, a.err)
}

// label names a kind in a count of attempts.
func label(kind error) string {
	switch kind {
	case ErrUnreachable:
		return "unreachable"
	case ErrSession:
		return "session refused"
	case ErrNotConfirmed:
		return "not confirmed"
	case ErrConfig:
		return "configuration"
	}
	return "request failed"
}

// tally counts a call's failed attempts by kind, with the last error of
// each.
type tally struct {
	attempts int
	kinds    []*kindCount // in the order first seen
	// head is the kind of the last attempt the deadline did not cut
	// short (the last attempt when all were).
	head *kindCount
}

type kindCount struct {
	kind error
	n    int
	last *attemptError
}

// add counts a. cut: the deadline cut a short; it is counted, but an
// earlier error of its kind stays the last one, and it does not make its
// kind the head unless it is the first.
func (t *tally) add(a *attemptError, cut bool) {
	var k *kindCount
	for _, c := range t.kinds {
		if c.kind == a.kind {
			k = c
		}
	}
	if k == nil {
		k = &kindCount{kind: a.kind}
		t.kinds = append(t.kinds, k)
	}
	k.n++
	if !cut || k.last == nil {
		k.last = a
	}
	if !cut || t.head == nil {
		t.head = k
	}
}

// final is the error of a call whose attempts all failed: the head kind's
// last error (not confirmed once a power-off was sent, whatever came
// after), then the count of attempts and the last error of every other
// kind. Only the head's sentinel is wrapped: one kind to branch on.
func (t *tally) final(sent bool, took time.Duration) error {
	head := t.head
	if sent {
		for _, k := range t.kinds {
			if k.kind == ErrNotConfirmed {
				head = k
			}
		}
	}
	a := head.last
	var b strings.Builder
	fmt.Fprintf(&b, "%d attempt", t.attempts)
	if t.attempts > 1 {
		b.WriteString("s")
	}
	fmt.Fprintf(&b, " in %s: %d %s", took.Round(time.Millisecond), head.n, label(head.kind))
	for _, k := range t.kinds {
		if k != head {
			fmt.Fprintf(&b, "; %d %s, the last: %v", k.n, label(k.kind), k.last)
		}
	}
	switch {
	case a.kind == nil:
		return fmt.Errorf("%w [%s]", a.err, b.String())
	case a.hint != "":
		return fmt.Errorf("%w (%s): %w [%s]", a.kind, a.hint, a.err, b.String())
	default:
		return fmt.Errorf("%w: %w [%s]", a.kind, a.err, b.String())
	}
}

// summary counts the failed attempts of a call that succeeded in the end.
func (t *tally) summary() string {
	var parts []string
	for _, k := range t.kinds {
		parts = append(parts, fmt.Sprintf("%d %s before, the last: %v", k.n, label(k.kind), k.last.err))
	}
	return strings.Join(parts, "; ")
}

// classifyConnect tells an unreachable BMC from one that refuses the
// session: the operator's next step differs (network vs credentials).
// go-ipmi does not keep its error chain through the lanplus handshake, so
// this relies on its step names: the first request of both handshakes is
// the sessionless Get Channel Authentication Capabilities; failing there
// means nobody answered. A later failure, even a timeout, is a refusal:
// an IPMI 1.5 BMC drops a request signed with the wrong password.
// TestFence_UnreachableBMC and TestFence_WrongPassword pin this against a
// go-ipmi upgrade.
//
// Only a refusal the BMC stated is final (see refusedForGood). The silent
// one of IPMI 1.5 is retried: from here a dropped Activate Session (wrong
// password) and a lost answer to it (packet loss, a BMC busy or coming
// back) look the same, and giving up on the second would turn one lost
// datagram into a failed fence and the daemon's backoff, where a wrong
// password only costs the rest of a fence that fails anyway.
func classifyConnect(s spec, err error) *attemptError {
	msg := err.Error()
	if strings.Contains(msg, "Get Channel Authentication Capabilities failed") ||
		strings.Contains(msg, "GetChannelAuthenticationCapabilities failed") {
		return &attemptError{kind: ErrUnreachable, err: err,
			hint: "check host, port, that the BMC's LAN channel is enabled and that the network lets UDP through"}
	}
	hint := "check user and password_file"
	if s.iface == client.InterfaceLanplus {
		hint += fmt.Sprintf(", and that the BMC allows cipher suite %d", s.cipher)
	}
	final := refusedForGood(err)
	if final && privilegeRefused(err) {
		// go-ipmi asks for the administrator privilege at the session's
		// start.
		hint = "the BMC refuses the administrator privilege the session asks for: give the user the admin privilege on the BMC's LAN channel"
	}
	return &attemptError{kind: ErrSession, hint: hint, final: final, err: err}
}

// requestError is a request that failed in an open session. Only a
// privilege the BMC refused is final.
func requestError(err error) *attemptError {
	rerr, ok := types.IsResponseError(err)
	return &attemptError{err: err, final: ok && rerr.CompletionCode() == types.CodeInsufficientPrivilege}
}

// finalRmcpStatus are the RMCP+ session statuses a retry cannot change:
// the user, its password (the BMC's check of RAKP 3), its role, the
// cipher suite. Not among them: no free session slot, an unknown or
// inactive session ID (a session lost, or cut short by a lost answer).
var finalRmcpStatus = []types.RmcpStatusCode{
	types.RmcpStatusCodeInvalidAuthAlg,
	types.RmcpStatusCodeInvalidIntegrityAlg,
	types.RmcpStatusCodeInvalidRole,
	types.RmcpStatusCodeUnauthorizedRoleOfPriLevel,
	types.RmcpStatusCodeInvalidNameLength,
	types.RmcpStatusCodeUnauthorizedName,
	types.RmcpStatusCodeUnauthorizedGUID,
	types.RmcpStatusCodeInvalidIntegrityCheckValue,
	types.RmcpStatusCodeInvalidConfidentAlg,
	types.RmcpStatusCodeNoCipherSuiteMatch,
}

// refusedForGood reports whether a failed handshake is a refusal the BMC
// stated and a retry cannot cure: the RAKP 2 answer signed with another
// password than ours (go-ipmi checks it: lanplus' wrong password), a final
// RMCP+ status, or a completion code refusing the user or its privilege.
// Each attempt has a socket of its own and no step is resent, so no stale
// answer from an earlier exchange can be behind any of these.
func refusedForGood(err error) bool {
	msg := err.Error()
	if errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(msg, client.ErrRAKPAuthentication.Error()) {
		return true
	}
	for _, code := range finalRmcpStatus {
		// go-ipmi joins the lanplus handshake's errors with %v: its own
		// wording is what is left to match.
		if strings.Contains(msg, types.NewRmcpStatusError(code).Error()) {
			return true
		}
	}
	return privilegeRefused(err)
}

// privilegeRefused reports a completion code that refuses the user or its
// privilege. Completion codes 80h-BEh mean something else for each
// command, hence the step's name beside the code.
func privilegeRefused(err error) bool {
	rerr, ok := types.IsResponseError(err)
	if !ok {
		return false
	}
	cc, msg := rerr.CompletionCode(), err.Error()
	switch {
	case cc == types.CodeInsufficientPrivilege:
		return true
	case strings.Contains(msg, "SetSessionPrivilegeLevel"):
		// 80h: level not available for this user; 81h: above the
		// channel's or the user's limit.
		return cc == 0x80 || cc == 0x81
	case strings.Contains(msg, "GetSessionChallenge failed"):
		// 81h: invalid user name; 82h: null user not enabled.
		return cc == 0x81 || cc == 0x82
	case strings.Contains(msg, "ActivateSession failed"):
		// 86h: requested maximum privilege above the limit.
		return cc == 0x86
	}
	return false
}

// flat keeps a go-ipmi error on one line: it joins the errors of each
// cipher suite tried with line breaks, and the message ends up in a status
// line and a log line.
type flat struct{ err error }

func (f flat) Error() string { return strings.Join(strings.Fields(f.err.Error()), " ") }
func (f flat) Unwrap() error { return f.err }
