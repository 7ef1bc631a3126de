package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Each node has a simulated BMC: an OpenIPMI ipmi_sim listening on
// <subnet>.100+K:623 in the lab's switch namespace (so it answers while
// its node is off, and every node reaches it over the bridge). Its
// lan.conf has `chassis_control "vigil-lab bmc-control --name LAB --node
// nK"`: ipmi_sim runs that with `get power` or `set power 0|1`, and
// bmc-control kills or boots the node. The ipmi_sim processes are
// children of the lab's supervisor, a child subreaper, which therefore
// also adopts and reaps the node inits that bmc-control starts.

const bmcUser = "admin"

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// writeBMC writes one BMC's lan.conf, emulator commands and password.
func (l *Lab) writeBMC(k int, self string) error {
	node := NodeName(k)
	dir := l.Path("bmc", node)
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return err
	}
	pass := randomHex(8)
	if err := writeFile(l.bmcPassFile(node), []byte(pass+"\n"), 0o600); err != nil {
		return err
	}
	lan := fmt.Sprintf(`# BMC of %[1]s in lab %[2]s, written by vigil-lab.
name "%[2]s-%[1]s"
set_working_mc 0x20
  startlan 1
    addr %[3]s 623
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid %[4]s
  endlan
  chassis_control "%[5]s bmc-control --name %[2]s --node %[1]s"
user 2 true "%[6]s" "%[7]s" admin 10 none md2 md5 straight
`, node, l.Name, l.BMCAddr(k), randomHex(16), self, bmcUser, pass)
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n"
	if err := writeFile(filepath.Join(dir, "lan.conf"), []byte(lan), 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "emu"), []byte(emu), 0o644)
}

// BMCPidFile holds the pid and start time of node's ipmi_sim.
func (l *Lab) BMCPidFile(node string) string { return l.Path("bmc", node, "ipmi_sim.pid") }

