// Package ops holds the lab proofs of the day-to-day operations (issue
// 13): node maintenance (a drain moves everything away and gets nothing
// back, and is refused when a service has nowhere to go), the refusals
// that keep an operator from doing harm (confirming a node off while it is
// heard, clearing a service that never failed), and the journal's record
// of it all. Each test builds a vigil-lab lab of two nodes with the seed's
// services and real BMCs (ipmi_sim); they skip, saying why, when not run as
// root or when a tool the lab needs is missing. The package has no code of
// its own outside its tests.
package ops
