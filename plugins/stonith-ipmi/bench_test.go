package stonithipmi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/stonith-ipmi/ipmisim"
)

// daemonBackoff is core/daemon's pause between two failed fences (fence
// in orchestrate.go: 500 ms, doubled after each failure, at most 5 s),
// copied here so that the benchmark calls Fence as the daemon does; the
// plugin must not import core.
func daemonBackoff(failures int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < failures; i++ {
		d = min(2*d, 5*time.Second)
	}
	return d
}

// BenchmarkFence_AfterBMCBack measures what a takeover waits for once a
// BMC that did not answer comes back: Fence (default timeout, 10 s) is
// called again after each failure with the daemon's backoff, until one
// confirms the power off; s-after-back is the time from the BMC's return
// to that confirmation, calls the number of Fence calls. The BMC is real
// (ipmi_sim); "silent" drops its answers (the lab's blocked BMC),
// "refusing" has nothing listening on its port until it starts (a route
// or port that refuses at once behaves alike). Run with -benchtime=1x:
// each op lasts the outage and more.
//
// With "+delay", the first fence is preceded as in the daemon when a
// fence delay applies (the takeover from a node running more services
// waits fence_priority_delay, 5 s by default): PowerStatus under a 5 s
// context, and unless it says off, the delay.
func BenchmarkFence_AfterBMCBack(b *testing.B) {
	for _, mode := range []string{"silent", "refusing", "silent+delay", "refusing+delay"} {
		// Off the whole seconds: attempts and resends run on a 1 s grid
		// from the fence's start, and an outage that ends on it would
		// show the best case only.
		for _, down := range []time.Duration{1300 * time.Millisecond, 2700 * time.Millisecond, 4400 * time.Millisecond, 6100 * time.Millisecond, 8600 * time.Millisecond, 12200 * time.Millisecond} {
			b.Run(fmt.Sprintf("%s/down=%s", mode, down), func(b *testing.B) {
				var after time.Duration
				var calls int
				for i := 0; i < b.N; i++ {
					a, n := fenceAfterBack(b, strings.TrimSuffix(mode, "+delay"), down, strings.HasSuffix(mode, "+delay"))
					after += a
					calls += n
				}
				b.ReportMetric(after.Seconds()/float64(b.N), "s-after-back")
				b.ReportMetric(float64(calls)/float64(b.N), "calls")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

func fenceAfterBack(b *testing.B, mode string, down time.Duration, delay bool) (time.Duration, int) {
	d := New(Config{Logger: hclog.NewNullLogger()})
	var kw map[string]string
	var bmc *ipmisim.BMC
	var back func()
	switch mode {
	case "silent":
		bmc = ipmisim.Start(b, ipmisim.Options{PowerOn: true})
		link := ipmisim.NewLink(b, bmc, ipmisim.LossAnswers)
		kw = link.Keywords(bmc, ipmisim.PasswordFile(b, bmc.Password))
		back = func() { link.SetLoss(ipmisim.LossNone) }
	default:
		ipmisim.Require(b)
		port := ipmisim.FreeUDPPort(b)
		kw = (&ipmisim.BMC{Host: "127.0.0.1", Port: port, User: "admin", Password: "s3cret"}).Keywords(ipmisim.PasswordFile(b, "s3cret"))
		back = func() { bmc = ipmisim.Start(b, ipmisim.Options{PowerOn: true, Port: port}) }
	}
	type result struct {
		at    time.Time
		calls int
		err   error
	}
	done := make(chan result, 1)
	go func() {
		if delay {
			pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			power, err := d.PowerStatus(pctx, "n2", kw)
			cancel()
			if err != nil || power != "off" {
				time.Sleep(5 * time.Second)
			}
		}
		for calls := 1; ; calls++ {
			_, err := d.Fence(context.Background(), "n2", kw)
			if err == nil || calls == 20 {
				done <- result{time.Now(), calls, err}
				return
			}
			time.Sleep(daemonBackoff(calls))
		}
	}()
	time.Sleep(down)
	back()
	backAt := time.Now()
	r := <-done
	if r.err != nil {
		b.Fatalf("%d fences failed: %v", r.calls, r.err)
	}
	if bmc.PowerOn(b) {
		b.Fatal("fenced, but the chassis is on")
	}
	return r.at.Sub(backAt), r.calls
}
