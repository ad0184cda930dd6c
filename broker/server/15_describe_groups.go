package server

// DescribeGroups: v0-6 (broker/groups does the work)
//
// Behaviour:
//   - State, protocol and members of each group; a stable group shows
//     member metadata and assignments.
//   - Authorized operations (v3+), when asked for, are all group
//     operations: there is no authorizer yet.
//
// Version notes:
//   - v3: authorized operations (KIP-430); v4: group.instance.id;
//     v5: flexible; v6: GROUP_ID_NOT_FOUND for unknown groups (KIP-1043).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var describeGroupsAPI = api{key: 15, min: 0, max: 6,
	handle: func(_ context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.DescribeGroupsRequest)
		resp := s.coordinator().DescribeGroups(req)
		if req.IncludeAuthorizedOperations {
			for i := range resp.Groups {
				resp.Groups[i].AuthorizedOperations = groupOps
			}
		}
		return resp, nil
	}}

// groupOps are the group ACL operations: READ, DELETE, DESCRIBE.
var groupOps = opsBits(aclRead, aclDelete, aclDescribe)
