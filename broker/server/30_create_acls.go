package server

// CreateAcls: v1-3
//
// Behaviour:
//   - Needs ALTER on the cluster; without it every creation answers
//     CLUSTER_AUTHORIZATION_FAILED.
//   - Each ACL is checked as Kafka does (authz.Binding.Validate): a
//     concrete resource type, LITERAL or PREFIXED, a name ("kafka-cluster"
//     for the cluster), a concrete operation and permission, a Type:name
//     principal, a host that is an IP address or "*". An invalid one
//     answers INVALID_REQUEST with the reason; the valid ones of the same
//     request are created.
//   - The valid ACLs are stored in the metadata log in one change; the
//     response is sent once this broker authorizes with them, and every
//     other broker does within its metadata lag. Creating an ACL that
//     exists is a success that changes nothing.
//   - The request carries no timeout: past 8 s without the metadata
//     quorum's commit every creation answers REQUEST_TIMED_OUT
//     (retriable; the ACLs may still be created), before franz-go's 10 s
//     read deadline.
//
// Version notes:
//   - v0 (no pattern type) was removed by Kafka 4 (KIP-896).
//   - v1: pattern type (KIP-290); v2: flexible; v3: USER resources (KIP-554).

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/authz"
)

var createACLsAPI = api{key: 30, min: 1, max: 3,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleCreateACLs(ctx, s.authFor(c, 30), r.(*kmsg.CreateACLsRequest)), nil
	}}

func (s *Server) handleCreateACLs(ctx context.Context, az reqAuth, req *kmsg.CreateACLsRequest) *kmsg.CreateACLsResponse {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	for i := range resp.Results {
		resp.Results[i] = kmsg.NewCreateACLsResponseResult()
	}
	if len(req.Creations) == 0 {
		return resp
	}
	if !az.cluster(ctx, kmsg.ACLOperationAlter) {
		for i := range resp.Results {
			resp.Results[i].ErrorCode = kerr.ClusterAuthorizationFailed.Code
		}
		return resp
	}
	var (
		acls []metadata.ACL
		idx  []int
	)
	for i, cr := range req.Creations {
		b := authz.BindingFromCreation(cr)
		if err := b.Validate(); err != nil {
			setACLError(&resp.Results[i].ErrorCode, &resp.Results[i].ErrorMessage, kerr.InvalidRequest.Code, err)
			continue
		}
		acls, idx = append(acls, metadata.ACLFromBinding(b)), append(idx, i)
	}
	if len(acls) == 0 {
		return resp
	}
	// The request carries no timeout: the broker's bound for such
	// requests (untimedAdminTimeout).
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	if err := s.meta.CreateACLs(cctx, acls); err != nil {
		code := aclChangeErrorCode(err)
		for _, i := range idx {
			setACLError(&resp.Results[i].ErrorCode, &resp.Results[i].ErrorMessage, code, err)
		}
		s.log.Warn("creating ACLs failed", "acls", len(acls), "err", err)
		return resp
	}
	for _, a := range acls {
		s.audit.Changed(ctx, az.auditRequest(), "ACL created", a.Binding().String())
	}
	return resp
}

// aclChangeErrorCode maps a failed ACL change in the metadata log to a
// Kafka code.
func aclChangeErrorCode(err error) int16 {
	switch {
	case errors.Is(err, metadata.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, metadata.ErrPolicyViolation): // over cluster.MaxRecordsPerUserOp
		return kerr.PolicyViolation.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}

func setACLError(code *int16, msg **string, c int16, err error) {
	*code = c
	m := err.Error()
	*msg = &m
}
