//go:build !race

package hbnet

// raceEnabled says the race detector is on: tests that load the host
// scale their load down with it.
const raceEnabled = false
