package lvm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// sgPersist is a prDevice driven by sg_persist from sg3-utils, the tool
// every Linux distribution ships for this. Each call is one sg_persist
// run with --no-inquiry, so that the output is only the PR answer.
type sgPersist struct {
	cmd string // the sg_persist binary
	dev string
}

var _ prDevice = (*sgPersist)(nil)

// ReadKeys runs sg_persist --in --read-keys.
func (s *sgPersist) ReadKeys(ctx context.Context) (prKeys, error) {
	out, err := s.run(ctx, s.inArgs("--read-keys"))
	if err != nil {
		return prKeys{}, err
	}
	keys, err := parseReadKeys(out)
	if err != nil {
		return prKeys{}, fmt.Errorf("sg_persist --read-keys %s: %w", s.dev, err)
	}
	return keys, nil
}

// ReadReservation runs sg_persist --in --read-reservation.
func (s *sgPersist) ReadReservation(ctx context.Context) (prReservation, error) {
	out, err := s.run(ctx, s.inArgs("--read-reservation"))
	if err != nil {
		return prReservation{}, err
	}
	res, err := parseReadReservation(out)
	if err != nil {
		return prReservation{}, fmt.Errorf("sg_persist --read-reservation %s: %w", s.dev, err)
	}
	return res, nil
}

// Register runs sg_persist --out --register-ignore --param-sark=KEY.
func (s *sgPersist) Register(ctx context.Context, key uint64) error {
	_, err := s.run(ctx, s.registerArgs(key))
	return err
}

// Reserve runs sg_persist --out --reserve --param-rk=KEY --prout-type=T.
func (s *sgPersist) Reserve(ctx context.Context, key uint64, t prType) error {
	_, err := s.run(ctx, s.reserveArgs(key, t))
	return err
}

// Preempt runs sg_persist --out --preempt-abort --param-rk=KEY
// --param-sark=VICTIM --prout-type=T.
func (s *sgPersist) Preempt(ctx context.Context, key, victim uint64, t prType) error {
	_, err := s.run(ctx, s.preemptArgs(key, victim, t))
	return err
}

// Release runs sg_persist --out --release --param-rk=KEY --prout-type=T.
func (s *sgPersist) Release(ctx context.Context, key uint64, t prType) error {
	_, err := s.run(ctx, s.releaseArgs(key, t))
	return err
}

// Unregister runs sg_persist --out --register --param-rk=KEY (the new key,
// --param-sark, defaults to 0), the unregistration the man page documents.
func (s *sgPersist) Unregister(ctx context.Context, key uint64) error {
	_, err := s.run(ctx, s.unregisterArgs(key))
	return err
}

func (s *sgPersist) inArgs(sa string) []string {
	return []string{"--no-inquiry", "--in", sa, "--device=" + s.dev}
}

func (s *sgPersist) outArgs(sa string, params ...string) []string {
	args := append([]string{"--no-inquiry", "--out", sa}, params...)
	return append(args, "--device="+s.dev)
}

func (s *sgPersist) registerArgs(key uint64) []string {
	return s.outArgs("--register-ignore", "--param-sark="+fmtKey(key))
}

func (s *sgPersist) reserveArgs(key uint64, t prType) []string {
	return s.outArgs("--reserve", "--param-rk="+fmtKey(key), typeArg(t))
}

func (s *sgPersist) preemptArgs(key, victim uint64, t prType) []string {
	return s.outArgs("--preempt-abort", "--param-rk="+fmtKey(key), "--param-sark="+fmtKey(victim), typeArg(t))
}

func (s *sgPersist) releaseArgs(key uint64, t prType) []string {
	return s.outArgs("--release", "--param-rk="+fmtKey(key), typeArg(t))
}

func (s *sgPersist) unregisterArgs(key uint64) []string {
	return s.outArgs("--register", "--param-rk="+fmtKey(key))
}

func typeArg(t prType) string { return "--prout-type=" + strconv.Itoa(int(t)) }

// sg3-utils exit statuses (sg3_utils(8), "EXIT STATUS").
const (
	sgExitIllegalRequest = 5
	sgExitUnitAttention  = 6
	sgExitInvalidOp      = 9
	sgExitCannotOpen     = 15
	sgExitResConflict    = 24
	sgExitOSBase         = 50 // 50 + errno
)

// sgAttempts bounds the retries on UNIT ATTENTION: a device reports one
// once after a reset or a preemption, without running the command.
const sgAttempts = 3

func (s *sgPersist) run(ctx context.Context, args []string) ([]byte, error) {
	var err error
	for range sgAttempts {
		var out []byte
		out, err = s.runOnce(ctx, args)
		var ua unitAttention
		if !errors.As(err, &ua) {
			return out, err
		}
	}
	return nil, err
}

// unitAttention marks an sg_persist run the device did not execute.
type unitAttention struct{ error }

func (e unitAttention) Unwrap() error { return e.error }

func (s *sgPersist) runOnce(ctx context.Context, args []string) ([]byte, error) {
	c := exec.CommandContext(ctx, s.cmd, args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	cmdline := "sg_persist " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %w", cmdline, ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return nil, sgError(cmdline, s.dev, ee.ExitCode(), oneLine(strings.TrimSpace(stderr.String())))
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w; install sg3-utils (apt install sg3-utils)", cmdline, err)
	default:
		return nil, fmt.Errorf("%s: %w", cmdline, err)
	}
}

