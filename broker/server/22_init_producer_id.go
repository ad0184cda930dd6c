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
	handle: func(_ context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleInitProducerID(r.(*kmsg.InitProducerIDRequest)), nil
	}}

func (s *Server) handleInitProducerID(req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
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
