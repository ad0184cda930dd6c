package authz

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// RequestContext is who asks, from where.
type RequestContext struct {
	// Principal is the authenticated Kafka principal: "User:alice"
	// (SCRAM), "User:CN=app,OU=team" (mTLS),
	// "User:arn:aws:iam::123456789012:role/app" (IAM), "User:ANONYMOUS"
	// (PLAINTEXT and TLS without a client certificate).
	Principal string
	// Host is the client's address.
	Host netip.Addr
	// IAM reports that Principal was authenticated by an IAM identity
	// token, so that Router sends it to the IAM-policy authorizer.
	IAM bool
	// Listener is the name of the listener the connection came in on
	// (PLAINTEXT, SASL_SSL, ...), for the audit trail.
	Listener string
}

// Action is one operation on one resource (Kafka's Action). Name is
// ClusterName for the cluster.
type Action struct {
	Operation kmsg.ACLOperation
	Type      kmsg.ACLResourceType
	Name      string
}

func (a Action) String() string { return fmt.Sprintf("%s on %s %q", a.Operation, a.Type, a.Name) }

// Decision is the answer for one Action.
type Decision struct {
	Allowed bool
	reason  string
	// rule is the ACL that decided, when one did; its text is built only
	// when someone asks for Reason, off the hot path.
	rule    Binding
	hasRule bool
}

// Reason says which rule decided, for the audit log: "super user",
// "ACL (TOPIC:PREFIXED:orders-, User:alice from *: ALLOW READ)", "no ACL
// allows it", "no ACL for the resource and
// allow.everyone.if.no.acl.found=false", an IAM policy decision.
func (d Decision) Reason() string {
	if d.hasRule {
		return "ACL " + d.rule.String()
	}
	return d.reason
}

// Authorizer decides actions. Implementations are safe for concurrent use
// and answer len(actions) decisions in order.
type Authorizer interface {
	Authorize(ctx context.Context, rc RequestContext, actions []Action) []Decision
}

// ACLAuthorizer is Kafka's ACL authorizer (StandardAuthorizer semantics):
//
//   - super.users are allowed everything;
//   - otherwise the ACLs that apply to the resource are those with its
//     literal name, the literal "*" and every PREFIXED pattern the name
//     starts with, for the request's principal or "User:*", from its host
//     or "*";
//   - a DENY for the operation (or ALL) wins over every ALLOW;
//   - an ALLOW for the operation, for ALL, or for an operation that implies
//     it allows it: READ, WRITE, DELETE and ALTER imply DESCRIBE;
//     ALTER_CONFIGS implies DESCRIBE_CONFIGS (DENY rules imply nothing);
//   - a resource with no ACL at all (for anyone) is allowed when
//     allow.everyone.if.no.acl.found is true and denied otherwise.
//
// The ACLs are an immutable snapshot behind an atomic pointer: SetACLs
// swaps it, Authorize reads it without a lock. A broker gives a Source
// instead: the snapshot of the metadata state in force, which the metadata
// log swaps as it applies.
type ACLAuthorizer struct {
	acls          atomic.Pointer[ACLs]
	source        func() *ACLs
	superUsers    map[string]bool
	allowEveryone bool
}

var _ Authorizer = (*ACLAuthorizer)(nil)

// ACLOptions configures an ACLAuthorizer.
type ACLOptions struct {
	// SuperUsers are principals allowed everything (super.users, see
	// ParseSuperUsers).
	SuperUsers []string
	// AllowEveryoneIfNoACLFound is allow.everyone.if.no.acl.found. A broker
	// with an authenticated listener keeps it false.
	AllowEveryoneIfNoACLFound bool
	// Source, when set, returns the ACLs in force at each decision (a
	// broker's: those of its current metadata state); SetACLs is then
	// ignored. It must be cheap and safe for concurrent use.
	Source func() *ACLs
}

