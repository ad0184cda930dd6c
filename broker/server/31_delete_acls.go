package server

// DeleteAcls: v1-3
//
// Behaviour:
//   - Needs ALTER on the cluster; without it every filter answers
//     CLUSTER_AUTHORIZATION_FAILED.
//   - Each filter matches as Kafka's AclBindingFilter (see DescribeAcls);
//     a filter with an UNKNOWN part answers INVALID_REQUEST and deletes
//     nothing, the others of the request go on.
//   - The valid filters are applied in one change of the metadata log;
//     each answers the ACLs it matched (an ACL two filters match is listed
//     under both, deleted once). The response is sent once this broker no
//     longer authorizes with them.
//
// Version notes:
//   - v0 (no pattern type) was removed by Kafka 4 (KIP-896).
//   - v1: pattern type (KIP-290); v2: flexible; v3: USER resources (KIP-554).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/authz"
)

var deleteACLsAPI = api{key: 31, min: 1, max: 3,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDeleteACLs(ctx, s.authFor(c, 31), r.(*kmsg.DeleteACLsRequest)), nil
	}}

func (s *Server) handleDeleteACLs(ctx context.Context, az reqAuth, req *kmsg.DeleteACLsRequest) *kmsg.DeleteACLsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	for i := range resp.Results {
		resp.Results[i] = kmsg.NewDeleteACLsResponseResult()
	}
	if len(req.Filters) == 0 {
		return resp
	}
	if !az.cluster(ctx, kmsg.ACLOperationAlter) {
		for i := range resp.Results {
			resp.Results[i].ErrorCode = kerr.ClusterAuthorizationFailed.Code
		}
		return resp
	}
	var (
		filters []metadata.ACLFilter
		idx     []int
	)
	for i, rf := range req.Filters {
		f := authz.FilterFromDelete(rf)
		if err := f.Validate(); err != nil {
			setACLError(&resp.Results[i].ErrorCode, &resp.Results[i].ErrorMessage, kerr.InvalidRequest.Code, err)
			continue
		}
		filters, idx = append(filters, metadata.ACLFilterFrom(f)), append(idx, i)
	}
	if len(filters) == 0 {
		return resp
	}
	// The request carries no timeout: the broker's bound for such
	// requests (untimedAdminTimeout).
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	matched, err := s.meta.DeleteACLs(cctx, filters)
	if err != nil {
		code := aclChangeErrorCode(err)
		for _, i := range idx {
			setACLError(&resp.Results[i].ErrorCode, &resp.Results[i].ErrorMessage, code, err)
		}
		s.log.Warn("deleting ACLs failed", "filters", len(filters), "err", err)
		return resp
	}
	deleted := map[metadata.ACL]bool{}
	for j, i := range idx {
		if j >= len(matched) {
			break
		}
		for _, a := range matched[j] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = a.ResourceType, a.ResourceName, a.PatternType
			m.Principal, m.Host, m.Operation, m.PermissionType = a.Principal, a.Host, a.Operation, a.Permission
			resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, m)
			if !deleted[a] {
				deleted[a] = true
				s.audit.Changed(ctx, az.auditRequest(), "ACL deleted", a.Binding().String())
			}
		}
	}
	return resp
}
