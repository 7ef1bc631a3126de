// Command oddstatus is a resource plugin, built against the SDK like a
// vendor's, whose type app.odd answers status with whatever number its
// status keyword holds: 42 stands for a value from a newer SDK, or a bug.
// The host must read such a value as undef, with the reason.
package main

import (
	"context"
	"strconv"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

type driver struct{}

func (driver) Info() sdk.Info {
	return sdk.Info{
		Name: "oddstatus", Version: "0.0.1",
		Types: []sdk.TypeInfo{{
			Type:     "app.odd",
			Keywords: []sdk.Keyword{{Name: "status", Type: sdk.TypeInt, Help: "the status number to answer"}},
		}},
	}
}

func (driver) Validate(context.Context, sdk.Resource) []sdk.FieldError { return nil }

func (driver) Start(context.Context, sdk.Resource) ([]string, error) { return nil, nil }

func (driver) Stop(context.Context, sdk.Resource) ([]string, error) { return nil, nil }

func (driver) Status(_ context.Context, r sdk.Resource) sdk.ResourceStatus {
	n, _ := strconv.Atoi(r.Get("status"))
	return sdk.ResourceStatus{Status: sdk.Status(n), Log: []string{"the plugin's own line"}, Label: "odd"}
}

func main() { sdk.Serve(driver{}) }
