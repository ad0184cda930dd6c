package server

// TxnOffsetCommit: v0-4
//
// Behaviour:
//   - Offsets committed inside a transaction, served by the group
//     coordinator (the leader of __consumer_offsets; NOT_COORDINATOR
//     elsewhere): written to the offsets log as part of the producer's
//     transaction, after the transaction's coordinator confirmed that the
//     offsets partition is in it (AddOffsetsToTxn, KIP-890), and visible to
//     OffsetFetch only once the COMMIT marker is written; an abort drops
//     them. OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT
//     for a partition with such offsets pending (KIP-447).
//   - v3+ carry the consumer's generation, member id and group.instance.id
//     (KIP-447), checked against the group: ILLEGAL_GENERATION,
//     UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID.
//   - Refusals from the transaction check: INVALID_TXN_STATE (the offsets
//     partition is not in the transaction), INVALID_PRODUCER_EPOCH (fenced),
//     COORDINATOR_NOT_AVAILABLE (retriable: the transaction coordinator is
//     moving or the transaction is being decided).
//
// Version notes:
//   - v2: committed leader epoch; v3: group metadata, flexible.
//   - v5 (KIP-890 part 2, no AddOffsetsToTxn) and v6 (topic ids) are not
//     served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var txnOffsetCommitAPI = api{key: 28, min: 0, max: 4,
	handle: func(ctx context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.coordinator().TxnOffsetCommit(ctx, r.(*kmsg.TxnOffsetCommitRequest)), nil
	}}
