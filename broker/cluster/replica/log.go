package replica

import "context"

// Log is what a follower needs from one partition's local log. The
// storage engine's *storage.Partition provides it once it has
// AppendAsFollower and TruncateFullyAndStartAt (see docs/broker-cluster.md,
// "Storage changes").
type Log interface {
	LogStartOffset() int64
	LogEndOffset() int64
	HighWatermark() int64
	SetHighWatermark(int64)
	// LatestEpoch is the newest leader epoch in the log, -1 if none.
	LatestEpoch() int32
	// FetchState is LogEndOffset, LatestEpoch and LogStartOffset read
	// together (one lock acquisition): what a follower's fetch names of
	// the partition each round.
	FetchState() (logEnd int64, latestEpoch int32, logStart int64)
	// EndOffsetForLeaderEpoch is the largest epoch <= epoch in the log and
	// its end offset (the next epoch's start, or the log end), as
	// OffsetForLeaderEpoch answers; (-1, -1) when there is none.
	EndOffsetForLeaderEpoch(epoch int32) (int32, int64)
	// TruncateTo cuts the log so that it ends at or below offset.
	TruncateTo(offset int64) error
	// TruncateFullyAndStartAt empties the log and makes offset its start
	// and end (the leader's log start passed the follower's end).
	TruncateFullyAndStartAt(offset int64) error
	// DeleteRecordsBefore moves the log start up to offset, at most the
	// high watermark (the leader's log start moved: DeleteRecords or
	// retention), and returns the new start.
	DeleteRecordsBefore(offset int64) (int64, error)
	// AppendAsFollower appends record batches exactly as the leader has
	// them: base offsets, partitionLeaderEpoch and timestamps kept, CRCs
	// checked, the first base offset >= LogEndOffset, offsets increasing;
	// the leader-epoch cache learns each batch's epoch and the producer
	// state each batch's producer sequence (so this replica can lead
	// later). It returns when the data is durable per the flush policy.
	// It keeps no reference to batches: the fetcher reads the next
	// response into the same memory.
	AppendAsFollower(ctx context.Context, batches []byte) error
}
