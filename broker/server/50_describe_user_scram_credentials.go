package server

// DescribeUserScramCredentials: v0
//
// Behaviour:
//   - The mechanisms and iteration counts of users' SCRAM credentials
//     (never a salt or a key), from this broker's copy of the metadata
//     (KIP-554), once it has caught up with the active controller (at most
//     describeScramCatchUp; then from what it has): a password change that
//     keeps the iterations describes the same, so an administrator who
//     waits until every broker describes a change (the provider does) must
//     know the describing broker applied it. A null user list describes every user with a credential;
//     a named user without one is RESOURCE_NOT_FOUND, a user named twice
//     DUPLICATE_RESOURCE, both per user.
//   - Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED for the
//     whole request otherwise), through the broker's authorizer.
//
// Version notes:
//   - v0 is flexible; it is the only version.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/scram"
)

// describeScramCatchUp bounds the wait to catch up with the active
// controller before a describe (a round trip when nothing is behind).
const describeScramCatchUp = 5 * time.Second

var describeUserScramCredentialsAPI = api{key: 50, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeUserScramCredentials(ctx, s.authFor(c, 50), r.(*kmsg.DescribeUserSCRAMCredentialsRequest)), nil
	}}

func (s *Server) handleDescribeUserScramCredentials(ctx context.Context, az reqAuth, req *kmsg.DescribeUserSCRAMCredentialsRequest) *kmsg.DescribeUserSCRAMCredentialsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !az.cluster(ctx, kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	cctx, cancel := context.WithTimeout(ctx, describeScramCatchUp)
	if err := s.node.Controller.WaitCaughtUpWithController(cctx); err != nil {
		s.log.Debug("describing SCRAM credentials from the metadata this broker has", "err", err)
	}
	cancel()
	st := s.node.Controller.State()
	var users []string
	if req.Users == nil {
		users = st.ScramUsers()
	} else {
		for _, u := range req.Users {
			users = append(users, u.Name)
		}
	}
	count := map[string]int{}
	for _, u := range users {
		count[u]++
	}
	for i, u := range users {
		if count[u] > 1 && slices.Index(users, u) != i {
			continue // one result per name
		}
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = u
		switch {
		case count[u] > 1:
			r.ErrorCode = kerr.DuplicateResource.Code
			msg := "cannot describe the SCRAM credentials of the same user twice in one request"
			r.ErrorMessage = &msg
		default:
			for _, m := range []scram.Mechanism{scram.SHA256, scram.SHA512} {
				rec, ok := st.ScramCredential(u, m.String())
				if !ok {
					continue
				}
				var cred scram.Credential
				if err := cred.UnmarshalBinary(rec); err != nil {
					continue // logged by the SCRAM store at login; not describable
				}
				info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
				info.Mechanism, info.Iterations = int8(m), int32(cred.Iterations)
				r.CredentialInfos = append(r.CredentialInfos, info)
			}
			if len(r.CredentialInfos) == 0 {
				r.ErrorCode = kerr.ResourceNotFound.Code
				msg := fmt.Sprintf("user %q has no SCRAM credential", u)
				r.ErrorMessage = &msg
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}
