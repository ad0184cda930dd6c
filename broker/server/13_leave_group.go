package server

// LeaveGroup: v0-5 (broker/groups does the work)
//
// Behaviour:
//   - Removes members (one in v0-2, a batch from v3) and rebalances the rest.
//   - Needs READ on the group (else GROUP_AUTHORIZATION_FAILED).
//
// Version notes:
//   - v0 is kafka-go's version: no floor. v3: batch (KIP-345); v4: flexible;
//     v5: reason (KIP-800).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var leaveGroupAPI = api{key: 13, min: 0, max: 5,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.LeaveGroupRequest)
		if !s.authFor(c, 13).allowed(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
			resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return resp, nil
		}
		return s.coordinator().LeaveGroup(req), nil
	}}
