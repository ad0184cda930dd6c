package server

// FindCoordinator: v0-5
//
// Behaviour:
//   - A single node coordinates every group: the answer is this broker.
//   - Transaction coordinators (key type 1) answer
//     COORDINATOR_NOT_AVAILABLE with a message: transactions are not served.
//   - v4+ batches several keys in one request (KIP-699).
//
// Version notes:
//   - v0: kafka-go's version (no floor above it); v1: key type, error message
//   - v3: flexible; v4: batched keys; v6 (share groups) not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var findCoordinatorAPI = api{key: 10, min: 0, max: 5,
	handle: func(_ context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleFindCoordinator(r.(*kmsg.FindCoordinatorRequest)), nil
	}}

const (
	coordinatorGroup = 0
	coordinatorTxn   = 1
)

func (s *Server) handleFindCoordinator(req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	answer := func() (int16, *string) {
		if req.CoordinatorType != coordinatorGroup {
			msg := "only consumer group coordinators are served; transactions are not supported yet"
			return kerr.CoordinatorNotAvailable.Code, &msg
		}
		return 0, nil
	}
	if req.Version < 4 {
		code, msg := answer()
		resp.ErrorCode, resp.ErrorMessage = code, msg
		if code == 0 {
			resp.NodeID, resp.Host, resp.Port = s.nodeID, s.host, s.port
		} else {
			resp.NodeID, resp.Port = -1, -1
		}
		return resp
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.ErrorCode, c.ErrorMessage = answer()
		if c.ErrorCode == 0 {
			c.NodeID, c.Host, c.Port = s.nodeID, s.host, s.port
		} else {
			c.NodeID, c.Port = -1, -1
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp
}
