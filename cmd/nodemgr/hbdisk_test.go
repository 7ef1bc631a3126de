package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHbDiskInit_LabelsOnceForTheClusterAndRefusesData(t *testing.T) {
	etc := t.TempDir()
	dev := filepath.Join(t.TempDir(), "hb")
	if err := os.WriteFile(dev, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := "[cluster]\nname = prod   # the cluster\nnodes = " + hostname(t) + "\n\n[hb#2]\ntype = disk\ndev = " + dev + "\noffset = 8k\n"
	if err := os.WriteFile(filepath.Join(etc, "cluster.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := nodemgr(t, etc, "", "hb-disk", "init", "--dev", dev)
	if err != nil || !strings.Contains(out, "labelled for cluster prod (offset 8192)") {
		t.Fatalf("first init: %v: %s", err, out)
	}
	raw, _ := os.ReadFile(dev)
	if !strings.HasPrefix(string(raw[8192:]), "VIGILHBL") {
		t.Fatal("no label at the section's offset")
	}
	if out, _, err = nodemgr(t, etc, "", "hb-disk", "init", "--dev", dev); err != nil || !strings.Contains(out, "already labelled") {
		t.Fatalf("second init: %v: %s", err, out)
	}
	if _, _, err = nodemgr(t, etc, "", "hb-disk", "init", "--dev", dev, "--cluster", "other"); err == nil || !strings.Contains(err.Error(), `cluster "prod"`) {
		t.Fatalf("init for another cluster: %v, want a refusal", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	os.WriteFile(data, []byte(strings.Repeat("someone's data ", 1000)), 0o600)
	if _, _, err = nodemgr(t, etc, "", "hb-disk", "init", "--dev", data); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("init of a device holding data: %v, want a refusal naming --force", err)
	}
}
