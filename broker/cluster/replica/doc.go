// Package replica is the data path of replication, Kafka's model: the
// leader side of a partition (Leader: follower progress, ISR changes, high
// watermark, acks=all waiters) and the follower side (Fetcher: a loop per
// source broker that fetches over the Kafka protocol with a replica id,
// truncates a diverged suffix using leader epochs, and appends the
// leader's batches with the leader's offsets).
//
// The server wires both in; docs/broker-cluster.md has the exact hooks.
package replica
