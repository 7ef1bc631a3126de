// Package app holds the end-to-end tests of the app resource (plugins/app):
// svcmgr validating an OCF resource against its agent's meta-data, and, in
// a two-node lab of its own, a simple app that outlives a kill of its
// plugin and, killed itself under monitor, is restarted
// in place, then failed over, and a service made of an address, a
// filesystem on a shared disk and nginx run by Pacemaker's heartbeat:nginx
// agent, failed over by a power-off while a client fetches a file from the
// shared filesystem. Tests skip, saying why, when not root or when a tool
// is missing. The package has no code of its own outside its tests.
package app
