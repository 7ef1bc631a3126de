package stonithipmi

import (
	"context"
	"errors"
	"os"
	"regexp"
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

// A wrong password is a refused session. Over lanplus the BMC proves it
// (its RAKP 2 answer is signed with another password): no retry, one
// attempt. Over lan the BMC drops the activation, which looks like a lost
// answer, so the attempts go on until the timeout, and the refusal is
// still what is reported.
func TestFence_WrongPasswordFails(t *testing.T) {
	for _, tc := range []struct {
		iface        string
		onlyOneTried bool
	}{{"lanplus", true}, {"lan", false}} {
		t.Run(tc.iface, func(t *testing.T) {
			bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
			d, logs := newDriver(t)
			kw := bmc.Keywords(ipmisim.PasswordFile(t, "notthepassword"))
			kw[KwInterface] = tc.iface
			kw[KwTimeout] = "3s"
			_, err := d.Fence(context.Background(), "n2", kw)
			if !errors.Is(err, ErrSession) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("Fence = %v, want ErrSession only", err)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), "password_file") {
				t.Errorf("error does not say what to check: %v", err)
			}
			if n := attempts(t, err.Error()); tc.onlyOneTried != (n == 1) {
				t.Errorf("%d attempts; want one only: %v", n, tc.onlyOneTried)
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

// A privilege the BMC refuses is final too: ipmi_sim's lan channel
// refuses the administrator session go-ipmi asks for to an operator.
func TestFence_PrivilegeRefusedStopsAtOnce(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true, Privilege: "operator"})
	d, _ := newDriver(t)
	kw := bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password))
	kw[KwInterface] = "lan"
	_, err := d.Fence(context.Background(), "n2", kw)
	if !errors.Is(err, ErrSession) {
		t.Fatalf("Fence = %v, want ErrSession", err)
	}
	t.Logf("error: %v", err)
	if n := attempts(t, err.Error()); n != 1 {
		t.Errorf("%d attempts, want 1: retrying cannot change a privilege", n)
	}
	if !strings.Contains(err.Error(), "privilege") {
		t.Errorf("error does not name the privilege: %v", err)
	}
	if !bmc.PowerOn(t) {
		t.Error("the chassis went off")
	}
}

// A BMC that never answers, whether its port is closed (the kernel
// refuses at once) or its answers never come back (a silent BMC), fails as
// unreachable, after attempts that went on until the timeout.
func TestFence_NeverAnsweringBMCIsUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) (string, int)
	}{
		{"port closed", func(t *testing.T) (string, int) { return "127.0.0.1", ipmisim.FreeUDPPort(t) }},
		{"silent", func(t *testing.T) (string, int) {
			link := ipmisim.NewLink(t, ipmisim.Start(t, ipmisim.Options{PowerOn: true}), ipmisim.LossAnswers)
			return link.Host, link.Port
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newDriver(t)
			host, port := tc.addr(t)
			kw := map[string]string{
				KwHost: host, KwPort: strconv.Itoa(port), KwUser: "admin",
				KwPasswordFile: ipmisim.PasswordFile(t, "s3cret"), KwTimeout: "3s",
			}
			_, err := d.Fence(context.Background(), "n2", kw)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Fence = %v, want ErrUnreachable", err)
			}
			t.Logf("error: %v", err)
			want := "fence n2 via " + host + ":" + strconv.Itoa(port) + ": cannot reach the BMC"
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error = %q, want it to start with %q", err, want)
			}
			if n := attempts(t, err.Error()); n < 2 {
				t.Errorf("%d attempt, want the attempts to go on until the timeout", n)
			}
			if strings.Contains(err.Error(), "session refused") {
				t.Errorf("an attempt was taken for a refused session: %v", err)
			}
		})
	}
}

