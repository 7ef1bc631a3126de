package lab

// The lab's fixtures: the seed's two services adapted to the lab, as
// text/template files that Up fills with the lab's devices, addresses and
// names and installs in every node's /etc/vigil. Each difference from the
// seed is commented in the file.

import "embed"

// Services are the service templates, NAME.env each.
//
//go:embed *.env
var Services embed.FS

// Vars are what the templates may use.
type Vars struct {
	Lab   string // the lab's name
	Nodes string // the node names, space separated: "n1 n2"

	RegistryAddr, BusyboxAddr     string // the services' floating addresses
	RegistryBridge, BusyboxBridge string // the bridges each node makes for the services' private daemons

	RegistryVG, BusyboxVG string // volume groups, one per lab (VG names are global on the host)

	CgroupParent string // the cgroup the services' containers go under, one per lab

	RegistryRootDev, RegistryDockerDev, RegistryDataDev string // loop devices
	BusyboxRootDev, BusyboxDataDev                      string
}
