package server

// InitProducerId: v0-5
//
// Behaviour:
//   - Idempotent (non-transactional) producers get a fresh producer id with
//     epoch 0 on every call, as Kafka does without a transactional id; a
//     KIP-360 epoch-bump request (v3+ with an existing id) also gets a fresh
//     id, which is equally safe for a non-transactional producer.
//   - Ids come from blocks reserved durably in the metadata, so no id is
//     ever handed out twice in the cluster, even across restarts.
//   - With a transactional id, the transaction coordinator of that id (the
//     leader of its partition of __transaction_state; NOT_COORDINATOR
//     elsewhere) answers (broker/txn): a new id gets a producer id at
//     epoch 0; a known one gets its epoch bumped, which fences the previous
//     incarnation of the producer; a transaction it left open is aborted
//     first (CONCURRENT_TRANSACTIONS, the client retries); an exhausted
//     epoch moves to a new producer id. The answer is written to the
//     transaction log (acks=all) first. transaction.timeout.ms above
//     transaction.max.timeout.ms is INVALID_TRANSACTION_TIMEOUT.
//   - A transactional id needs WRITE on it (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer needs
//     IDEMPOTENT_WRITE on the cluster or, as since Kafka 3.0 (KIP-679),
//     WRITE on at least one topic (else CLUSTER_AUTHORIZATION_FAILED); an
//     IAM principal authorized by its policies needs
//     kafka-cluster:WriteDataIdempotently, as on Amazon MSK.
//
// Version notes:
//   - v2: flexible; v3: ProducerID/ProducerEpoch for epoch bumps (KIP-360):
//     a transactional producer naming an epoch that is not its id's current
//     one (nor the previous one, a retry) is fenced.
//   - v4: PRODUCER_FENCED (KIP-588); older versions get
//     INVALID_PRODUCER_EPOCH instead.
//   - v5: TRANSACTION_ABORTABLE may be answered (KIP-890); it is not.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/txn"
)

var initProducerIDAPI = api{key: 22, min: 0, max: 5,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleInitProducerID(ctx, s.authFor(c, 22), r.(*kmsg.InitProducerIDRequest)), nil
	}}

func (s *Server) handleInitProducerID(ctx context.Context, az reqAuth, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil && !az.allowed(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionalID) {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	if req.TransactionalID == nil && !az.idempotentWriteAllowed(ctx) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	if req.TransactionalID != nil {
		id := *req.TransactionalID
		p, ok := s.txnPartitionFor(id)
		if !ok {
			resp.ErrorCode = kerr.NotCoordinator.Code
			return resp
		}
		ir := txn.InitRequest{TransactionalID: id, TimeoutMs: req.TransactionTimeoutMillis, ProducerID: -1, ProducerEpoch: -1}
		if req.Version >= 3 {
			ir.ProducerID, ir.ProducerEpoch = req.ProducerID, req.ProducerEpoch
		}
		pid, epoch, code := s.txn.InitProducerID(ctx, p, ir)
		resp.ErrorCode = producerFencedFor(code, req.Version, 4)
		if code == 0 {
			resp.ProducerID, resp.ProducerEpoch = pid, epoch
		}
		return resp
	}
	id, err := s.producerIDs.allocate()
	if err != nil {
		s.log.Error("allocating producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code // retriable
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
