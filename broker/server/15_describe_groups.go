package server

// DescribeGroups: v0-6 (broker/groups does the work)
//
// Behaviour:
//   - State, protocol and members of each group; a stable group shows
//     member metadata and assignments.
//   - Needs DESCRIBE on each group (else GROUP_AUTHORIZATION_FAILED for
//     it). Authorized operations (v3+), when asked for, are the group
//     operations the principal may do.
//   - A group named again in the request answers INVALID_REQUEST (it is
//     described the first time only).
//
// Version notes:
//   - v3: authorized operations (KIP-430); v4: group.instance.id;
//     v5: flexible; v6: GROUP_ID_NOT_FOUND for unknown groups (KIP-1043).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var describeGroupsAPI = api{key: 15, min: 0, max: 6,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeGroups(ctx, s.authFor(c, 15), r.(*kmsg.DescribeGroupsRequest)), nil
	}}

func (s *Server) handleDescribeGroups(ctx context.Context, az reqAuth, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	denied := az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, req.Groups)
	// A group named again is answered INVALID_REQUEST, not described
	// again: a few bytes of request asked for every member's metadata and
	// assignment each time.
	repeated := make([]bool, len(req.Groups))
	seen := make(map[string]bool, len(req.Groups))
	allowed := *req
	allowed.Groups = nil
	for i, g := range req.Groups {
		if repeated[i] = seen[g]; repeated[i] {
			continue
		}
		seen[g] = true
		if !denied[g] {
			allowed.Groups = append(allowed.Groups, g)
		}
	}
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	var described *kmsg.DescribeGroupsResponse
	if len(allowed.Groups) > 0 {
		described = s.coordinator().DescribeGroups(&allowed)
	}
	j := 0
	for i, name := range req.Groups {
		if repeated[i] {
			g := kmsg.NewDescribeGroupsResponseGroup()
			g.Group, g.ErrorCode = name, kerr.InvalidRequest.Code
			resp.Groups = append(resp.Groups, g)
			continue
		}
		if denied[name] || described == nil || j >= len(described.Groups) {
			g := kmsg.NewDescribeGroupsResponseGroup()
			g.Group, g.ErrorCode = name, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, g)
			continue
		}
		g := described.Groups[j]
		j++
		if req.IncludeAuthorizedOperations {
			g.AuthorizedOperations = az.authorizedOperations(ctx, kmsg.ACLResourceTypeGroup, g.Group, groupOperations)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp
}
