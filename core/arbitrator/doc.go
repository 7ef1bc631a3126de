// Package arbitrator owns the arbitrator's vote: the wire between a node
// and an arbitrator, the server that grants its one vote to one side of a
// partition at a time, and the client a node asks it with. It does not
// decide quorum (core/daemon counts the votes) and knows nothing of
// services.
//
// # The rule
//
// A node asks with the set of nodes it sees alive, itself included (its
// side of the partition). The server grants the vote to node R for set S,
// as a lease of Lease from when it received the request, only if every
// grant it holds that has not expired was given to a node in S, for a set
// equal to S. Otherwise it denies, naming the conflicting grant.
//
// # Why only one side can count the vote
//
// Invariant on the server: all its unexpired grants are for one set S,
// and every holder is in S. A new grant keeps it (it is for S, to a
// member of S, and every other unexpired grant already was); expiry only
// removes grants.
//
// A client counts its vote only while its own clock reads less than
// (when it sent the request + Lease − Margin), so it stops before the
// server's lease ends (the server's starts later, when the request
// arrives), and only while the set it sees now equals the set the vote
// was granted for. So at any instant every node counting this vote sees
// the same set S and is in it: two sides that do not see each other
// (different sets) never both count it. When the cluster splits or heals,
// the sides' sets change, their old grants stop counting at once, and the
// new set gets the vote once every conflicting grant expired.
//
// The server keeps its grants in memory only. A restarted server forgot
// them, so it grants nothing for one full lease after it starts: by then
// every grant from before the restart has expired on its holder.
//
// # The wire
//
// TCP, one exchange per connection, every read bounded in size and time:
// the server sends a random challenge; the client sends a request that
// carries it (no request can be replayed to another connection), a nonce
// of its own, the cluster, its name and its set, tagged with
// HMAC-SHA256 under a key derived from the cluster secret; the server
// answers, echoing the nonce, tagged with the same key.
package arbitrator