// sgError turns an sg_persist exit status into an error that says what
// it means and, where it can, what to do.
func sgError(cmdline, dev string, code int, msg string) error {
	switch code {
	case sgExitResConflict:
		return fmt.Errorf("%s: %w (%s)", cmdline, ErrReservationConflict, msg)
	case sgExitIllegalRequest:
		return fmt.Errorf("%s: %w (%s)", cmdline, ErrIllegalRequest, msg)
	case sgExitInvalidOp:
		return fmt.Errorf("%s: %w: %s does not know PERSISTENT RESERVE; set scsireserv = false for this vg (%s)", cmdline, ErrPRNotSupported, dev, msg)
	case sgExitUnitAttention:
		return unitAttention{fmt.Errorf("%s: unit attention, the command was not run (%s)", cmdline, msg)}
	case sgExitCannotOpen:
		return fmt.Errorf("%s: cannot open %s: %s", cmdline, dev, msg)
	}
	if code > sgExitOSBase && code < 100 {
		switch errno := syscall.Errno(code - sgExitOSBase); errno {
		case syscall.EINVAL, syscall.ENOTTY, syscall.EOPNOTSUPP:
			// SG_IO refused: a loop, md or virtio-blk device, say.
			return fmt.Errorf("%s: %w: %s does not take SCSI commands (%v); use a SCSI, iSCSI or FC disk, or set scsireserv = false", cmdline, ErrPRNotSupported, dev, errno)
		default:
			return fmt.Errorf("%s: %v (%s)", cmdline, errno, msg)
		}
	}
	return fmt.Errorf("%s: exit status %d (%s); `sg_decode_sense --err=%d` explains it", cmdline, code, msg, code)
}

var (
	prGenRE   = regexp.MustCompile(`PR generation=0x([0-9a-fA-F]+),\s*(.*)$`)
	nKeysRE   = regexp.MustCompile(`^(\d+) registered reservation keys? follows?:$`)
	keyLineRE = regexp.MustCompile(`^0x([0-9a-fA-F]{1,16})$`)
	resKeyRE  = regexp.MustCompile(`^Key\s*=\s*0x([0-9a-fA-F]{1,16})$`)
	resTypeRE = regexp.MustCompile(`type\s*[:=]\s*(.+)$`)
)

// parseReadKeys reads `sg_persist --in --read-keys` output:
//
//	PR generation=0x3, 2 registered reservation keys follow:
//	  0x123abc
//	  0x456def
//
// or "  PR generation=0x0, there are NO registered reservation keys". An
// inquiry header before it (without --no-inquiry) is skipped.
func parseReadKeys(out []byte) (prKeys, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := prGenRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		gen, err := parseGeneration(m[1])
		if err != nil {
			return prKeys{}, err
		}
		keys := prKeys{Generation: gen}
		rest := strings.TrimSpace(m[2])
		if strings.Contains(rest, "NO registered reservation keys") {
			return keys, nil
		}
		n := nKeysRE.FindStringSubmatch(rest)
		if n == nil {
			return prKeys{}, fmt.Errorf("unexpected output %q", sc.Text())
		}
		want, _ := strconv.Atoi(n[1])
		for len(keys.Keys) < want && sc.Scan() {
			k := keyLineRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
			if k == nil {
				return prKeys{}, fmt.Errorf("unexpected key line %q", sc.Text())
			}
			v, _ := strconv.ParseUint(k[1], 16, 64)
			keys.Keys = append(keys.Keys, v)
		}
		if len(keys.Keys) != want {
			return prKeys{}, fmt.Errorf("%d keys announced, %d listed", want, len(keys.Keys))
		}
		return keys, nil
	}
	return prKeys{}, fmt.Errorf("no \"PR generation\" line in %q", oneLine(string(out)))
}

// parseReadReservation reads `sg_persist --in --read-reservation` output:
//
//	PR generation=0x3, Reservation follows:
//	  Key=0x123abc
//	  scope: LU_SCOPE,  type: Write Exclusive, registrants only
//
// or "  PR generation=0x3, there is NO reservation held".
func parseReadReservation(out []byte) (prReservation, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	for i, line := range lines {
		m := prGenRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		gen, err := parseGeneration(m[1])
		if err != nil {
			return prReservation{}, err
		}
		res := prReservation{Generation: gen}
		rest := strings.TrimSpace(m[2])
		if strings.Contains(rest, "NO reservation held") {
			return res, nil
		}
		if !strings.HasPrefix(rest, "Reservation follows") {
			return prReservation{}, fmt.Errorf("unexpected output %q", line)
		}
		if i+2 >= len(lines) {
			return prReservation{}, errors.New("reservation announced but not listed")
		}
		k := resKeyRE.FindStringSubmatch(strings.TrimSpace(lines[i+1]))
		if k == nil {
			return prReservation{}, fmt.Errorf("unexpected key line %q", lines[i+1])
		}
		res.Key, _ = strconv.ParseUint(k[1], 16, 64)
		t := resTypeRE.FindStringSubmatch(strings.TrimSpace(lines[i+2]))
		if t == nil {
			return prReservation{}, fmt.Errorf("unexpected scope/type line %q", lines[i+2])
		}
		name := strings.TrimSpace(t[1])
		for code, n := range prTypeNames {
			if strings.EqualFold(n, name) {
				res.Type = code
			}
		}
		if res.Type == 0 {
			return prReservation{}, fmt.Errorf("unknown reservation type %q", name)
		}
		res.Held = true
		return res, nil
	}
	return prReservation{}, fmt.Errorf("no \"PR generation\" line in %q", oneLine(string(out)))
}

func parseGeneration(h string) (uint32, error) {
	g, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("PR generation 0x%s: %w", h, err)
	}
	return uint32(g), nil
}