// NewACLAuthorizer returns an authorizer with no ACLs yet.
func NewACLAuthorizer(opts ACLOptions) *ACLAuthorizer {
	a := &ACLAuthorizer{superUsers: map[string]bool{}, allowEveryone: opts.AllowEveryoneIfNoACLFound, source: opts.Source}
	for _, p := range opts.SuperUsers {
		a.superUsers[p] = true
	}
	a.acls.Store(&ACLs{})
	return a
}

// SetACLs makes acls the current snapshot (without a Source).
func (a *ACLAuthorizer) SetACLs(acls *ACLs) {
	if acls == nil {
		acls = &ACLs{}
	}
	a.acls.Store(acls)
}

// ACLs is the current snapshot.
func (a *ACLAuthorizer) ACLs() *ACLs {
	if a.source != nil {
		if acls := a.source(); acls != nil {
			return acls
		}
		return &ACLs{}
	}
	return a.acls.Load()
}

// IsSuperUser reports whether principal is in super.users.
func (a *ACLAuthorizer) IsSuperUser(principal string) bool { return a.superUsers[principal] }

// AllowEveryoneIfNoACLFound is the allow.everyone.if.no.acl.found in force.
func (a *ACLAuthorizer) AllowEveryoneIfNoACLFound() bool { return a.allowEveryone }

// Authorize decides each action.
func (a *ACLAuthorizer) Authorize(_ context.Context, rc RequestContext, actions []Action) []Decision {
	acls := a.ACLs()
	out := make([]Decision, len(actions))
	for i, act := range actions {
		out[i] = a.decide(acls, rc, act)
	}
	return out
}

func (a *ACLAuthorizer) decide(acls *ACLs, rc RequestContext, act Action) Decision {
	if a.superUsers[rc.Principal] {
		return Decision{Allowed: true, reason: "super user"}
	}
	var (
		found             bool
		deny, allw        Binding
		hasDeny, hasAllow bool
	)
	found = acls.forPrincipal(act.Type, act.Name, rc.Principal, func(p Pattern, e Entry) bool {
		if !hostMatches(e.Host, rc.Host) {
			return true
		}
		switch e.Permission {
		case kmsg.ACLPermissionTypeDeny:
			if e.Operation == act.Operation || e.Operation == kmsg.ACLOperationAll {
				deny, hasDeny = Binding{p, e}, true
				return false // DENY wins: nothing else can change the answer
			}
		case kmsg.ACLPermissionTypeAllow:
			if !hasAllow && allows(e.Operation, act.Operation) {
				allw, hasAllow = Binding{p, e}, true
			}
		}
		return true
	})
	switch {
	case hasDeny:
		return Decision{Allowed: false, rule: deny, hasRule: true}
	case hasAllow:
		return Decision{Allowed: true, rule: allw, hasRule: true}
	case !found && a.allowEveryone:
		return Decision{Allowed: true, reason: "no ACL for the resource and allow.everyone.if.no.acl.found=true"}
	case !found:
		return Decision{Allowed: false, reason: "no ACL for the resource and allow.everyone.if.no.acl.found=false"}
	default:
		return Decision{Allowed: false, reason: "no ACL allows it"}
	}
}

// allows reports whether an ALLOW rule for aclOp grants op.
func allows(aclOp, op kmsg.ACLOperation) bool {
	if aclOp == op || aclOp == kmsg.ACLOperationAll {
		return true
	}
	switch op {
	case kmsg.ACLOperationDescribe:
		switch aclOp {
		case kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter:
			return true
		}
	case kmsg.ACLOperationDescribeConfigs:
		return aclOp == kmsg.ACLOperationAlterConfigs
	}
	return false
}

