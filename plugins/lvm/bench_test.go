package lvm

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// BenchmarkVGStartStop times the driver's start (a takeover: the group is
// tagged by another host) and stop of a real volume group on loop devices,
// as ms per start and per stop. The group has no logical volume (this
// host has no device-mapper), so activation has nothing to map. "filter"
// confines LVM to the group's device (the tests' setup), "host" scans
// every device as a node without an LVM filter does; "scsireserv" adds
// the reservation, against the model of a PR-capable disk.
//
//	go test -run '^$' -bench VGStartStop -benchtime 20x ./plugins/lvm
func BenchmarkVGStartStop(b *testing.B) {
	for _, bc := range []struct {
		name       string
		filter     bool
		scsireserv bool
	}{
		{"filter", true, false},
		{"host", false, false},
		{"filter,scsireserv", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			vg, lvmConfig, devs := sharedVGOn(b, 1)
			if !bc.filter {
				// Metadata backups stay off: they would go to /etc/lvm.
				lvmConfig = `devices { use_devicesfile=0 } backup { backup=0 archive=0 }`
			}
			d := New(Config{Hostname: "node-a", LVMConfig: lvmConfig, Logger: hclog.NewNullLogger()})
			peer := New(Config{Hostname: "node-b", LVMConfig: lvmConfig, Logger: hclog.NewNullLogger()})
			if bc.scsireserv {
				farm := newPRFarm(devs...)
				d.openPR, peer.openPR = farm.opener("node-a"), farm.opener("node-b")
			}
			r := sdk.Resource{RID: "vg#1", Type: "disk.vg", Keywords: map[string]string{KwVGName: vg, KwSCSIReserv: strconv.FormatBool(bc.scsireserv)}}
			ctx := context.Background()
			var start, stop time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if _, err := peer.Start(ctx, r); err != nil {
					b.Fatalf("the peer's start: %v", err)
				}
				b.StartTimer()
				t0 := time.Now()
				if _, err := d.Start(ctx, r); err != nil {
					b.Fatalf("start: %v", err)
				}
				t1 := time.Now()
				if _, err := d.Stop(ctx, r); err != nil {
					b.Fatalf("stop: %v", err)
				}
				start += t1.Sub(t0)
				stop += time.Since(t1)
			}
			b.ReportMetric(float64(start.Microseconds())/1e3/float64(b.N), "start-ms")
			b.ReportMetric(float64(stop.Microseconds())/1e3/float64(b.N), "stop-ms")
		})
	}
}
