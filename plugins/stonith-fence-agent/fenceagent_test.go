package fenceagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/stonith-ipmi/ipmisim"
)

// The fence_ipmilan tests run Debian's agent, unchanged, against OpenIPMI's
// ipmi_sim (a real BMC over UDP). A few protocol tests use fence_model, a
// shell script standing in for an agent, named as the model it is: they
// check what vigil hands an agent and how it reads odd answers, which no
// real agent can be made to give on demand.

func newDriver(t *testing.T, agentDirs ...string) (*Driver, *ipmisim.LogBuffer) {
	t.Helper()
	logs := &ipmisim.LogBuffer{}
	if agentDirs == nil {
		agentDirs = []string{"/usr/sbin"}
	}
	d := New(Config{
		AgentDirs:    agentDirs,
		PollInterval: 100 * time.Millisecond,
		Logger:       hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace}),
	})
	return d, logs
}

// ipmilan starts a BMC and returns the section that fences it with
// fence_ipmilan, skipping when the agent is not installed.
func ipmilan(t *testing.T, powerOn bool, password string) (*ipmisim.BMC, map[string]string) {
	t.Helper()
	if _, err := New(Config{}).resolve("fence_ipmilan"); err != nil {
		t.Skip("fence_ipmilan not installed (Debian: apt-get install fence-agents)")
	}
	bmc := ipmisim.Start(t, ipmisim.Options{PowerOn: powerOn})
	if password == "" {
		password = bmc.Password
	}
	return bmc, map[string]string{
		KwAgent:        "fence_ipmilan",
		KwOptions:      fmt.Sprintf("ip=%s ipport=%d username=%s lanplus=1 cipher=3", bmc.Host, bmc.Port, bmc.User),
		KwPasswordFile: ipmisim.PasswordFile(t, password),
	}
}

func TestFence_IPMILanPowersOffAndConfirms(t *testing.T) {
	bmc, kw := ipmilan(t, true, "")
	d, logs := newDriver(t)
	start := time.Now()
	log, err := d.Fence(context.Background(), "n2", kw)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Fence: %v", err)
	}
	if bmc.PowerOn(t) {
		t.Fatal("Fence returned nil but the simulated chassis is still on")
	}
	if len(log) != 2 || !strings.Contains(log[0], "Powered OFF") || !strings.Contains(log[1], "confirmed") {
		t.Errorf("log = %q, want the agent's off and the confirmation", log)
	}
	t.Logf("fence with fence_ipmilan took %s: %q", took, log)
	if strings.Contains(logs.String(), bmc.Password) {
		t.Errorf("the password appears in the logs:\n%s", logs)
	}
}

func TestFence_IPMILanAlreadyOffIsConfirmed(t *testing.T) {
	_, kw := ipmilan(t, false, "")
	d, _ := newDriver(t)
	log, err := d.Fence(context.Background(), "n2", kw)
	if err != nil {
		t.Fatalf("Fence: %v", err)
	}
	if !strings.Contains(log[0], "Already OFF") {
		t.Errorf("log = %q, want the agent's \"Already OFF\"", log)
	}
}

func TestFence_IPMILanWrongPasswordFails(t *testing.T) {
	bmc, kw := ipmilan(t, true, "notthepassword")
	d, logs := newDriver(t)
	_, err := d.Fence(context.Background(), "n2", kw)
	if !errors.Is(err, ErrAgentFailed) {
		t.Fatalf("Fence = %v, want ErrAgentFailed", err)
	}
	t.Logf("error: %v", err)
	if !bmc.PowerOn(t) {
		t.Error("the chassis went off with a wrong password")
	}
	if strings.Contains(err.Error()+logs.String(), "notthepassword") {
		t.Errorf("the password appears in the error or logs: %v\n%s", err, logs)
	}
}

func TestFence_IPMILanUnreachableFailsWithinTimeout(t *testing.T) {
	_, kw := ipmilan(t, true, "")
	kw[KwOptions] = fmt.Sprintf("ip=127.0.0.1 ipport=%d username=admin lanplus=1 cipher=3", ipmisim.FreeUDPPort(t))
	kw[KwTimeout] = "3s"
	d, _ := newDriver(t)
	start := time.Now()
	_, err := d.Fence(context.Background(), "n2", kw)
	if !errors.Is(err, ErrAgentFailed) {
		t.Fatalf("Fence = %v, want ErrAgentFailed", err)
	}
	t.Logf("error: %v", err)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Fence took %s with a 3s timeout", took)
	}
}

func TestPowerStatus_IPMILanReportsOnAndOff(t *testing.T) {
	bmc, kw := ipmilan(t, true, "")
	d, _ := newDriver(t)
	bmc.CheckPowerStatus(t, func(ctx context.Context) (string, error) { return d.PowerStatus(ctx, "n2", kw) })
}

