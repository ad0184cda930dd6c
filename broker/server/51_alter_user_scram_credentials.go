package server

// AlterUserScramCredentials: v0
//
// Behaviour:
//   - Upserts and deletes SCRAM credentials (KIP-554) in the metadata log:
//     an upsertion carries the salt, the salted password and the iteration
//     count (never the password), from which the broker keeps the stored
//     and server keys; it reaches every broker with the metadata log, and
//     this broker reads it back before it answers.
//   - One result per user, in request order, each user's changes applied
//     all or nothing: an unknown mechanism is UNSUPPORTED_SASL_MECHANISM;
//     an empty or unusable name, iterations outside 4096-16384, a salt or
//     salted password of the wrong size UNACCEPTABLE_CREDENTIAL; the same
//     (user, mechanism) twice DUPLICATE_RESOURCE; deleting a credential
//     the user does not have RESOURCE_NOT_FOUND.
//   - Needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED for every
//     user otherwise).
//
// Version notes:
//   - v0 is flexible; it is the only version.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/scram"
)

var alterUserScramCredentialsAPI = api{key: 51, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleAlterUserScramCredentials(ctx, s.authFor(c, 51), r.(*kmsg.AlterUserSCRAMCredentialsRequest)), nil
	}}

// scramUserError is one user's refusal.
type scramUserError struct {
	code int16
	msg  string
}

func (s *Server) handleAlterUserScramCredentials(ctx context.Context, az reqAuth, req *kmsg.AlterUserSCRAMCredentialsRequest) *kmsg.AlterUserSCRAMCredentialsResponse {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	// Users in the order they first appear.
	var users []string
	seen := map[string]bool{}
	note := func(u string) {
		if !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	for _, d := range req.Deletions {
		note(d.Name)
	}
	for _, u := range req.Upsertions {
		note(u.Name)
	}
	result := func(u string, e *scramUserError) kmsg.AlterUserSCRAMCredentialsResponseResult {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = u
		if e != nil {
			r.ErrorCode, r.ErrorMessage = e.code, &e.msg
		}
		return r
	}
	if !az.cluster(ctx, kmsg.ACLOperationAlter) {
		denied := &scramUserError{kerr.ClusterAuthorizationFailed.Code, fmt.Sprintf("%s is not allowed ALTER on the cluster", az.rc.Principal)}
		for _, u := range users {
			resp.Results = append(resp.Results, result(u, denied))
		}
		return resp
	}

	// Check each user's changes; the valid users go to the metadata log
	// in one command.
	failed := map[string]*scramUserError{}
	fail := func(u string, code int16, format string, args ...any) {
		if failed[u] == nil {
			failed[u] = &scramUserError{code, fmt.Sprintf(format, args...)}
		}
	}
	alter := map[string]*metadata.ScramUserAlteration{}
	touched := map[[2]string]bool{}
	check := func(user string, mech int8) (scram.Mechanism, bool) {
		m := scram.Mechanism(mech)
		switch {
		case user == "":
			fail(user, kerr.UnacceptableCredential.Code, "a user name must not be empty")
		case scram.ValidateUsername(user) != nil:
			fail(user, kerr.UnacceptableCredential.Code, "%v", scram.ValidateUsername(user))
		case !m.Valid():
			fail(user, kerr.UnsupportedSaslMechanism.Code, "unknown SCRAM mechanism %d (1: SCRAM-SHA-256, 2: SCRAM-SHA-512)", mech)
		case touched[[2]string{user, m.String()}]:
			fail(user, kerr.DuplicateResource.Code, "user %q: %s is named twice in one request", user, m)
		default:
			touched[[2]string{user, m.String()}] = true
			if alter[user] == nil {
				alter[user] = &metadata.ScramUserAlteration{User: user}
			}
			return m, true
		}
		return 0, false
	}
	for _, d := range req.Deletions {
		if m, ok := check(d.Name, d.Mechanism); ok {
			alter[d.Name].Deletions = append(alter[d.Name].Deletions, m.String())
		}
	}
	for _, u := range req.Upsertions {
		m, ok := check(u.Name, u.Mechanism)
		if !ok {
			continue
		}
		cred, err := scram.CredentialFromSaltedPassword(m, u.Salt, u.SaltedPassword, int(u.Iterations))
		if err != nil {
			fail(u.Name, kerr.UnacceptableCredential.Code, "user %q: %v", u.Name, err)
			continue
		}
		rec, err := cred.MarshalBinary()
		if err != nil {
			fail(u.Name, kerr.UnacceptableCredential.Code, "user %q: %v", u.Name, err)
			continue
		}
		alter[u.Name].Upsertions = append(alter[u.Name].Upsertions, metadata.ScramRecord{Mechanism: m.String(), Record: rec})
	}
	var cmd metadata.AlterScramCredentials
	for _, u := range users {
		if failed[u] == nil {
			cmd.Users = append(cmd.Users, *alter[u])
		}
	}
	if len(cmd.Users) > 0 {
		// The request carries no timeout: the broker's bound for
		// such requests (untimedAdminTimeout), past which
		// REQUEST_TIMED_OUT.
		cctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
		defer cancel()
		res, err := s.meta.AlterScramCredentials(cctx, cmd)
		for i, ua := range cmd.Users {
			e := err
			if e == nil && i < len(res) {
				e = res[i]
			}
			switch {
			case e == nil:
				s.log.Info("SCRAM credentials changed", "user", ua.User, "upserted", len(ua.Upsertions), "deleted", len(ua.Deletions), "by", az.rc.Principal)
			case errors.Is(e, metadata.ErrResourceNotFound):
				fail(ua.User, kerr.ResourceNotFound.Code, "%v", e)
			case errors.Is(e, metadata.ErrInvalidRequest):
				fail(ua.User, kerr.UnacceptableCredential.Code, "%v", e)
			case errors.Is(e, metadata.ErrPolicyViolation): // over cluster.MaxRecordsPerUserOp
				fail(ua.User, kerr.PolicyViolation.Code, "%v", e)
			default:
				fail(ua.User, kerr.RequestTimedOut.Code, "the metadata quorum did not take the change: %v", e)
			}
		}
	}
	for _, u := range users {
		resp.Results = append(resp.Results, result(u, failed[u]))
	}
	return resp
}
