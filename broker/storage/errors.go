package storage

import (
	"errors"
	"syscall"
)

// Errors returned by the storage API. They are wrapped with detail; test with
// errors.Is. Each maps to one Kafka error code, noted in the comment.
var (
	// ErrCorruptMessage: a batch failed its CRC or length checks (CORRUPT_MESSAGE).
	ErrCorruptMessage = errors.New("corrupt message")
	// ErrRecordTooLarge: a batch is larger than max.message.bytes (MESSAGE_TOO_LARGE).
	ErrRecordTooLarge = errors.New("record batch too large")
	// ErrInvalidRecord: a well-formed batch that breaks a rule, e.g. a
	// compacted topic record without a key (INVALID_RECORD).
	ErrInvalidRecord = errors.New("invalid record")
	// ErrUnsupportedMessageFormat: magic below 2 (UNSUPPORTED_FOR_MESSAGE_FORMAT).
	ErrUnsupportedMessageFormat = errors.New("unsupported message format")
	// ErrOutOfOrderSequence: an idempotent producer skipped or repeated a
	// sequence number (OUT_OF_ORDER_SEQUENCE_NUMBER).
	ErrOutOfOrderSequence = errors.New("out of order sequence number")
	// ErrInvalidProducerEpoch: a batch or transaction marker from an older
	// producer epoch (INVALID_PRODUCER_EPOCH; Kafka 2.7+ answers a produce
	// so, not PRODUCER_FENCED, which only the transaction coordinator
	// returns, and clients abort the transaction and go on).
	ErrInvalidProducerEpoch = errors.New("invalid producer epoch")
	// ErrUnknownProducerID: a producer this partition has no state for sent a
	// non-zero first sequence (UNKNOWN_PRODUCER_ID).
	ErrUnknownProducerID = errors.New("unknown producer id")
	// ErrInvalidTxnState: a transactional batch that is not part of a
	// transaction verified with the coordinator, or a non-transactional one
	// from a producer in the middle of a transaction (INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("invalid transaction state")
	// ErrTransactionCoordinatorFenced: a transaction marker from a
	// coordinator epoch older than the last marker's
	// (TRANSACTION_COORDINATOR_FENCED).
	ErrTransactionCoordinatorFenced = errors.New("transaction coordinator fenced")
	// ErrOffsetOutOfRange: a read or DeleteRecords outside the log (OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrStorage: the disk failed (full, I/O error). The log is left
	// consistent; later writes may succeed (KAFKA_STORAGE_ERROR).
	ErrStorage = errors.New("storage error")
	// ErrFencedLeaderEpoch: a leader append at an epoch this replica has
	// moved past (FenceLeaderEpoch): it no longer leads at that epoch
	// (NOT_LEADER_OR_FOLLOWER; the producer refreshes its metadata).
	ErrFencedLeaderEpoch = errors.New("fenced leader epoch")
	// ErrClosed: the store or partition was closed or deleted (NOT_LEADER_OR_FOLLOWER
	// or UNKNOWN_TOPIC_OR_PARTITION, as the caller sees fit).
	ErrClosed = errors.New("partition closed")
	// ErrTopicIDMismatch: the log on disk was created for another topic
	// of the same name (deleted and created again): it is not this
	// topic's replica (UNKNOWN_TOPIC_ID; the replica manager deletes it).
	ErrTopicIDMismatch = errors.New("log belongs to another topic id")
)

// NoSpace reports whether err is a write the file system refused for lack
// of space: ENOSPC, or EDQUOT (a disk quota on the data directory). Such
// a write failed before the log end moved, so the log is whole (unlike
// after a failed fsync, see Cut), and a later one succeeds once space is
// freed.
func NoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
