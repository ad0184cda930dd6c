package server

// ListGroups: v0-5 (broker/groups does the work)
//
// Behaviour:
//   - DESCRIBE on the cluster lists every group; without it, only the
//     groups the principal may DESCRIBE are listed (no error).
//
// Version notes:
//   - v3: flexible; v4: state filter (KIP-518); v5: type filter (KIP-848).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
)

var listGroupsAPI = api{key: 16, min: 0, max: 5,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.ListGroupsRequest)
		az := s.authFor(c, 16)
		resp := s.coordinator().ListGroups(req)
		if az.allowedQuietly(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeCluster, authz.ClusterName) {
			return resp, nil
		}
		names := make([]string, len(resp.Groups))
		for i, g := range resp.Groups {
			names[i] = g.Group
		}
		denied := az.deniedQuietly(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, names)
		kept := resp.Groups[:0]
		for _, g := range resp.Groups {
			if !denied[g.Group] {
				kept = append(kept, g)
			}
		}
		resp.Groups = kept
		return resp, nil
	}}