// startSupervisor starts `vigil-lab supervise` in the switch namespace,
// detached from the terminal, and waits for every BMC to listen.
func (l *Lab) startSupervisor(ctx context.Context, self string) error {
	logf, err := os.OpenFile(l.Path("supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "supervise", "--name", l.Name)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := startInNetns(l.NSPath(l.SwitchNS()), cmd); err != nil {
		return fmt.Errorf("start the lab supervisor: %w", err)
	}
	l.Supervisor = procOf(cmd.Process.Pid)
	if err := l.save(); err != nil {
		return err
	}
	// Reaped by nobody once `up` exits: it is a session leader whose
	// parent is gone; the host's init adopts it.
	go func() { _ = cmd.Wait() }()
	for k := 1; k <= l.Nodes; k++ {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := l.ipmi(ctx, k, "chassis", "power", "status"); err == nil {
				break
			} else if time.Now().After(deadline) {
				return fmt.Errorf("BMC of %s does not answer: %w (see %s)", NodeName(k), err, l.Path("supervisor.log"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// RunSupervisor is `vigil-lab supervise`: it runs one ipmi_sim per node,
// restarting one that dies, and reaps whatever it adopts (node inits).
// SIGTERM ends it with its ipmi_sims.
func RunSupervisor(l *Lab) error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a subreaper: %w", err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	sims := map[int]*Proc{} // by node index
	start := func(k int) {
		node := NodeName(k)
		dir := l.Path("bmc", node)
		cmd := exec.Command("ipmi_sim", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "emu"), "-s", filepath.Join(dir, "state"), "-n")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			fmt.Printf("%s: start the BMC of %s: %v\n", time.Now().Format(time.RFC3339Nano), node, err)
			return
		}
		p := procOf(cmd.Process.Pid)
		sims[k] = p
		_ = writeProc(l.BMCPidFile(node), p)
		fmt.Printf("%s: BMC of %s: ipmi_sim pid %d on %s:623\n", time.Now().Format(time.RFC3339Nano), node, p.Pid, l.BMCAddr(k))
	}
	for k := 1; k <= l.Nodes; k++ {
		start(k)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-term:
			for k, p := range sims {
				p.stop(2 * time.Second)
				_ = os.Remove(l.BMCPidFile(NodeName(k)))
			}
			return nil
		case <-tick.C:
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			for k, p := range sims {
				if p.Pid == pid {
					fmt.Printf("%s: BMC of %s exited (%v): restarting it\n", time.Now().Format(time.RFC3339Nano), NodeName(k), ws)
					start(k)
				}
			}
		}
	}
}

// RunBMCControl is ipmi_sim's chassis_control program for one node.
func RunBMCControl(ctx context.Context, l *Lab, node string, args []string) error {
	k, err := l.NodeIndex(node)
	if err != nil {
		return err
	}
	switch strings.Join(args, " ") {
	case "get power":
		if l.NodeInit(node) != nil {
			fmt.Println("power:1")
		} else {
			fmt.Println("power:0")
		}
		return nil
	case "set power 0", "set power 1":
		if fileExists(l.BMCFailFile(node)) {
			// Acknowledged and ignored, as a broken BMC may: the node
			// stays as it is, and only a power status query tells.
			fmt.Fprintf(os.Stderr, "%s: BMC of %s failing: %q ignored\n", time.Now().Format(time.RFC3339Nano), node, strings.Join(args, " "))
			return nil
		}
		if args[2] == "0" {
			return l.haltNode(ctx, k)
		}
		return l.bootNode(ctx, k)
	}
	// ipmi_sim also asks for boot devices, resets, …: unsupported.
	return fmt.Errorf("bmc-control: unsupported request %q", strings.Join(args, " "))
}

// BMCFailFile is the flag `vigil-lab bmc NODE --fail on` creates: while it
// exists the node's BMC answers but ignores every power change, so a fence
// through it is never confirmed (the node stays on).
func (l *Lab) BMCFailFile(node string) string { return l.Path("bmc", node, "fail") }

// SetBMCFail makes node's BMC fail (ignore power changes) or work again.
func (l *Lab) SetBMCFail(node string, fail bool) error {
	if _, err := l.NodeIndex(node); err != nil {
		return err
	}
	if !fail {
		if err := os.Remove(l.BMCFailFile(node)); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	return writeFile(l.BMCFailFile(node), []byte("set power requests are ignored while this file exists\n"), 0o644)
}

// ipmi runs ipmitool against node k's BMC from the client namespace, the
// way a peer or an operator would: lanplus with cipher suite 3 (without
// -C each call spends ~10s probing suites). IPMI runs over UDP and a BMC
// may drop an exchange; every request the lab makes (power status, on,
// off) is idempotent, so a failed call is made again, up to three times.
func (l *Lab) ipmi(ctx context.Context, k int, args ...string) (string, error) {
	pass := l.bmcPassFile(NodeName(k))
	full := append([]string{"--net=" + l.NSPath(l.ClientNS()), "--", "ipmitool", "-I", "lanplus", "-C", "3",
		"-H", l.BMCAddr(k), "-U", bmcUser, "-f", pass, "-N", "3", "-R", "3"}, args...)
	var out string
	var err error
	for try := 1; try <= 3; try++ {
		// Each call bounded on its own: a session ipmi_sim leaves
		// hanging must not eat the time of the next attempt.
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err = output(actx, "nsenter", full...)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return strings.TrimSpace(out), err
}

// Power asks node k's BMC to power it on or off and returns the time the
// BMC took.
func (l *Lab) Power(ctx context.Context, k int, on bool) (time.Duration, error) {
	verb := "off"
	if on {
		verb = "on"
	}
	t0 := time.Now()
	if _, err := l.ipmi(ctx, k, "chassis", "power", verb); err != nil {
		return 0, fmt.Errorf("power %s %s through its BMC: %w", verb, NodeName(k), err)
	}
	if fileExists(l.BMCFailFile(NodeName(k))) {
		return 0, fmt.Errorf("power %s %s: its BMC is failing and ignored the request (`vigil-lab bmc %s --fail off`)", verb, NodeName(k), NodeName(k))
	}
	return time.Since(t0), nil
}

// PowerState asks node k's BMC: "on", "off" or "unknown", with the reason
// when unknown.
func (l *Lab) PowerState(ctx context.Context, k int) (string, string) {
	out, err := l.ipmi(ctx, k, "chassis", "power", "status")
	switch {
	case err != nil:
		return "unknown", err.Error()
	case strings.HasSuffix(out, "on"):
		return "on", ""
	case strings.HasSuffix(out, "off"):
		return "off", ""
	}
	return "unknown", fmt.Sprintf("unexpected answer %q", out)
}

func itoa(i int) string { return strconv.Itoa(i) }
