// Package metadata is the cluster's metadata state machine: the finite state
// machine that hashicorp/raft replicates among the controller voters. It
// holds broker registrations and their leases, topics, partition assignments
// (replicas, leader, leader epoch, ISR, partition epoch), topic and broker
// configs, the producer-id counter and the Kafka ACLs (an authz.ACLs
// snapshot, see ACLSet).
//
// Commands are one type byte followed by a JSON body (Encode). Apply
// dispatches the type byte through a table. A type this version does not
// know halts the state machine (every later Apply fails with ErrHalted and
// the state stays as it was) unless the type carries the IgnorableFlag bit,
// in which case it is skipped: a replica must never silently apply a
// different history than its peers. For the same reason a command body or
// a snapshot with a field this version does not know halts (or fails the
// restore) instead of being applied in part.
//
// Apply is deterministic: time comes only from the command (the Raft
// leader's clock, in Unix milliseconds), nothing iterates a map in an order
// that reaches the state, and ids (topic ids) are chosen by the proposer and
// carried in the command.
//
// The State is immutable: Apply builds a new State that shares every
// unchanged topic and broker with the old one, and publishes it with an
// atomic pointer. Readers (Current) never lock, Snapshot only keeps the
// pointer, and Persist does the encoding and I/O outside the apply path.
package metadata
