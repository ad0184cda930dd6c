package server

// AlterClientQuotas: v0-1
//
// Behaviour:
//   - Sets and removes client quotas (KIP-546) in the metadata log, from
//     which every broker enforces them within moments (package
//     broker/quota); this broker reads the change back and enforces it
//     before it answers.
//   - Entities: user, client-id, user and client-id, or ip, each named or
//     the default (a null name, Kafka's <default>). An ip name is stored in
//     canonical form ("::0001" as "::1", "::ffff:10.0.0.1" as "10.0.0.1"),
//     as Kafka compares ip entities as addresses; a name that is not an
//     address (or an IPv4 address with a leading zero, which Go's parser
//     refuses as ambiguous) is INVALID_REQUEST. Keys: producer_byte_rate,
//     consumer_byte_rate and request_percentage for user and client-id
//     entities, connection_creation_rate for ip entities, as in Kafka.
//     Values are positive and finite, whole numbers but for
//     request_percentage.
//   - One result per entry, each all or nothing: a bad entity, an unknown
//     key, a key that does not apply to the entity, a key twice, a bad
//     value or an entity already altered by an earlier entry of the
//     request is INVALID_REQUEST with the reason. validate_only checks
//     without changing anything.
//   - Needs ALTER_CONFIGS on the cluster, as in Kafka
//     (CLUSTER_AUTHORIZATION_FAILED for every entry otherwise).
//
// Version notes:
//   - v1 is flexible.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

var alterClientQuotasAPI = api{key: 49, min: 0, max: 1,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleAlterClientQuotas(ctx, s.authFor(c, 49), r.(*kmsg.AlterClientQuotasRequest)), nil
	}}

func (s *Server) handleAlterClientQuotas(ctx context.Context, az reqAuth, req *kmsg.AlterClientQuotasRequest) *kmsg.AlterClientQuotasResponse {
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	results := make([]kmsg.AlterClientQuotasResponseEntry, len(req.Entries))
	entities := make([]metadata.QuotaEntity, len(req.Entries))
	for i, e := range req.Entries {
		r := kmsg.NewAlterClientQuotasResponseEntry()
		for _, p := range e.Entity {
			re := kmsg.NewAlterClientQuotasResponseEntryEntity()
			re.Type, re.Name = p.Type, p.Name
			r.Entity = append(r.Entity, re)
			entities[i] = append(entities[i], metadata.QuotaEntityPart{Type: p.Type, Name: p.Name})
		}
		results[i] = r
	}
	fail := func(i int, code int16, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		results[i].ErrorCode, results[i].ErrorMessage = code, &msg
	}
	defer func() { resp.Entries = results }()
	if !az.cluster(ctx, kmsg.ACLOperationAlterConfigs) {
		for i := range results {
			fail(i, kerr.ClusterAuthorizationFailed.Code, "%s is not allowed ALTER_CONFIGS on the cluster", az.rc.Principal)
		}
		return resp
	}

	var cmd metadata.AlterClientQuotas
	var index []int // the request entry of each command entry
	seen := map[string]bool{}
	for i, e := range req.Entries {
		a := metadata.QuotaAlteration{Entity: entities[i], Set: map[string]float64{}}
		err := metadata.ValidateQuotaEntity(a.Entity)
		if err == nil {
			// Stored as the brokers look clients up; the answer names
			// the entity as the request did, as Kafka's does.
			a.Entity = metadata.CanonicalQuotaEntity(a.Entity)
		}
		if err == nil && seen[a.Entity.Key()] {
			err = fmt.Errorf("entity %s is altered by an earlier entry of this request", a.Entity)
		}
		if err == nil {
			seen[a.Entity.Key()] = true
			keys := map[string]bool{}
			for _, op := range e.Ops {
				if keys[op.Key] {
					err = fmt.Errorf("quota key %s is named twice for entity %s", op.Key, a.Entity)
					break
				}
				keys[op.Key] = true
				if op.Remove {
					a.Remove = append(a.Remove, op.Key)
				} else {
					a.Set[op.Key] = op.Value
				}
			}
		}
		if err == nil {
			err = metadata.ValidateQuotaAlteration(a)
		}
		if err != nil {
			fail(i, kerr.InvalidRequest.Code, "%s", trimInvalid(err))
			continue
		}
		if len(a.Set) == 0 {
			a.Set = nil
		}
		cmd.Entries = append(cmd.Entries, a)
		index = append(index, i)
	}
	if req.ValidateOnly || len(cmd.Entries) == 0 {
		return resp
	}
	// The request carries no timeout: the broker's bound for such
	// requests (untimedAdminTimeout), past which REQUEST_TIMED_OUT.
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	res, err := s.meta.AlterClientQuotas(cctx, cmd)
	// In force here before the answer, not at the cluster follower's
	// next pass: a client that sets a quota and goes on at once is
	// measured against it on this broker (the others follow within
	// moments).
	s.quotas.Update(s.meta.ClientQuotas())
	for j, a := range cmd.Entries {
		e := err
		if e == nil && j < len(res) {
			e = res[j]
		}
		switch {
		case e == nil:
			s.log.Info("client quotas changed", "entity", a.Entity.String(), "set", a.Set, "removed", a.Remove, "by", az.rc.Principal)
		default:
			code, msg := alterQuotaFailure(e)
			fail(index[j], code, "%s", msg)
		}
	}
	return resp
}

// alterQuotaFailure is the error code and message of a quota change the
// metadata quorum did not take. A cluster that still has a broker of an
// older binary registered (a rolling upgrade) cannot take one at all:
// UNSUPPORTED_VERSION says so and is not retried, where REQUEST_TIMED_OUT
// made clients retry a change that cannot succeed until the upgrade ends.
func alterQuotaFailure(err error) (int16, string) {
	switch {
	case errors.Is(err, metadata.ErrInvalidRequest):
		return kerr.InvalidRequest.Code, trimInvalid(err)
	case errors.Is(err, metadata.ErrPolicyViolation): // over cluster.MaxRecordsPerUserOp
		return kerr.PolicyViolation.Code, err.Error()
	case errors.Is(err, metadata.ErrMetadataVersion):
		return kerr.UnsupportedVersion.Code, fmt.Sprintf("client quotas need every broker upgraded: %v", err)
	default:
		return kerr.RequestTimedOut.Code, fmt.Sprintf("the metadata quorum did not take the change: %v", err)
	}
}

// trimInvalid drops the "invalid request: " the metadata package's errors
// start with: the error code says it already.
func trimInvalid(err error) string {
	msg := err.Error()
	prefix := metadata.ErrInvalidRequest.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}
