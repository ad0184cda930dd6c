package server

// AddOffsetsToTxn: v0-4
//
// Behaviour:
//   - Adds the group's partition of __consumer_offsets (there is one, so
//     partition 0) to the producer's transaction, as AddPartitionsToTxn
//     does, so that the group coordinator accepts the producer's
//     TxnOffsetCommit and the commit or abort marker reaches the offsets.
//     Codes as AddPartitionsToTxn's. The offsets topic is created if
//     needed (as FindCoordinator would), so its partition exists.
//   - Needs WRITE on the transactional id (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and READ on the group (else
//     GROUP_AUTHORIZATION_FAILED), as in Kafka.
//
// Version notes:
//   - v2: PRODUCER_FENCED (KIP-588); older versions get INVALID_PRODUCER_EPOCH.
//   - v3: flexible; v4: TRANSACTION_ABORTABLE may be answered (KIP-890); it
//     is not.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/txn"
)

var addOffsetsToTxnAPI = api{key: 25, min: 0, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleAddOffsetsToTxn(ctx, s.authFor(c, 25), r.(*kmsg.AddOffsetsToTxnRequest)), nil
	}}

func (s *Server) handleAddOffsetsToTxn(ctx context.Context, az reqAuth, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !az.allowed(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	case !az.allowed(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	p, ok := s.txnPartitionFor(req.TransactionalID)
	if !ok {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(0)) // the request carries no timeout
	defer cancel()
	if err := s.ensureOffsetsTopic(cctx); err != nil {
		s.log.Warn("creating the offsets topic for a transaction", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	code := s.txn.AddPartitions(ctx, p, req.TransactionalID, req.ProducerID, req.ProducerEpoch,
		[]txn.TopicPartition{{Topic: offsetsTopic, Partition: 0}})
	resp.ErrorCode = producerFencedFor(code, req.Version, 2)
	return resp
}
