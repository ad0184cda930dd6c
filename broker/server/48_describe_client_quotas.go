package server

// DescribeClientQuotas: v0-1
//
// Behaviour:
//   - The client quotas (KIP-546) of the metadata log, as this broker's
//     copy has them, for the entities a filter matches: each component
//     names an entity type (user, client-id, ip) and matches one name
//     (EXACT; ip names compared as addresses), the type's default entity (DEFAULT, Kafka's <default>) or
//     any named entity (SPECIFIED); an entity matches when it has every
//     component, and, with strict, no other type. No components and not
//     strict: every entity.
//   - A bad filter (unknown type, a type twice, an EXACT match without a
//     name, a DEFAULT or SPECIFIED one with one, ip with user or
//     client-id) is INVALID_REQUEST for the request, with the reason.
//   - Needs DESCRIBE_CONFIGS on the cluster, as in Kafka
//     (CLUSTER_AUTHORIZATION_FAILED for the request otherwise).
//
// Version notes:
//   - v1 is flexible.

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

var describeClientQuotasAPI = api{key: 48, min: 0, max: 1,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeClientQuotas(ctx, s.authFor(c, 48), r.(*kmsg.DescribeClientQuotasRequest)), nil
	}}

func (s *Server) handleDescribeClientQuotas(ctx context.Context, az reqAuth, req *kmsg.DescribeClientQuotasRequest) *kmsg.DescribeClientQuotasResponse {
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	fail := func(code int16, format string, args ...any) *kmsg.DescribeClientQuotasResponse {
		msg := fmt.Sprintf(format, args...)
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	if !az.cluster(ctx, kmsg.ACLOperationDescribeConfigs) {
		return fail(kerr.ClusterAuthorizationFailed.Code, "%s is not allowed DESCRIBE_CONFIGS on the cluster", az.rc.Principal)
	}
	if err := validateQuotaFilter(req.Components); err != nil {
		return fail(kerr.InvalidRequest.Code, "%v", err)
	}
	for _, q := range s.meta.ClientQuotas() {
		if !quotaFilterMatches(req.Components, req.Strict, q.Entity) {
			continue
		}
		e := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, p := range q.Entity {
			ee := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			ee.Type, ee.Name = p.Type, p.Name
			e.Entity = append(e.Entity, ee)
		}
		for _, k := range slices.Sorted(maps.Keys(q.Values)) {
			v := kmsg.NewDescribeClientQuotasResponseEntryValue()
			v.Key, v.Value = k, q.Values[k]
			e.Values = append(e.Values, v)
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp
}

func validateQuotaFilter(cs []kmsg.DescribeClientQuotasRequestComponent) error {
	seen := map[string]bool{}
	for _, c := range cs {
		switch c.EntityType {
		case metadata.QuotaEntityUser, metadata.QuotaEntityClientID, metadata.QuotaEntityIP:
		default:
			return fmt.Errorf("unknown quota entity type %q in the filter (user, client-id or ip)", c.EntityType)
		}
		if seen[c.EntityType] {
			return fmt.Errorf("entity type %s appears more than once in the filter", c.EntityType)
		}
		seen[c.EntityType] = true
		switch c.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if c.Match == nil {
				return fmt.Errorf("the %s component matches EXACT a null name (DEFAULT matches the default entity)", c.EntityType)
			}
		case kmsg.QuotasMatchTypeDefault, kmsg.QuotasMatchTypeAny:
			if c.Match != nil {
				return fmt.Errorf("the %s component matches %s and names %q; only EXACT takes a name", c.EntityType, c.MatchType, *c.Match)
			}
		default:
			return fmt.Errorf("unknown match type %d for the %s component", c.MatchType, c.EntityType)
		}
	}
	if seen[metadata.QuotaEntityIP] && len(seen) > 1 {
		return fmt.Errorf("an ip filter component cannot be combined with user or client-id")
	}
	return nil
}

func quotaFilterMatches(cs []kmsg.DescribeClientQuotasRequestComponent, strict bool, e metadata.QuotaEntity) bool {
	if strict && len(cs) != len(e) {
		return false
	}
	for _, c := range cs {
		p, ok := e.Part(c.EntityType)
		if !ok {
			return false
		}
		switch c.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if p.Name == nil || !sameQuotaName(c.EntityType, *p.Name, *c.Match) {
				return false
			}
		case kmsg.QuotasMatchTypeDefault:
			if p.Name != nil {
				return false
			}
		case kmsg.QuotasMatchTypeAny:
			if p.Name == nil {
				return false
			}
		}
	}
	return true
}

// sameQuotaName reports whether a filter's name matches an entity's: ip
// names as addresses ("::0001" finds "::1", as AlterClientQuotas stores
// it), others as written.
func sameQuotaName(entityType, stored, match string) bool {
	if entityType == metadata.QuotaEntityIP {
		a, okA := metadata.CanonicalQuotaIP(stored)
		b, okB := metadata.CanonicalQuotaIP(match)
		if okA && okB {
			return a == b
		}
	}
	return stored == match
}
