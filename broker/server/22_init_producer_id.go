package server

// InitProducerId: v0-5
//
// Behaviour:
//   - Idempotent (non-transactional) producers get a fresh producer id with
//     epoch 0 on every call, as Kafka does without a transactional id; a
//     KIP-360 epoch-bump request (v3+ with an existing id) also gets a fresh
//     id, which is equally safe for a non-transactional producer.
//   - Ids come from blocks reserved durably in the metadata, so no id is
//     ever handed out twice by this broker, even across restarts.
//   - A transactional id is refused with INVALID_REQUEST: transactions are
//     not served yet (and the transaction APIs are not advertised).
//   - A transactional id needs WRITE on it (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer needs
//     IDEMPOTENT_WRITE on the cluster or, as since Kafka 3.0 (KIP-679),
//     WRITE on at least one topic (else CLUSTER_AUTHORIZATION_FAILED); an
//     IAM principal authorized by its policies needs
//     kafka-cluster:WriteDataIdempotently, as on Amazon MSK.
//
// Version notes:
//   - v2: flexible; v3: ProducerID/ProducerEpoch for epoch bumps (KIP-360);
//     v4: PRODUCER_FENCED; v5: KIP-890 (transactions only).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
		resp.ErrorCode = kerr.InvalidRequest.Code
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
