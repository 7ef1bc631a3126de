// Command testplugin is a resource plugin for the plugin host's tests: its
// type app.test (and ip.test, disk.test, fs.test) is up while a marker file
// exists, and its start can be made slow so a test can kill it in the
// middle of one.
package main

import (
	"context"
	"os"
	"time"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

type driver struct{}

func (driver) Info() sdk.Info {
	info := sdk.Info{Name: "testplugin", Version: "9.9.9"}
	// app.test, and the same in the ip, disk and fs groups for the tests
	// of the start schedule (fs.test has a mount point to nest).
	for _, group := range []string{"app", "ip", "disk", "fs"} {
		t := sdk.TypeInfo{
			Type: group + ".test",
			Keywords: []sdk.Keyword{
				{Name: "file", Required: true, Help: "marker file: the resource is up while it exists"},
				{Name: "start_delay", Type: sdk.TypeDuration, Help: "sleep this long before starting"},
				{Name: "fail", Type: sdk.TypeBool, Help: "make start fail"},
				{Name: "status_delay", Type: sdk.TypeDuration, Help: "sleep this long before answering status"},
			},
		}
		if group == "fs" {
			t.Keywords = append(t.Keywords, sdk.Keyword{Name: "mnt", Help: "a mount point (nothing is mounted)"})
		}
		info.Types = append(info.Types, t)
	}
	return info
}

func (driver) Validate(context.Context, sdk.Resource) []sdk.FieldError { return nil }

func (driver) Start(ctx context.Context, r sdk.Resource) ([]string, error) {
	d, _ := r.Duration("start_delay")
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.Bool("fail") {
		return nil, os.ErrPermission
	}
	return []string{"created " + r.Get("file")}, os.WriteFile(r.Get("file"), nil, 0o600)
}

func (driver) Stop(_ context.Context, r sdk.Resource) ([]string, error) {
	if err := os.Remove(r.Get("file")); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return nil, nil
}

func (driver) Status(ctx context.Context, r sdk.Resource) sdk.ResourceStatus {
	if d, _ := r.Duration("status_delay"); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return sdk.ResourceStatus{Status: sdk.StatusUndef, Log: []string{ctx.Err().Error()}}
		}
	}
	if _, err := os.Stat(r.Get("file")); err == nil {
		return sdk.ResourceStatus{Status: sdk.StatusUp, Label: r.Get("file")}
	}
	return sdk.ResourceStatus{Status: sdk.StatusDown, Label: r.Get("file")}
}

func main() { sdk.Serve(driver{}) }