// A BMC that does not answer for the first 2 s of a fence (its answers
// dropped, or it drops everything, or its IPMI stack is not listening
// yet) is fenced once it answers, within the same Fence call: the power
// is off and the confirmation says it took more than one attempt.
func TestFence_BMCBackMidFenceIsFenced(t *testing.T) {
	const silence = 2 * time.Second
	for _, tc := range []struct {
		name string
		// start returns the BMC to fence through and what to do once the
		// silence is over.
		start func(t *testing.T) (bmc *ipmisim.BMC, kw func(string) map[string]string, back func())
	}{
		{"answers dropped", func(t *testing.T) (*ipmisim.BMC, func(string) map[string]string, func()) {
			bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
			link := ipmisim.NewLink(t, bmc, ipmisim.LossAnswers)
			return bmc, func(pw string) map[string]string { return link.Keywords(bmc, pw) }, func() { link.SetLoss(ipmisim.LossNone) }
		}},
		{"all dropped", func(t *testing.T) (*ipmisim.BMC, func(string) map[string]string, func()) {
			bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
			link := ipmisim.NewLink(t, bmc, ipmisim.LossAll)
			return bmc, func(pw string) map[string]string { return link.Keywords(bmc, pw) }, func() { link.SetLoss(ipmisim.LossNone) }
		}},
		{"not listening yet", func(t *testing.T) (*ipmisim.BMC, func(string) map[string]string, func()) {
			ipmisim.Require(t)
			port := ipmisim.FreeUDPPort(t)
			bmc := &ipmisim.BMC{Host: "127.0.0.1", Port: port, User: "admin", Password: "s3cret"}
			return bmc, bmc.Keywords, func() { *bmc = *ipmisim.Start(t, ipmisim.Options{PowerOn: true, Port: port}) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc, kwOf, back := tc.start(t)
			d, _ := newDriver(t)
			kw := kwOf(ipmisim.PasswordFile(t, bmc.Password))
			type result struct {
				log []string
				err error
			}
			done := make(chan result, 1)
			go func() {
				log, err := d.Fence(context.Background(), "n2", kw)
				done <- result{log, err}
			}()
			time.Sleep(silence)
			back()
			r := <-done
			if r.err != nil {
				t.Fatalf("Fence: %v", r.err)
			}
			if bmc.PowerOn(t) {
				t.Fatal("Fence returned nil but the simulated chassis is still on")
			}
			t.Logf("log: %q", r.log)
			joined := strings.Join(r.log, "\n")
			if !strings.Contains(joined, "is off (confirmed by the BMC") {
				t.Errorf("log does not report the confirmation: %q", r.log)
			}
			if n := attempts(t, joined); n < 2 {
				t.Errorf("confirmed at attempt %d, want a later one (the BMC was silent at first)", n)
			}
		})
	}
}

// A BMC that answers slowly but surely is fenced: each answer held 400 ms
// makes a fence of some ten exchanges take seconds, far beyond one
// exchange's timeout, but no exchange waits longer than it.
func TestFence_SlowBMCIsFenced(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	link := ipmisim.NewLink(t, bmc, ipmisim.LossNone)
	link.SetDelay(400 * time.Millisecond)
	d, _ := newDriver(t)
	log, err := d.Fence(context.Background(), "n2", link.Keywords(bmc, ipmisim.PasswordFile(t, bmc.Password)))
	if err != nil {
		t.Fatalf("Fence: %v", err)
	}
	if bmc.PowerOn(t) {
		t.Fatal("Fence returned nil but the simulated chassis is still on")
	}
	t.Logf("log: %q", log)
}

// attempts reads the number of attempts a Fence or PowerStatus message
// reports ("[3 attempts in" for a failure, "confirmed at attempt 3" for a
// late success; a success at the first attempt says nothing: 1).
func attempts(t *testing.T, msg string) int {
	t.Helper()
	for _, re := range []*regexp.Regexp{regexp.MustCompile(`\[(\d+) attempts? in `), regexp.MustCompile(`confirmed at attempt (\d+)`)} {
		if m := re.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	if strings.Contains(msg, "attempt") {
		t.Fatalf("cannot read the number of attempts in %q", msg)
	}
	return 1
}

func TestFence_RefusesWhenPowerStaysOn(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	bmc.Stick(t)
	d, _ := newDriver(t)
	kw := bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password))
	kw[KwTimeout] = "1s"
	_, err := d.Fence(context.Background(), "n2", kw)
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("Fence = %v, want ErrNotConfirmed", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "power still on after 1") {
		t.Errorf("error = %q, want it to say the power is still on", err)
	}
}

func TestFence_HonoursCallerCancel(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	bmc.Stick(t)
	d, _ := newDriver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := d.Fence(ctx, "n2", bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password)))
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("Fence = %v, want ErrNotConfirmed (the power stayed on)", err)
	}
	t.Logf("Fence returned %s after its start, its caller gave up at 300ms: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestPowerStatus_ReportsOnAndOff(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	d, _ := newDriver(t)
	kw := bmc.Keywords(ipmisim.PasswordFile(t, bmc.Password))
	bmc.CheckPowerStatus(t, func(ctx context.Context) (string, error) { return d.PowerStatus(ctx, "n2", kw) })
}

// PowerStatus retries as Fence does: a BMC silent for 2 s is read once it
// answers; one that never answers is unknown and unreachable.
func TestPowerStatus_RetriesUntilTheBMCAnswers(t *testing.T) {
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: true})
	link := ipmisim.NewLink(t, bmc, ipmisim.LossAnswers)
	d, _ := newDriver(t)
	kw := link.Keywords(bmc, ipmisim.PasswordFile(t, bmc.Password))
	back := time.AfterFunc(2*time.Second, func() { link.SetLoss(ipmisim.LossNone) })
	defer back.Stop()
	got, err := d.PowerStatus(context.Background(), "n2", kw)
	if err != nil || got != sdk.PowerOn {
		t.Fatalf("PowerStatus = %q, %v; want on", got, err)
	}

	link.SetLoss(ipmisim.LossAll)
	kw[KwTimeout] = "2s"
	got, err = d.PowerStatus(context.Background(), "n2", kw)
	if !errors.Is(err, ErrUnreachable) || got != sdk.PowerUnknown {
		t.Fatalf("PowerStatus = %q, %v; want unknown and ErrUnreachable", got, err)
	}
	t.Logf("error: %v", err)
	if n := attempts(t, err.Error()); n < 2 {
		t.Errorf("%d attempt, want the attempts to go on until the timeout", n)
	}
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
