package server

// Heartbeat: v0-4 (broker/groups does the work)
//
// Behaviour:
//   - Keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.
//   - Needs READ on the group (else GROUP_AUTHORIZATION_FAILED).
//
// Version notes:
//   - v0 is kafka-go's version: no floor. v3: group.instance.id; v4: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var heartbeatAPI = api{key: 12, min: 0, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.HeartbeatRequest)
		if !s.authFor(c, 12).allowed(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
			resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return resp, nil
		}
		return s.coordinator().Heartbeat(req), nil
	}}