// AuthorizeByResourceType reports whether rc may do op on at least one
// resource of typ, as Kafka's Authorizer.authorizeByResourceType (KIP-679):
// InitProducerId lets an idempotent producer in with IDEMPOTENT_WRITE on
// the cluster or WRITE on any topic. A literal "*" DENY refuses at once;
// otherwise an ALLOW (literal or prefixed) that no DENY of the same or a
// shorter prefix covers allows. Implied operations do not count here, as in
// Kafka.
func (a *ACLAuthorizer) AuthorizeByResourceType(ctx context.Context, rc RequestContext, op kmsg.ACLOperation, typ kmsg.ACLResourceType) Decision {
	// Kafka first asks about an arbitrary name, which lets super users in
	// (and anyone, when no ACL applies to that name and
	// allow.everyone.if.no.acl.found is set).
	if d := a.Authorize(ctx, rc, []Action{{Operation: op, Type: typ, Name: "hardcode"}})[0]; d.Allowed {
		return d
	}
	acls := a.ACLs()
	ti := acls.byType[typ]
	if ti == nil {
		return Decision{Allowed: false, reason: fmt.Sprintf("no ACL allows %s on any %s", op, typ)}
	}
	applies := func(e Entry) bool {
		return (e.Principal == rc.Principal || e.Principal == WildcardPrincipal) && hostMatches(e.Host, rc.Host) &&
			(e.Operation == op || e.Operation == kmsg.ACLOperationAll)
	}
	denyLiteral, denyPrefix := map[string]bool{}, map[string]bool{}
	var allowLiteral, allowPrefix []string
	wildcardAllow := false
	for name, es := range ti.literal {
		for _, e := range es.all {
			if !applies(e) {
				continue
			}
			if e.Permission == kmsg.ACLPermissionTypeDeny {
				if name == WildcardResource {
					return Decision{Allowed: false, reason: fmt.Sprintf("ACL denies %s on every %s", op, typ)}
				}
				denyLiteral[name] = true
			} else {
				if name == WildcardResource {
					wildcardAllow = true
					continue
				}
				allowLiteral = append(allowLiteral, name)
			}
		}
	}
	for name, es := range ti.prefixed {
		for _, e := range es.all {
			if !applies(e) {
				continue
			}
			if e.Permission == kmsg.ACLPermissionTypeDeny {
				denyPrefix[name] = true
			} else {
				allowPrefix = append(allowPrefix, name)
			}
		}
	}
	if wildcardAllow {
		return Decision{Allowed: true, reason: fmt.Sprintf("ACL allows %s on every %s", op, typ)}
	}
	slices.Sort(allowLiteral)
	slices.Sort(allowPrefix)
	deniedByPrefix := func(name string) bool {
		for i := 1; i <= len(name); i++ {
			if denyPrefix[name[:i]] {
				return true
			}
		}
		return false
	}
	for _, name := range allowLiteral {
		if !denyLiteral[name] && !deniedByPrefix(name) {
			return Decision{Allowed: true, reason: fmt.Sprintf("ACL allows %s on %s %q", op, typ, name)}
		}
	}
	for _, name := range allowPrefix {
		if !deniedByPrefix(name) {
			return Decision{Allowed: true, reason: fmt.Sprintf("ACL allows %s on %s prefix %q", op, typ, name)}
		}
	}
	return Decision{Allowed: false, reason: fmt.Sprintf("no ACL allows %s on any %s", op, typ)}
}

// Router sends IAM principals to IAM and everyone else to ACLs, as Amazon
// MSK does: Kafka ACLs do not apply to IAM principals when IAM access
// control is on (tributary.iam.authorization=policies). With
// tributary.iam.authorization=acls a server uses the ACL authorizer alone.
type Router struct {
	ACLs Authorizer
	IAM  Authorizer
}

// Authorize asks the authorizer for rc.
func (r Router) Authorize(ctx context.Context, rc RequestContext, actions []Action) []Decision {
	if rc.IAM {
		return r.IAM.Authorize(ctx, rc, actions)
	}
	return r.ACLs.Authorize(ctx, rc, actions)
}
