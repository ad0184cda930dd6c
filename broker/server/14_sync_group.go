package server

// SyncGroup: v0-5 (broker/groups does the work)
//
// Behaviour:
//   - The leader's request carries the assignment; a follower's blocks until
//     the leader's arrives or the generation ends.
//   - Needs READ on the group (else GROUP_AUTHORIZATION_FAILED).
//
// Version notes:
//   - v0 is kafka-go's version: no floor.
//   - v3: group.instance.id; v4: flexible; v5: protocol type and name.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var syncGroupAPI = api{key: 14, min: 0, max: 5,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.SyncGroupRequest)
		if !s.authFor(c, 14).allowed(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
			resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return resp, nil
		}
		return s.coordinator().SyncGroup(ctx, req), nil
	}}
