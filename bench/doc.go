// Package bench holds Vigil's benchmarks. They print figures and assert
// nothing: `make bench` runs the Go benchmarks here (a resource-status call
// through a plugin versus the same driver in-process) and startup.sh (a
// service start versus a shell script doing the same steps).
package bench
