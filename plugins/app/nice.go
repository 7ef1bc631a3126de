package app

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// atNormalPriority runs argv at niceness 0 when this plugin runs at
// another: vigild runs ahead of the services it manages (Nice=-10 in its
// unit) and its plugins inherit that; an app, its agent and what they
// start must not. nice(1) execs argv in the same process, so a simple
// app's pid is still the pid the plugin records. The docker plugin does
// the same for a service's private daemon.
func atNormalPriority(argv []string) []string {
	n := ownNiceness()
	if n == 0 {
		return argv
	}
	return append([]string{"/usr/bin/nice", "-n", strconv.Itoa(-n)}, argv...)
}

// ownNiceness is this process's nice value (0 when it cannot be read).
func ownNiceness() int {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - p // the raw syscall answers 20 - nice
}
