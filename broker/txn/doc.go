// Package txn is the transaction coordinator of the Tributary broker
// (KIP-98, with KIP-360 epoch bumps, KIP-447 and KIP-890 part 1): for each
// transactional id it keeps the producer id and epoch, the transaction's
// state (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
// CompleteAbort, Dead) and the partitions in it, writes every change to a
// partition of the internal topic __transaction_state before it answers,
// and drives the COMMIT or ABORT markers to the partitions' leaders once a
// transaction is decided.
//
// A transactional id belongs to partition PartitionFor(id, n) of
// __transaction_state (Kafka's choice: Java's String.hashCode modulo the
// partition count), and is coordinated by that partition's leader. The
// server loads a shard (Coordinator.Load) for each partition it leads, with
// the partition's leader epoch as the coordinator epoch written into the
// markers, and unloads it when the leadership moves. Loading replays the
// partition's log; transactions found decided but not completed get their
// markers sent again, so a coordinator's crash between the decision and the
// last marker loses nothing.
//
// Every method answers with Kafka error codes, never Go errors: the server
// puts them in the response. A write to the log that fails is answered
// COORDINATOR_NOT_AVAILABLE (NOT_COORDINATOR when the leadership moved) and
// the shard stops: it is loaded again from the log, so the state in memory
// is always the state the log replays to.
//
// # Concurrency
//
// A shard's mutex guards its transactions. A change is decided under the
// mutex, marked pending (other requests for the id answer
// CONCURRENT_TRANSACTIONS meanwhile, except AddPartitions, which waits for
// the change to end, up to Config.ConcurrentWait), written to the log
// without the mutex, and applied under it again. Marker rounds run on their own goroutines,
// one per decided transaction, until every partition has its marker or the
// shard is unloaded.
package txn
