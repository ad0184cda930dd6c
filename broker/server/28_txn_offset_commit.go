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
//   - Needs WRITE on the transactional id (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED on every partition), READ on
//     the group (else GROUP_AUTHORIZATION_FAILED on every partition) and
//     READ on each topic (else TOPIC_AUTHORIZATION_FAILED on its
//     partitions; the others are committed), as in Kafka.
//
// Version notes:
//   - v2: committed leader epoch; v3: group metadata, flexible.
//   - v5 (KIP-890 part 2, no AddOffsetsToTxn) and v6 (topic ids) are not
//     served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var txnOffsetCommitAPI = api{key: 28, min: 0, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleTxnOffsetCommit(ctx, s.authFor(c, 28), r.(*kmsg.TxnOffsetCommitRequest)), nil
	}}

func (s *Server) handleTxnOffsetCommit(ctx context.Context, az reqAuth, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	switch {
	case !az.allowed(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		return txnOffsetCommitErrors(req, req.Topics, kerr.TransactionalIDAuthorizationFailed.Code)
	case !az.allowed(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		return txnOffsetCommitErrors(req, req.Topics, kerr.GroupAuthorizationFailed.Code)
	}
	denied := az.denied(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, topicNames(req.Topics, txnOffsetCommitTopic))
	if denied == nil {
		return s.coordinator().TxnOffsetCommit(ctx, req)
	}
	resp := txnOffsetCommitErrors(req, req.Topics, kerr.TopicAuthorizationFailed.Code)
	resp.Topics = commitPermitted(req.Topics, txnOffsetCommitTopic, denied, resp.Topics, func(allowed []kmsg.TxnOffsetCommitRequestTopic) []kmsg.TxnOffsetCommitResponseTopic {
		only := *req
		only.Topics = allowed
		return s.coordinator().TxnOffsetCommit(ctx, &only).Topics
	})
	return resp
}

func txnOffsetCommitTopic(t kmsg.TxnOffsetCommitRequestTopic) string { return t.Topic }

// txnOffsetCommitErrors answers every partition of topics with code.
func txnOffsetCommitErrors(req *kmsg.TxnOffsetCommitRequest, topics []kmsg.TxnOffsetCommitRequestTopic, code int16) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
