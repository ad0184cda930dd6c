package server

// DeleteGroups: v0-2 (broker/groups does the work)
//
// Behaviour:
//   - Deletes empty groups and their offsets; NON_EMPTY_GROUP otherwise.
//   - Needs DELETE on each group (else GROUP_AUTHORIZATION_FAILED for it).
//
// Version notes:
//   - v2: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var deleteGroupsAPI = api{key: 42, min: 0, max: 2,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.DeleteGroupsRequest)
		denied := s.authFor(c, 42).denied(ctx, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, req.Groups)
		if denied == nil {
			return s.coordinator().DeleteGroups(ctx, req), nil
		}
		allowed := *req
		allowed.Groups = nil
		for _, g := range req.Groups {
			if !denied[g] {
				allowed.Groups = append(allowed.Groups, g)
			}
		}
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		if len(allowed.Groups) > 0 {
			resp.Groups = s.coordinator().DeleteGroups(ctx, &allowed).Groups
		}
		for _, g := range req.Groups {
			if denied[g] {
				rg := kmsg.NewDeleteGroupsResponseGroup()
				rg.Group, rg.ErrorCode = g, kerr.GroupAuthorizationFailed.Code
				resp.Groups = append(resp.Groups, rg)
			}
		}
		return resp, nil
	}}
