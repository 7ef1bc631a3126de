package stonithipmi

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
	"github.com/vigil-ha/vigil/plugins/stonith-ipmi/ipmisim"
)

// These tests run against OpenIPMI's ipmi_sim, a real BMC over UDP, not a
// model: the go-ipmi handshake, cipher suite 3 and the chassis commands are
// the ones a real BMC sees.

func newDriver(t *testing.T) (*Driver, *ipmisim.LogBuffer) {
	t.Helper()
	logs := &ipmisim.LogBuffer{}
	d := New(Config{
		PollInterval: 50 * time.Millisecond,
		Logger:       hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace}),
	})
	return d, logs
}

func TestFence_PowersOffAndConfirms(t *testing.T) {
	for _, iface := range []string{"lanplus", "lan"} {
		t.Run(iface, func(t *testing.T) {
			bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
			d, logs := newDriver(t)
			kw := bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password))
			kw[KwInterface] = iface

			start := time.Now()
			log, err := d.Fence(context.Background(), "n2", kw)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Fence: %v", err)
			}
			if bmc.PowerOn(t) {
				t.Fatal("Fence returned nil but the simulated chassis is still on")
			}
			if len(log) == 0 || !strings.Contains(log[len(log)-1], "confirmed") {
				t.Errorf("log does not report the confirmation: %q", log)
			}
			t.Logf("fence over %s took %s: %q", iface, took, log)
			if strings.Contains(logs.String(), bmc.Password) {
				t.Errorf("the password appears in the logs:\n%s", logs)
			}
		})
	}
}

func TestFence_AlreadyOffIsConfirmed(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: false})
	d, _ := newDriver(t)
	log, err := d.Fence(context.Background(), "n2", bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password)))
	if err != nil {
		t.Fatalf("Fence: %v", err)
	}
	if len(log) != 1 || !strings.Contains(log[0], "already off") {
		t.Errorf("log = %q, want one line saying the node is already off", log)
	}
}

func TestFence_WrongPasswordFails(t *testing.T) {
	for _, iface := range []string{"lanplus", "lan"} {
		t.Run(iface, func(t *testing.T) {
			bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
			d, logs := newDriver(t)
			kw := bmc.Keywords(ipmisim.PasswordFile(t, "notthepassword"))
			kw[KwInterface] = iface
			_, err := d.Fence(context.Background(), "n2", kw)
			if !errors.Is(err, ErrSession) {
				t.Fatalf("Fence = %v, want ErrSession", err)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), "password_file") {
				t.Errorf("error does not say what to check: %v", err)
			}
			if !bmc.PowerOn(t) {
				t.Error("the chassis went off with a wrong password")
			}
			if strings.Contains(err.Error()+logs.String(), "notthepassword") {
				t.Errorf("the password appears in the error or logs: %v\n%s", err, logs)
			}
		})
	}
}

func TestFence_UnreachableBMCFailsWithinTimeout(t *testing.T) {
	d, _ := newDriver(t)
	port := ipmisim.FreeUDPPort(t)
	kw := map[string]string{
		KwHost: "127.0.0.1", KwPort: strconv.Itoa(port), KwUser: "admin",
		KwPasswordFile: ipmisim.PasswordFile(t, "s3cret"), KwTimeout: "3s",
	}
	start := time.Now()
	_, err := d.Fence(context.Background(), "n2", kw)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Fence = %v, want ErrUnreachable", err)
	}
	t.Logf("error: %v", err)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Fence took %s with a 3s timeout", took)
	}
	want := "fence n2 via 127.0.0.1:" + strconv.Itoa(port) + ": cannot reach the BMC"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want it to start with %q", err, want)
	}
}

func TestFence_RefusesWhenPowerStaysOn(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	bmc.Stick(t)
	d, _ := newDriver(t)
	kw := bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password))
	kw[KwTimeout] = "1s"
	start := time.Now()
	_, err := d.Fence(context.Background(), "n2", kw)
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("Fence = %v, want ErrNotConfirmed", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "power still on after 1") {
		t.Errorf("error = %q, want it to say the power is still on", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Fence took %s with a 1s timeout", took)
	}
}

func TestFence_HonoursCallerCancel(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	bmc.Stick(t)
	d, _ := newDriver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := d.Fence(ctx, "n2", bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password))); err == nil {
		t.Fatal("Fence succeeded while the power stayed on")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Fence took %s after its caller gave up at 300ms", took)
	}
}

func TestPowerStatus_ReportsOnAndOff(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	d, _ := newDriver(t)
	kw := bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password))
	bmc.CheckPowerStatus(t, func(ctx context.Context) (string, error) { return d.PowerStatus(ctx, "n2", kw) })
}

func TestPowerStatus_WrongPasswordIsUnknown(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	d, _ := newDriver(t)
	got, err := d.PowerStatus(context.Background(), "n2", bmc.Keywords(ipmisim.PasswordFile(t, "nope")))
	if err == nil || got != sdk.PowerUnknown {
		t.Fatalf("PowerStatus = %q, %v; want unknown and an error", got, err)
	}
}

func TestParseSpec(t *testing.T) {
	base := func() map[string]string {
		return map[string]string{KwHost: "10.0.0.2", KwUser: "admin", KwPasswordFile: "/etc/vigil/bmc.pass"}
	}
	t.Run("defaults", func(t *testing.T) {
		s, err := parseSpec(base())
		if err != nil {
			t.Fatal(err)
		}
		if s.port != DefaultPort || s.cipher != DefaultCipher || s.iface != "lanplus" || s.timeout != DefaultTimeout {
			t.Errorf("defaults not applied: %+v", s)
		}
		if s.bmc() != "10.0.0.2:623" {
			t.Errorf("bmc() = %q", s.bmc())
		}
	})
	for _, tc := range []struct {
		name, kw, value, want string
	}{
		{"missing host", KwHost, "", "host: required"},
		{"missing user", KwUser, "", "user: required"},
		{"missing password file", KwPasswordFile, "", "password_file: required"},
		{"bad port", KwPort, "70000", "port:"},
		{"bad cipher", KwCipher, "99", "cipher:"},
		{"bad interface", KwInterface, "serial", "interface:"},
		{"bad timeout", KwTimeout, "soon", "timeout:"},
		{"zero timeout", KwTimeout, "0", "timeout:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kw := base()
			kw[tc.kw] = tc.value
			_, err := parseSpec(kw)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseSpec = %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFence_MissingPasswordFileIsAConfigError(t *testing.T) {
	d, _ := newDriver(t)
	kw := map[string]string{KwHost: "127.0.0.1", KwUser: "admin", KwPasswordFile: t.TempDir() + "/none"}
	if _, err := d.Fence(context.Background(), "n2", kw); !errors.Is(err, ErrConfig) {
		t.Fatalf("Fence = %v, want ErrConfig", err)
	}
}

func TestFence_RefusesAPasswordFileOthersCanRead(t *testing.T) {
	d, _ := newDriver(t)
	pw := ipmisim.PasswordFile(t, "s3cret")
	if err := os.Chmod(pw, 0o640); err != nil {
		t.Fatal(err)
	}
	kw := map[string]string{KwHost: "127.0.0.1", KwPort: strconv.Itoa(ipmisim.FreeUDPPort(t)), KwUser: "admin", KwPasswordFile: pw, KwTimeout: "2s"}
	_, err := d.Fence(context.Background(), "n2", kw)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "mode 0640") || !strings.Contains(err.Error(), "chmod 600 "+pw) {
		t.Fatalf("Fence = %v, want ErrConfig naming the mode and the fix", err)
	}
}
