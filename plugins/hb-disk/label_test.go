package hbdisk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func blankDev(t *testing.T, fill byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dev")
	b := make([]byte, labelSize+2*testSlotSize)
	if fill != 0 {
		copy(b[100:], strings.Repeat(string(fill), 64)) // someone's data
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInitDevice_LabelsOnceAndRefusesOthersData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T) string
		opts    InitOptions
		written bool
		err     error
	}{
		{"a blank device is labelled", func(t *testing.T) string { return blankDev(t, 0) }, InitOptions{Cluster: "prod"}, true, nil},
		{"the same cluster again changes nothing", func(t *testing.T) string { return newDevFile(t, 2) }, InitOptions{Cluster: "prod"}, false, nil},
		{"another cluster's device is refused", func(t *testing.T) string { return newDevFile(t, 2) }, InitOptions{Cluster: "test"}, false, ErrForeignLabel},
		{"a device holding data is refused", func(t *testing.T) string { return blankDev(t, 'x') }, InitOptions{Cluster: "prod"}, false, ErrHoldsData},
		{"--force overwrites data", func(t *testing.T) string { return blankDev(t, 'x') }, InitOptions{Cluster: "prod", Force: true}, true, nil},
		{"--force relabels", func(t *testing.T) string { return newDevFile(t, 2) }, InitOptions{Cluster: "test", Force: true}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Dev = tc.prepare(t)
			before, _ := os.ReadFile(o.Dev)
			written, err := InitDevice(o)
			if written != tc.written || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("InitDevice = %v, %v; want %v, %v", written, err, tc.written, tc.err)
			}
			after, _ := os.ReadFile(o.Dev)
			if !written && string(before) != string(after) {
				t.Fatal("the device changed although nothing was written")
			}
			if written {
				if got, err := decodeLabel(after); err != nil || got != o.Cluster {
					t.Fatalf("label reads %q, %v; want %q", got, err, o.Cluster)
				}
			}
		})
	}
}

func TestRun_RefusesADeviceWithoutLabelAndWritesNothing(t *testing.T) {
	t.Parallel()
	dev := blankDev(t, 'x')
	before, _ := os.ReadFile(dev)
	c := newTestCluster(t, dev, "a", "b")
	m := c.start("a")
	select {
	case err := <-m.done:
		m.stopped = true
		if !errors.Is(err, ErrNoLabel) || !strings.Contains(err.Error(), "nodemgr hb-disk init --dev "+dev) {
			t.Fatalf("Run on an unlabelled device: %v; want a refusal saying how to label it", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run goes on with an unlabelled device")
	}
	if after, _ := os.ReadFile(dev); string(after) != string(before) {
		t.Fatal("Run wrote on an unlabelled device")
	}
}
