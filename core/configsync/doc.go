// Package configsync owns the transfer of service config files between
// nodes: a small authenticated, encrypted TCP protocol, the Server a node
// answers its peers on and the Client it fetches a peer's file with.
//
// Heartbeats carry only each service's config version and checksum
// (cluster.ConfigVersion without its content). A node that sees a newer
// version on a peer fetches that exact version (named by its checksum)
// from the peer with Client.Fetch, then validates and installs it itself:
// this package moves bytes and proves where they came from and that they
// are the ones asked for; it does not parse, validate, order versions or
// write files.
//
// Fetch blocks on the network for up to its timeout, and a Server's
// Lookup runs on its connection goroutines: neither may ever be called on
// the heartbeat path (a heartbeat callback must not block). The daemon
// fetches from its own goroutine, off the loop, and hands the result back.
//
// # Security
//
// Both ends hold a key derived from the cluster secret
// (NodeConfig.Key("configsync")). One exchange per connection: the server
// sends a random challenge; the client's request echoes it, carries a
// fresh nonce of its own, the cluster, its node name, the service and the
// checksum wanted, and is tagged with HMAC-SHA256 under a subkey of the
// key; the server answers only a request that verifies and echoes this
// connection's challenge. The reply is sealed with AES-256-GCM under a key
// derived from the shared key, the challenge and the client's nonce, the
// request frame as associated data: it authenticates the server to the
// client, binds the answer to this very request, and keeps the content
// (run_args -e PASSWORD=...) confidential. The client then checks that
// sha256(content) is the checksum asked for. The wire is described in
// wire.go.
//
// # Bounds
//
// A config is at most MaxSize bytes (core/config.MaxFileSize by default);
// a frame announcing more than its kind can hold is refused before it is
// read. Every read and write has a deadline, each connection has its own
// goroutine, owned by the Server and stopped by Close or by Serve's
// context, and at most MaxConns connections are served at once, so a slow
// or hostile peer cannot stall the others.
package configsync

import "errors"

// Errors a caller of Fetch branches on (compare with errors.Is).
var (
	// ErrAuth: the peer refused this node's request as unauthenticated,
	// or its reply does not authenticate. The cluster secret (or the
	// cluster name) differs between the nodes, or someone forged or
	// replayed an answer: retrying will not help until that is fixed.
	ErrAuth = errors.New("config sync authentication failed (is the cluster secret the same on both nodes?)")
	// ErrNotFound: the peer has no such service.
	ErrNotFound = errors.New("the peer has no such service")
	// ErrBadName: the service name is not a valid one
	// (config.CheckServiceName).
	ErrBadName = errors.New("invalid service name")
	// ErrSumMismatch: the content is not the version asked for (the
	// peer's config changed since its heartbeat, or it arrived corrupt).
	// Wait for the peer's next heartbeat and fetch the version it names.
	ErrSumMismatch = errors.New("config checksum mismatch")
	// ErrTooLarge: a config or a frame is over the size limit.
	ErrTooLarge = errors.New("config too large")
	// ErrMalformed: the peer sent something that is not this protocol.
	ErrMalformed = errors.New("malformed config sync frame")
	// ErrServerClosed: Serve was called after Close.
	ErrServerClosed = errors.New("config sync server closed")
)