// modelAgent writes fence_model, a stand-in agent: it records its argument
// count and stdin in dir, then runs body with $action set.
func modelAgent(t *testing.T, body string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	script := `#!/bin/sh
echo "$#" > "` + dir + `/argc"
in=$(cat)
printf '%s\n--\n' "$in" >> "` + dir + `/stdin"
action=$(printf '%s\n' "$in" | sed -n 's/^action=//p')
` + body + "\n"
	if err := os.WriteFile(filepath.Join(dir, "fence_model"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFence_GivesTheAgentEverythingOnStdin(t *testing.T) {
	dir := modelAgent(t, `case $action in
off) echo "Success: Powered OFF" ;;
status) echo "Status: OFF"; exit 2 ;;
esac`)
	d, _ := newDriver(t, dir)
	kw := map[string]string{
		KwAgent: "fence_model", KwOptions: "ip=10.1.0.101  username=admin\tlanplus=1",
		KwPasswordFile: ipmisim.PasswordFile(t, "pa ss=word"),
	}
	if _, err := d.Fence(context.Background(), "n2", kw); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	argc, _ := os.ReadFile(filepath.Join(dir, "argc"))
	if strings.TrimSpace(string(argc)) != "0" {
		t.Errorf("the agent got %s arguments, want none (everything on stdin)", argc)
	}
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	want := "ip=10.1.0.101\nusername=admin\nlanplus=1\npassword=pa ss=word\nnodename=n2\naction=off\n--\n" +
		"ip=10.1.0.101\nusername=admin\nlanplus=1\npassword=pa ss=word\nnodename=n2\naction=status\n--\n"
	if string(stdin) != want {
		t.Errorf("stdin =\n%s\nwant\n%s", stdin, want)
	}
}

func TestFence_RefusesUnconfirmedOff(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		// Exit 2 is also fencing.py's EC_BAD_ARGS: without "Status: OFF"
		// it is a failure, not an off.
		{"exit 2 without Status OFF", `case $action in
off) echo "Success: Powered OFF" ;;
status) echo "ERROR:root:Failed: You have to enter fence address" >&2; exit 2 ;;
esac`, ErrNotConfirmed},
		{"status stays on", `case $action in
off) echo "Success: Powered OFF" ;;
status) echo "Status: ON" ;;
esac`, ErrNotConfirmed},
		{"off fails", `echo "2026-11-24 23:30:17,170 ERROR: Failed: Unable to obtain correct plug status" >&2; exit 1`, ErrAgentFailed},
		{"agent hangs", `sleep 60 & sleep 60`, ErrAgentFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newDriver(t, modelAgent(t, tc.body))
			start := time.Now()
			_, err := d.Fence(context.Background(), "n2", map[string]string{KwAgent: "fence_model", KwTimeout: "1s"})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fence = %v, want %v", err, tc.want)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Fence took %s with a 1s timeout", took)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestFence_MasksAnEchoedPassword(t *testing.T) {
	dir := modelAgent(t, `echo "ERROR: login failed with password $(printf '%s\n' "$in" | sed -n 's/^password=//p')" >&2; exit 3`)
	d, logs := newDriver(t, dir)
	_, err := d.Fence(context.Background(), "n2", map[string]string{
		KwAgent: "fence_model", KwPasswordFile: ipmisim.PasswordFile(t, "hunter2"),
	})
	if err == nil || strings.Contains(err.Error()+logs.String(), "hunter2") {
		t.Fatalf("Fence = %v; the password must not show\n%s", err, logs)
	}
}

func TestParseSpec(t *testing.T) {
	dir := modelAgent(t, "exit 0")
	d, _ := newDriver(t, dir)
	pw := ipmisim.PasswordFile(t, "x")
	for _, tc := range []struct {
		name string
		kw   map[string]string
		want string // "" for valid
	}{
		{"valid", map[string]string{KwAgent: "fence_model", KwOptions: "ip=1.2.3.4 lanplus=1", KwPasswordFile: pw}, ""},
		{"missing agent", map[string]string{}, "agent: required"},
		{"path", map[string]string{KwAgent: "/usr/sbin/fence_ipmilan"}, "no path"},
		{"relative path", map[string]string{KwAgent: "fence_x/../../bin/sh"}, "no path"},
		{"not a fence agent", map[string]string{KwAgent: "ipmitool"}, "not a fence agent"},
		{"not installed", map[string]string{KwAgent: "fence_nonesuch"}, "not found"},
		{"option without value", map[string]string{KwAgent: "fence_model", KwOptions: "ip=1.2.3.4 lanplus"}, `"lanplus" is not key=value`},
		{"action in options", map[string]string{KwAgent: "fence_model", KwOptions: "action=on"}, "action is set by vigil"},
		{"two passwords", map[string]string{KwAgent: "fence_model", KwOptions: "password=x", KwPasswordFile: pw}, "options already hold a password"},
		{"bad timeout", map[string]string{KwAgent: "fence_model", KwTimeout: "0"}, "timeout:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := d.parseSpec(tc.kw)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.path != filepath.Join(dir, "fence_model") || s.timeout != DefaultTimeout {
					t.Errorf("spec = %+v", s)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseSpec = %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestResolve_PrefersAgentDirsThenPath(t *testing.T) {
	dirA, dirB := modelAgent(t, "exit 0"), modelAgent(t, "exit 0")
	d, _ := newDriver(t, dirA, dirB)
	if p, err := d.resolve("fence_model"); err != nil || p != filepath.Join(dirA, "fence_model") {
		t.Errorf("resolve = %q, %v; want the first AgentDirs entry", p, err)
	}
	t.Setenv("PATH", dirB)
	d, _ = newDriver(t, t.TempDir())
	if p, err := d.resolve("fence_model"); err != nil || p != filepath.Join(dirB, "fence_model") {
		t.Errorf("resolve = %q, %v; want PATH's", p, err)
	}
}

// TestFence_KillsTheAgentsHelpers checks that a timed-out agent's children
// go too: fence_ipmilan's ipmitool must not outlive the fence.
func TestFence_KillsTheAgentsHelpers(t *testing.T) {
	dir := modelAgent(t, `sleep 60 & echo $! > "`+"$(dirname \"$0\")"+`/child"; wait`)
	d, _ := newDriver(t, dir)
	_, err := d.Fence(context.Background(), "n2", map[string]string{KwAgent: "fence_model", KwTimeout: "500ms"})
	if err == nil {
		t.Fatal("Fence succeeded")
	}
	b, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(2 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's child %s still runs after the fence timed out", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running reports whether pid exists and is not a zombie: a killed child
// stays a zombie until init, which may be slow, reaps it.
func running(pid string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestFence_RefusesAPasswordFileOthersCanRead(t *testing.T) {
	dir := modelAgent(t, `case $action in
off) echo "Success: Powered OFF" ;;
status) echo "Status: OFF"; exit 2 ;;
esac`)
	d, _ := newDriver(t, dir)
	pw := ipmisim.PasswordFile(t, "hunter2")
	if err := os.Chmod(pw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := d.Fence(context.Background(), "n2", map[string]string{KwAgent: "fence_model", KwPasswordFile: pw})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "chmod 600 "+pw) {
		t.Fatalf("Fence = %v, want ErrConfig saying chmod 600 %s", err, pw)
	}
	if _, err := os.Stat(filepath.Join(dir, "stdin")); err == nil {
		t.Error("the agent ran with a password from a world-readable file")
	}
}

// The agents run as root, and some of their options name a program, a
// script or a file to run or write: through options, cluster-wide
// configuration would run anything as root.
func TestParseSpec_RefusesOptionsThatRunOrWriteFiles(t *testing.T) {
	d, _ := newDriver(t, modelAgent(t, "exit 0"))
	for _, tc := range []struct {
		option string
		refuse bool
	}{
		{"passwd_script=/tmp/x.sh", true},
		{"password-script=/tmp/x.sh", true}, // its long option, which fencing.py also reads
		{"snmp_priv_passwd_script=/tmp/x", true},
		{"ipmitool_path=/tmp/evil", true},
		{"ipmitool-path=/tmp/evil", true},
		{"ssh_path=/tmp/evil", true},
		{"sudo_path=/tmp/evil", true},
		{"sg_persist-path=/tmp/evil", true},
		{"corosync_cmap_path=/tmp/evil", true},
		{"IDENTITY_FILE=/root/.ssh/id_rsa", true},
		{"identity-file=/root/.ssh/id_rsa", true},
		{"ssh_options=-oProxyCommand=touch/tmp/pwned", true},
		{"exec=/bin/sh", true},
		{"runonfail=/bin/sh", true},
		{"runonwarn=/bin/sh", true},
		{"logfile=/etc/shadow", true},
		{"debug-file=/etc/shadow", true},
		{"debug_file=/etc/shadow", true},
		{"status_file=/etc/passwd", true},
		{"cookie_file=/etc/passwd", true},
		{"kubeconfig=/tmp/kc", true},
		{"openrc=/tmp/openrc", true},
		{"ip=10.0.0.1", false},
		{"lanplus=1", false},
		{"api_path=/api2/json", false}, // fence_pve: the path part of a URL
		{"ipmitool_timeout=5", false},
		{"ssh=1", false},
		{"use_sudo=1", false},
	} {
		t.Run(tc.option, func(t *testing.T) {
			_, err := d.parseSpec(map[string]string{KwAgent: "fence_model", KwOptions: "ip=1.2.3.4 " + tc.option})
			if !tc.refuse {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			key, _, _ := strings.Cut(tc.option, "=")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), key+"=") || !strings.Contains(err.Error(), "as root") {
				t.Fatalf("parseSpec = %v, want ErrConfig naming %s=", err, key)
			}
			if _, v, _ := strings.Cut(tc.option, "="); strings.Contains(err.Error(), v) {
				t.Errorf("the error shows the value, which may be a secret: %v", err)
			}
		})
	}
}
