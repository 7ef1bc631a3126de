// Package ipmisim runs OpenIPMI's ipmi_sim, a real BMC simulator, for the
// fencing plugins' tests: one BMC on 127.0.0.1 whose chassis power is a
// file, so a test can set it and see what a power-off did. It only serves
// tests (it takes a testing.TB) and must not be imported by plugin code.
package ipmisim

import (
	"bytes"
	"context"

	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Options configures a simulated BMC. Zero values take the defaults.
type Options struct {
	// User and Password of the admin account. Default "admin"/"s3cret".
	// ipmi_sim reads them as quoted words: keep them to letters and digits.
	User, Password string
	// PowerOn is the chassis power at start.
	PowerOn bool
	// Port to listen on; 0 for a free one. A test that starts the BMC
	// late (a BMC whose IPMI stack is not up yet) points the driver at a
	// FreeUDPPort first.
	Port int
	// Privilege is the user's privilege limit: admin (the default),
	// operator or user.
	Privilege string
}

// BMC is a running ipmi_sim.
type BMC struct {
	Host     string
	Port     int
	User     string
	Password string
	// Dir holds lan.conf, bmc.emu, chassis.sh and the power file.
	Dir       string
	powerFile string
}

// chassisScript is ipmi_sim's chassis_control program: ipmi_sim runs it as
// `chassis.sh set power 0|1` on a power command and `chassis.sh get power`
// on a status read, and expects "power:0|1" back. The power state is a file
// so that it survives between those runs and a test can read and set it;
// while "power.stuck" exists beside it, power commands are ignored, as
// on a BMC whose power control has failed.
const chassisScript = `#!/bin/sh
state=%q
case "$1" in
set)
	shift
	while [ $# -ge 2 ]; do
		[ "$1" = power ] && [ ! -e "$state.stuck" ] && printf '%%s\n' "$2" > "$state"
		shift 2
	done ;;
get)
	shift
	for item; do
		[ "$item" = power ] && printf 'power:%%s\n' "$(cat "$state")"
	done ;;
esac
exit 0
`

// LanConf is the lan.conf used, %[1]s the address, %[2]d the port, %[3]s
// the chassis program, %[4]s/%[5]s the user and password, %[6]s the
// user's privilege. One LAN
// channel at admin privilege; IPMI 1.5 auth types for lan, and ipmi_sim's
// RMCP+ suites (cipher suite 3 among them) for lanplus.
const LanConf = `name "vigilbmc"
set_working_mc 0x20
  startlan 1
    addr %[1]s %[2]d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%[3]s"
  user 2 true "%[4]s" "%[5]s" %[6]s 10 none md2 md5 straight
`

// Emu is the emulator command file: one BMC at 0x20, enabled.
const Emu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
mc_enable 0x20
`

// Start runs ipmi_sim on a free UDP port of 127.0.0.1 and kills it when the
// test ends. It skips the test when ipmi_sim is not installed.
func Start(t testing.TB, o Options) *BMC {
	t.Helper()
	bin, err := exec.LookPath("ipmi_sim")
	if err != nil {
		t.Skip("ipmi_sim not installed (Debian: apt-get install openipmi)")
	}
	if o.User == "" {
		o.User = "admin"
	}
	if o.Password == "" {
		o.Password = "s3cret"
	}
	if o.Privilege == "" {
		o.Privilege = "admin"
	}
	dir := t.TempDir()
	b := &BMC{Host: "127.0.0.1", User: o.User, Password: o.Password, Dir: dir,
		powerFile: filepath.Join(dir, "power")}
	b.SetPower(t, o.PowerOn)

	script := filepath.Join(dir, "chassis.sh")
	write(t, script, fmt.Sprintf(chassisScript, b.powerFile), 0o755)
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}

	// The port is found free and then handed to ipmi_sim, which can lose a
	// race with another process; a few tries make that a non-issue.
	for try := 0; ; try++ {
		b.Port = o.Port
		if b.Port == 0 {
			b.Port = FreeUDPPort(t)
		}
		write(t, filepath.Join(dir, "lan.conf"), fmt.Sprintf(LanConf, b.Host, b.Port, script, b.User, b.Password, o.Privilege), 0o600)
		write(t, filepath.Join(dir, "bmc.emu"), Emu, 0o600)
		err := b.run(t, bin, stateDir)
		if err == nil {
			return b
		}
		if try == 2 || o.Port != 0 {
			t.Fatalf("ipmi_sim: %v", err)
		}
	}
}

// run starts ipmi_sim and waits for its port. -n: no console on stdin,
// -s: persistent state (users, SEL) in the test's directory rather than
// /var/ipmi_sim.
func (b *BMC) run(t testing.TB, bin, stateDir string) error {
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", filepath.Join(b.Dir, "lan.conf"), "-f", filepath.Join(b.Dir, "bmc.emu"), "-s", stateDir, "-n")
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(5 * time.Second)
	for !udpListening(b.Port) {
		select {
		case <-exited:
			return fmt.Errorf("exited at start: %s", strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("not listening on %d after 5s: %s", b.Port, strings.TrimSpace(out.String()))
		}
	}
	t.Cleanup(stop)
	return nil
}

// udpListening reports whether a socket is bound to 127.0.0.1:port, from
// /proc/net/udp: probing with a packet would need an IPMI request.
func udpListening(port int) bool {
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == want {
			return true
		}
	}
	return false
}

// SetPower sets the simulated chassis power.
func (b *BMC) SetPower(t testing.TB, on bool) {
	t.Helper()
	v := "0"
	if on {
		v = "1"
	}
	write(t, b.powerFile, v+"\n", 0o644)
}

// CheckPowerStatus sets the power on, then off, and checks each time that
// status (a fencing driver's PowerStatus against this BMC) reads it.
func (b *BMC) CheckPowerStatus(t testing.TB, status func(context.Context) (string, error)) {
	t.Helper()
	for _, tc := range []struct {
		on   bool
		want string
	}{{true, sdk.PowerOn}, {false, sdk.PowerOff}} {
		b.SetPower(t, tc.on)
		got, err := status(context.Background())
		if err != nil {
			t.Fatalf("PowerStatus: %v", err)
		}
		if got != tc.want {
			t.Errorf("PowerStatus with power on=%v = %q, want %q", tc.on, got, tc.want)
		}
	}
}

// Stick makes the BMC accept power commands without acting on them.
func (b *BMC) Stick(t testing.TB) {
	t.Helper()
	write(t, b.powerFile+".stuck", "", 0o644)
}

// PowerOn reads the simulated chassis power.
func (b *BMC) PowerOn(t testing.TB) bool {
	t.Helper()
	data, err := os.ReadFile(b.powerFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data)) == "1"
}

// PasswordFile writes password to a file in the test's directory and
// returns its path.
func PasswordFile(t testing.TB, password string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bmc.pass")
	write(t, p, password+"\n", 0o600)
	return p
}

// FreeUDPPort returns a UDP port of 127.0.0.1 that nothing listens on at
// the time of the call: a BMC address that does not answer.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Keywords returns b's address and credentials as a [stonith#<node>]
// section of stonith.ipmi, with passwordFile as password_file.
func (b *BMC) Keywords(passwordFile string) map[string]string {
	return map[string]string{
		"host": b.Host, "port": strconv.Itoa(b.Port), "user": b.User, "password_file": passwordFile,
	}
}

func write(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// Require skips the test when ipmi_sim is not installed: for a test that
// starts its BMC late and must know first.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ipmi_sim"); err != nil {
		t.Skip("ipmi_sim not installed (Debian: apt-get install openipmi)")
	}
}
