// Package cluster is a broker's control plane: its membership in the Raft
// metadata quorum (hashicorp/raft over the controller port, 9095), its
// broker registration and lease, and, on whichever voter is the Raft
// leader (the active controller), fencing of brokers whose lease lapsed
// and preferred-leader rebalancing.
//
// Membership: nodes listed in controller.quorum.voters are voters and
// bootstrap the Raft cluster from that list the first time they start.
// Every other broker joins as a Raft non-voter (it asks the active
// controller to add it) and so receives the whole metadata log by Raft
// replication: every broker answers Metadata from its own applied copy of
// the same log, and never votes.
//
// One TCP port carries Raft traffic and this package's small JSON
// request/response protocol (a proposal forwarded to the leader, a join, a
// heartbeat),
// told apart by the first byte of each connection.
//
// Every change goes through the leader as a metadata command (package
// metadata); time-dependent commands (registrations, the heartbeat that
// unfences a broker) carry the leader's clock, stamped when the leader
// receives them. Lease renewals are not commands: the active controller
// keeps them in memory (leases.go) and logs only a broker's fencing and
// unfencing.
//
// Subpackages: metadata (the state machine), placement (replica placement
// and reassignment plans), raftstore (the Raft log on disk), replica (the
// follower fetcher and the leader's ISR tracking).
package cluster
