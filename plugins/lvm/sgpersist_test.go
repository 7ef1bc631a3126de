package lvm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Samples in the format of sg3-utils' sg_persist.c (the printf formats of
// the PRIN decoder; the man page gives no output examples), as printed
// with and without --no-inquiry.
const (
	sampleKeysTwo = `  LIO-ORG   disk1             4.0 
  Peripheral device type: disk
  PR generation=0x3, 2 registered reservation keys follow:
    0x2e52cd19dc60030b
    0xb2
`
	sampleKeysOne  = "  PR generation=0x1, 1 registered reservation key follows:\n    0xa1\n"
	sampleKeysNone = "  PR generation=0x0, there are NO registered reservation keys\n"
	sampleResHeld  = `  LIO-ORG   disk1             4.0 
  Peripheral device type: disk
  PR generation=0x6c, Reservation follows:
    Key=0xea1b2a62b1dd8f34
    scope: LU_SCOPE,  type: Write Exclusive, registrants only
`
	sampleResAllRegs = "  PR generation=0x2, Reservation follows:\n    Key=0x0\n    scope: LU_SCOPE,  type: Exclusive Access, all registrants\n"
	sampleResNone    = "  PR generation=0x6c, there is NO reservation held\n"
)

func TestParseReadKeys(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    prKeys
		wantErr string
	}{
		{name: "two keys after an inquiry header", out: sampleKeysTwo, want: prKeys{Generation: 3, Keys: []uint64{0x2e52cd19dc60030b, 0xb2}}},
		{name: "one key", out: sampleKeysOne, want: prKeys{Generation: 1, Keys: []uint64{0xa1}}},
		{name: "none", out: sampleKeysNone, want: prKeys{Generation: 0}},
		{name: "fewer keys than announced", out: "  PR generation=0x3, 2 registered reservation keys follow:\n    0x1\n", wantErr: "2 keys announced, 1 listed"},
		{name: "a key line that is not a key", out: "  PR generation=0x3, 1 registered reservation key follows:\n    oops\n", wantErr: "unexpected key line"},
		{name: "no generation line", out: "PR in (Read keys): command not supported\n", wantErr: "no \"PR generation\" line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReadKeys([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Generation != tt.want.Generation || !slices.Equal(got.Keys, tt.want.Keys) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseReadReservation(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    prReservation
		wantErr string
	}{
		{name: "held, after an inquiry header", out: sampleResHeld,
			want: prReservation{Generation: 0x6c, Held: true, Key: 0xea1b2a62b1dd8f34, Type: prWriteExclusiveRegistrantsOnly}},
		{name: "all registrants", out: sampleResAllRegs, want: prReservation{Generation: 2, Held: true, Type: prExclusiveAccessAllRegistrants}},
		{name: "none", out: sampleResNone, want: prReservation{Generation: 0x6c}},
		{name: "obsolete type", out: "  PR generation=0x1, Reservation follows:\n    Key=0x1\n    scope: LU_SCOPE,  type: obsolete [0]\n", wantErr: "unknown reservation type"},
		{name: "truncated", out: "  PR generation=0x1, Reservation follows:\n    Key=0x1\n", wantErr: "not listed"},
		{name: "no generation line", out: "", wantErr: "no \"PR generation\" line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReadReservation([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSgError_MapsExitStatuses(t *testing.T) {
	tests := []struct {
		code int
		is   error
		says string
	}{
		{24, ErrReservationConflict, "reservation conflict"},
		{5, ErrIllegalRequest, "illegal request"},
		{9, ErrPRNotSupported, "set scsireserv = false"},
		{50 + 25, ErrPRNotSupported, "does not take SCSI commands"}, // ENOTTY: a regular file
		{50 + 22, ErrPRNotSupported, "does not take SCSI commands"}, // EINVAL: a loop device
		{50 + 2, nil, "no such file or directory"},
		{15, nil, "cannot open /dev/sdx"},
		{33, nil, "sg_decode_sense --err=33"},
	}
	for _, tt := range tests {
		err := sgError("sg_persist x", "/dev/sdx", tt.code, "msg")
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("exit %d: %v, want %v", tt.code, err, tt.is)
		}
		if !strings.Contains(err.Error(), tt.says) {
			t.Errorf("exit %d: %q does not say %q", tt.code, err, tt.says)
		}
	}
	var ua unitAttention
	if !errors.As(sgError("x", "d", 6, ""), &ua) {
		t.Error("exit 6 is not a unit attention")
	}
}

var (
	cdbRE   = regexp.MustCompile(`Persistent reservation (in|out) cdb: \[([0-9a-f ]+)\]`)
	paramRE = regexp.MustCompile(`(?m)^ 00\s+((?:[0-9a-f]{2}\s+){16})`)
)

// TestSgPersist_RealBinaryBuildsTheRightCommands runs the real sg_persist
// with -vv, which prints the CDB and the PROUT parameter list before it
// sends them, against a regular file (which then refuses SG_IO): it checks
// that the flags the driver passes mean the SPC-4 service actions, type
// and keys intended.
func TestSgPersist_RealBinaryBuildsTheRightCommands(t *testing.T) {
	bin, err := exec.LookPath("sg_persist")
	if err != nil {
		t.Skip("needs sg_persist (sg3-utils)")
	}
	dev := filepath.Join(t.TempDir(), "lun")
	if err := os.WriteFile(dev, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sgPersist{cmd: bin, dev: dev}
	const key, victim uint64 = 0x2e52cd19dc60030b, 0xb2
	tests := []struct {
		name     string
		args     []string
		dir      string
		sa, typ  byte
		rk, sark uint64
	}{
		{"read keys", s.inArgs("--read-keys"), "in", 0, 0, 0, 0},
		{"read reservation", s.inArgs("--read-reservation"), "in", 1, 0, 0, 0},
		{"register and ignore existing key", s.registerArgs(key), "out", 6, 0, 0, key},
		{"reserve", s.reserveArgs(key, reservationType), "out", 1, 5, key, 0},
		{"release", s.releaseArgs(key, reservationType), "out", 2, 5, key, 0},
		{"preempt and abort", s.preemptArgs(key, victim, reservationType), "out", 5, 5, key, victim},
		{"unregister", s.unregisterArgs(key), "out", 0, 0, key, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c := exec.CommandContext(context.Background(), bin, append(tt.args, "-vv")...)
			c.Stderr = &stderr
			if err := c.Run(); err == nil {
				t.Fatal("sg_persist succeeded on a regular file")
			}
			m := cdbRE.FindStringSubmatch(stderr.String())
			if m == nil || m[1] != tt.dir {
				t.Fatalf("no PR %s CDB in %q", tt.dir, stderr.String())
			}
			cdb := hexBytes(t, m[2])
			if sa := cdb[1] & 0x1f; sa != tt.sa {
				t.Errorf("service action %d, want %d", sa, tt.sa)
			}
			if tt.dir == "in" {
				return
			}
			if typ := cdb[2] & 0x0f; typ != tt.typ {
				t.Errorf("type %d, want %d", typ, tt.typ)
			}
			p := paramRE.FindStringSubmatch(stderr.String())
			if p == nil {
				t.Fatalf("no parameter list in %q", stderr.String())
			}
			params := hexBytes(t, p[1])
			rk, sark := beUint64(params[0:8]), beUint64(params[8:16])
			if rk != tt.rk || sark != tt.sark {
				t.Errorf("parameters rk %s sark %s, want %s %s", fmtKey(rk), fmtKey(sark), fmtKey(tt.rk), fmtKey(tt.sark))
			}
		})
	}
	// And what the driver makes of the failure.
	if _, err := s.ReadKeys(context.Background()); !errors.Is(err, ErrPRNotSupported) {
		t.Errorf("read keys on a regular file: %v, want ErrPRNotSupported", err)
	}
}

func TestSgPersist_MissingBinarySaysWhatToInstall(t *testing.T) {
	s := &sgPersist{cmd: filepath.Join(t.TempDir(), "sg_persist"), dev: "/dev/sdx"}
	if _, err := s.ReadReservation(context.Background()); err == nil || !strings.Contains(err.Error(), "install sg3-utils") {
		t.Errorf("err = %v, want an install hint", err)
	}
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	for _, f := range strings.Fields(s) {
		v, err := strconv.ParseUint(f, 16, 8)
		if err != nil {
			t.Fatalf("hex byte %q: %v", f, err)
		}
		b = append(b, byte(v))
	}
	return b
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}
