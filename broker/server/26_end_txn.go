package server

// EndTxn: v0-4
//
// Behaviour:
//   - Commits or aborts the producer's transaction at its coordinator
//     (broker/txn): the decision (PrepareCommit or PrepareAbort) is written
//     to the transaction log (acks=all) before the answer; the coordinator
//     then writes a COMMIT or ABORT marker to every partition of the
//     transaction through their leaders (WriteTxnMarkers, retried until
//     each is written) and records CompleteCommit or CompleteAbort. A
//     retry of a completed EndTxn with the same decision succeeds; one
//     still writing markers answers CONCURRENT_TRANSACTIONS; the other
//     decision, or no transaction open, INVALID_TXN_STATE; a fenced
//     producer PRODUCER_FENCED; NOT_COORDINATOR on the wrong broker.
//   - Needs WRITE on the transactional id (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
//
// Version notes:
//   - v2: PRODUCER_FENCED (KIP-588); older versions get INVALID_PRODUCER_EPOCH.
//   - v3: flexible; v4: TRANSACTION_ABORTABLE may be answered (KIP-890); it
//     is not.
//   - v5 (KIP-890 part 2: an epoch bump at every EndTxn) is not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var endTxnAPI = api{key: 26, min: 0, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleEndTxn(ctx, s.authFor(c, 26), r.(*kmsg.EndTxnRequest)), nil
	}}

func (s *Server) handleEndTxn(ctx context.Context, az reqAuth, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	if !az.allowed(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID) {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	p, ok := s.txnPartitionFor(req.TransactionalID)
	if !ok {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	code := s.txn.EndTxn(ctx, p, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
	resp.ErrorCode = producerFencedFor(code, req.Version, 2)
	return resp
}
