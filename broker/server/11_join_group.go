package server

// JoinGroup: v0-9 (broker/groups does the work)
//
// Behaviour:
//   - Classic group join; blocks this connection until the join phase of the
//     group completes (the rebalance timeout at most), as Kafka does: requests
//     of one connection are processed in order, one at a time.
//   - The connection's context ends the wait when the client goes away or the
//     broker stops (COORDINATOR_NOT_AVAILABLE).
//   - The client id and address are recorded for DescribeGroups.
//   - Needs READ on the group (else GROUP_AUTHORIZATION_FAILED).
//
// Version notes:
//   - v1 adds the rebalance timeout; kafka-go sends v1/v2, so there is no floor.
//   - v4: MEMBER_ID_REQUIRED (KIP-394); v5: static membership (KIP-345);
//     v6: flexible; v7: protocol type; v9: skip assignment (KIP-814).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/groups"
)

var joinGroupAPI = api{key: 11, min: 0, max: 9,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.JoinGroupRequest)
		if !s.authFor(c, 11).allowed(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
			resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return resp, nil
		}
		return s.coordinator().JoinGroup(ctx, groups.Client{ID: c.clientID, Host: c.remoteHost()}, req), nil
	}}
