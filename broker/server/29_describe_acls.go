package server

// DescribeAcls: v1-3
//
// Behaviour:
//   - Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED).
//   - Returns the ACLs of this broker's metadata state that the filter
//     matches, as Kafka's AclBindingFilter: ANY pattern type matches every
//     pattern with the exact name; MATCH with a name selects the ACLs that
//     apply to that resource (the literal name, the literal "*" and every
//     prefix of it); a null name, principal or host matches anything.
//   - A filter with an UNKNOWN part is INVALID_REQUEST.
//   - ACLs are grouped by resource pattern, in a stable order.
//
// Version notes:
//   - v0 (no pattern type) was removed by Kafka 4 (KIP-896).
//   - v1: pattern type (KIP-290); v2: flexible; v3: USER resources (KIP-554).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
)

var describeACLsAPI = api{key: 29, min: 1, max: 3,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeACLs(ctx, s.authFor(c, 29), r.(*kmsg.DescribeACLsRequest)), nil
	}}

func (s *Server) handleDescribeACLs(ctx context.Context, az reqAuth, req *kmsg.DescribeACLsRequest) *kmsg.DescribeACLsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if !az.cluster(ctx, kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	f := authz.FilterFromDescribe(req)
	if err := f.Validate(); err != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		msg := err.Error()
		resp.ErrorMessage = &msg
		return resp
	}
	for _, b := range s.meta.ACLs().Describe(f) {
		n := len(resp.Resources)
		if n == 0 || resp.Resources[n-1].ResourceType != b.Pattern.Type || resp.Resources[n-1].ResourceName != b.Pattern.Name ||
			resp.Resources[n-1].ResourcePatternType != b.Pattern.PatternType {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = b.Pattern.Type, b.Pattern.Name, b.Pattern.PatternType
			resp.Resources = append(resp.Resources, r)
			n++
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host, a.Operation, a.PermissionType = b.Entry.Principal, b.Entry.Host, b.Entry.Operation, b.Entry.Permission
		resp.Resources[n-1].ACLs = append(resp.Resources[n-1].ACLs, a)
	}
	return resp
}
