// Package kafkaacl manages single Kafka ACLs of a cluster through the Kafka
// protocol (CreateAcls, DescribeAcls, DeleteAcls), for the tributary_acl
// resource: an ACL is written in Kafka's own names, checked with the
// broker's own rules before it is sent, and a change returns once every
// live broker enforces it.
package kafkaacl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// ACL is one Kafka ACL binding in Kafka's names, as kafka-acls prints them:
// resource type TOPIC, GROUP, CLUSTER or TRANSACTIONAL_ID; pattern type
// LITERAL or PREFIXED; operation READ, WRITE, ...; permission ALLOW or
// DENY.
type ACL struct {
	ResourceType string
	ResourceName string
	PatternType  string
	Principal    string
	Host         string
	Operation    string
	Permission   string
}

// ResourceTypes are the resource types an ACL may name, with the
// operations each supports (Kafka's AclEntry.supportedOperations). The
// broker serves no delegation tokens, so their resource types are not
// offered.
var ResourceTypes = map[kmsg.ACLResourceType][]kmsg.ACLOperation{
	kmsg.ACLResourceTypeTopic: {kmsg.ACLOperationAll, kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate,
		kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs},
	kmsg.ACLResourceTypeGroup: {kmsg.ACLOperationAll, kmsg.ACLOperationRead, kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete},
	kmsg.ACLResourceTypeCluster: {kmsg.ACLOperationAll, kmsg.ACLOperationCreate, kmsg.ACLOperationClusterAction, kmsg.ACLOperationDescribeConfigs,
		kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe},
	kmsg.ACLResourceTypeTransactionalId: {kmsg.ACLOperationAll, kmsg.ACLOperationDescribe, kmsg.ACLOperationWrite},
}

// ResourceTypeNames lists the resource types' names, sorted.
func ResourceTypeNames() []string {
	var out []string
	for t := range ResourceTypes {
		out = append(out, t.String())
	}
	slices.Sort(out)
	return out
}

// OperationNames lists every operation an ACL may name, sorted.
func OperationNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, ops := range ResourceTypes {
		for _, op := range ops {
			if !seen[op.String()] {
				seen[op.String()] = true
				out = append(out, op.String())
			}
		}
	}
	slices.Sort(out)
	return out
}

// Problem is one thing wrong with an ACL, naming the argument it is in
// (the tributary_acl attribute), so a plan can point at it.
type Problem struct {
	Field string // resource_type, pattern_type, resource_name, principal, host, operation or permission
	Err   error
}

func (p Problem) Error() string { return p.Err.Error() }
func (p Problem) Unwrap() error { return p.Err }

// Problems returns every check Binding applies that the ACL fails, each
// naming its argument: all of them at once, so one plan lists every
// mistake. The checks are the broker's (authz.Binding.Validate) plus the
// operations the resource type supports and Kafka's spelling of names.
func (a ACL) Problems() []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Err: fmt.Errorf(format, args...)})
	}
	// spelled checks that a name parsed case-insensitively is written as
	// Kafka prints it, which is what the brokers report on a refresh.
	spelled := func(field, got, want string) bool {
		if got != want {
			add(field, "%q is written %s, as Kafka names it", got, want)
			return false
		}
		return true
	}
	typ, err := kmsg.ParseACLResourceType(a.ResourceType)
	typeOK := err == nil && ResourceTypes[typ] != nil
	if !typeOK {
		add("resource_type", "resource type %q: one of %s", a.ResourceType, strings.Join(ResourceTypeNames(), ", "))
	} else {
		typeOK = spelled("resource_type", a.ResourceType, typ.String())
	}
	if pat, err := kmsg.ParseACLResourcePatternType(a.PatternType); err != nil || (pat != kmsg.ACLResourcePatternTypeLiteral && pat != kmsg.ACLResourcePatternTypePrefixed) {
		add("pattern_type", "pattern type %q: LITERAL or PREFIXED", a.PatternType)
	} else {
		spelled("pattern_type", a.PatternType, pat.String())
	}
	op, err := kmsg.ParseACLOperation(a.Operation)
	switch {
	case typeOK && (err != nil || !slices.Contains(ResourceTypes[typ], op)):
		var names []string
		for _, o := range ResourceTypes[typ] {
			names = append(names, o.String())
		}
		add("operation", "operation %q: a %s ACL may name %s", a.Operation, typ, strings.Join(names, ", "))
	case err != nil || !slices.Contains(OperationNames(), op.String()):
		add("operation", "operation %q: one of %s", a.Operation, strings.Join(OperationNames(), ", "))
	default:
		spelled("operation", a.Operation, op.String())
	}
	if perm, err := kmsg.ParseACLPermissionType(a.Permission); err != nil || (perm != kmsg.ACLPermissionTypeAllow && perm != kmsg.ACLPermissionTypeDeny) {
		add("permission", "permission %q: ALLOW or DENY", a.Permission)
	} else {
		spelled("permission", a.Permission, perm.String())
	}
	switch {
	case a.ResourceName == "":
		add("resource_name", "empty resource name")
	case typeOK && typ == kmsg.ACLResourceTypeCluster && a.ResourceName != authz.ClusterName:
		add("resource_name", "the only valid name for the CLUSTER resource is %s, got %q", authz.ClusterName, a.ResourceName)
	}
	// The brokers name every client User:<name> (SCRAM, mTLS, IAM,
	// ANONYMOUS) and compare principals as written, so "user:alice" would
	// be accepted and never match a client.
	switch ptype, name, ok := strings.Cut(a.Principal, ":"); {
	case !ok || ptype == "" || name == "":
		add("principal", "principal %q is not Type:name (no colon separates the principal type from its name), e.g. User:alice", a.Principal)
	case ptype != "User" && strings.EqualFold(ptype, "User"):
		add("principal", "%q is written User:%s, as the brokers name clients: an ACL for %s would match no client", a.Principal, name, a.Principal)
	}
	if a.Host != authz.WildcardHost {
		if _, err := netip.ParseAddr(a.Host); err != nil {
			add("host", "host %q is not an IP address or *", a.Host)
		}
	}
	return ps
}

// Binding returns the ACL as the broker's authorizer holds it, after the
// broker's own checks (authz.Binding.Validate) and the operations the
// resource type supports. Names must be spelled as Kafka prints them, so
// that what Terraform stores is what the brokers report. The error is the
// first of Problems.
func (a ACL) Binding() (authz.Binding, error) {
	if ps := a.Problems(); len(ps) > 0 {
		return authz.Binding{}, ps[0]
	}
	typ, _ := kmsg.ParseACLResourceType(a.ResourceType)
	pat, _ := kmsg.ParseACLResourcePatternType(a.PatternType)
	op, _ := kmsg.ParseACLOperation(a.Operation)
	perm, _ := kmsg.ParseACLPermissionType(a.Permission)
	b := authz.Binding{
		Pattern: authz.Pattern{Type: typ, Name: a.ResourceName, PatternType: pat},
		Entry:   authz.Entry{Principal: a.Principal, Host: a.Host, Operation: op, Permission: perm},
	}
	if err := b.Validate(); err != nil {
		return authz.Binding{}, err
	}
	return b, nil
}

// idSeparator joins an ACL's parts into its import id. Kafka forbids it in
// topic names; a group name holding it still parses, as the name is what
// is left between the fixed parts.
const idSeparator = "|"

// ID is the ACL's import id: cluster id, resource type, pattern type,
// resource name, principal, host, operation and permission joined by "|".
func (a ACL) ID(clusterID string) string {
	return strings.Join([]string{clusterID, a.ResourceType, a.PatternType, a.ResourceName, a.Principal, a.Host, a.Operation, a.Permission}, idSeparator)
}

// ParseID reads an import id made by ID.
func ParseID(id string) (clusterID string, a ACL, err error) {
	parts := strings.Split(id, idSeparator)
	if len(parts) < 8 {
		return "", a, fmt.Errorf("an ACL id is cluster_id|resource_type|pattern_type|resource_name|principal|host|operation|permission, " +
			"e.g. tc-0123456789abcdef|TOPIC|LITERAL|orders|User:alice|*|WRITE|ALLOW")
	}
	n := len(parts)
	a = ACL{ResourceType: parts[1], PatternType: parts[2], ResourceName: strings.Join(parts[3:n-4], idSeparator),
		Principal: parts[n-4], Host: parts[n-3], Operation: parts[n-2], Permission: parts[n-1]}
	if _, err := a.Binding(); err != nil {
		return "", ACL{}, fmt.Errorf("ACL id %q: %w", id, err)
	}
	return parts[0], a, nil
}

// ErrNotFound says the cluster holds no such ACL.
var ErrNotFound = errors.New("ACL not found")

// Admin manages the ACLs of one cluster.
type Admin struct {
	Conn *kafkaconn.Conn
	Log  kafkaconn.LogFunc
	// PollInterval is the delay between two checks of a wait.
	PollInterval time.Duration
}

// Create adds the ACL and waits until every live broker holds it. Adding
// an ACL the cluster already holds changes nothing, as in Kafka.
func (ad *Admin) Create(ctx context.Context, a ACL) error {
	b, err := a.Binding()
	if err != nil {
		return err
	}
	cl, err := ad.Conn.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateACLsRequest()
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.ResourcePatternType = b.Pattern.Type, b.Pattern.Name, b.Pattern.PatternType
	c.Principal, c.Host, c.Operation, c.PermissionType = b.Entry.Principal, b.Entry.Host, b.Entry.Operation, b.Entry.Permission
	req.Creations = append(req.Creations, c)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("creating ACL %s: %w", b, err)
	}
	if len(resp.Results) != 1 {
		return fmt.Errorf("creating ACL %s: the broker answered %d results for one creation", b, len(resp.Results))
	}
	if err := kerr.ErrorForCode(resp.Results[0].ErrorCode); err != nil {
		return fmt.Errorf("creating ACL %s: %w%s", b, err, kafkaconn.ErrMessage(resp.Results[0].ErrorMessage))
	}
	err = ad.Conn.WaitEachBrokerOrFail(ctx, "ACL "+b.String()+" on every broker", ad.PollInterval, ad.Log, func(ctx context.Context, br *kgo.Broker, id int32) (string, bool, error) {
		has, err := describe(ctx, br, b)
		switch {
		case errors.Is(err, kerr.ClusterAuthorizationFailed):
			// The resource describes the ACLs (Exists) just before it
			// creates one, as the same principal: waiting will not
			// give back what this ACL took.
			return "", false, fmt.Errorf("broker %d: %w; the ACL may have taken the provider's own access away: once a resource "+
				"has ACLs, Kafka allows a principal only what they allow, so allow the provider's principal first (an ALLOW ACL "+
				"this one depends on)", id, err)
		case err != nil:
			return fmt.Sprintf("broker %d: %v", id, err), false, nil
		case !has:
			return fmt.Sprintf("broker %d does not hold it yet", id), false, nil
		}
		return "", true, nil
	})
	if err != nil {
		return fmt.Errorf("%w %s, but %w", ErrUnconfirmed, b, err)
	}
	return nil
}

// ErrUnconfirmed starts the error of a Create whose ACL the cluster took
// (CreateAcls answered without an error) and which then could not be seen
// on every broker: the ACL exists.
var ErrUnconfirmed = errors.New("the cluster took ACL")

// agreeWait bounds Exists's wait for the brokers to agree: the metadata
// log reaches a live broker within a second or so, and one that lags
// longer is named in the error.
const agreeWait = 30 * time.Second

// Exists reports whether the cluster holds the ACL. One broker answers
// first; when it holds the ACL, every live broker is asked until they
// agree: each applies the metadata log in its own time, so a broker that
// has not applied a deletion a moment ago (outside Terraform, or by the
// apply before) still holds the ACL, and taking its word would refuse to
// create the ACL again ("already holds") or keep a deleted one in the
// state.
func (ad *Admin) Exists(ctx context.Context, a ACL) (bool, error) {
	b, err := a.Binding()
	if err != nil {
		return false, err
	}
	cl, err := ad.Conn.Client()
	if err != nil {
		return false, err
	}
	defer cl.Close()
	has, err := describe(ctx, cl, b)
	if err != nil || !has {
		return has, err
	}
	ctx, cancel := context.WithTimeout(ctx, agreeWait)
	defer cancel()
	return kafkaconn.AgreedAnswer(ctx, cl, "whether ACL "+b.String()+" exists", ad.PollInterval, ad.Log,
		func(ctx context.Context, br *kgo.Broker, _ int32) (bool, error) { return describe(ctx, br, b) },
		func(a, b bool) bool { return a == b })
}

// Delete removes the ACL and waits until no live broker holds it;
// ErrNotFound when the cluster did not hold it.
func (ad *Admin) Delete(ctx context.Context, a ACL) error {
	b, err := a.Binding()
	if err != nil {
		return err
	}
	cl, err := ad.Conn.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourceName, f.ResourcePatternType = b.Pattern.Type, &b.Pattern.Name, b.Pattern.PatternType
	f.Principal, f.Host, f.Operation, f.PermissionType = &b.Entry.Principal, &b.Entry.Host, b.Entry.Operation, b.Entry.Permission
	req.Filters = append(req.Filters, f)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("deleting ACL %s: %w", b, err)
	}
	if len(resp.Results) != 1 {
		return fmt.Errorf("deleting ACL %s: the broker answered %d results for one filter", b, len(resp.Results))
	}
	r := resp.Results[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return fmt.Errorf("deleting ACL %s: %w%s", b, err, kafkaconn.ErrMessage(r.ErrorMessage))
	}
	for _, m := range r.MatchingACLs {
		if err := kerr.ErrorForCode(m.ErrorCode); err != nil {
			return fmt.Errorf("deleting ACL %s: %w%s", b, err, kafkaconn.ErrMessage(m.ErrorMessage))
		}
	}
	if len(r.MatchingACLs) == 0 {
		return ErrNotFound
	}
	return ad.waitEachBroker(ctx, "ACL "+b.String()+" to be gone from every broker", b, false)
}

// waitEachBroker waits until every live broker holds the binding (present)
// or none does.
func (ad *Admin) waitEachBroker(ctx context.Context, what string, b authz.Binding, present bool) error {
	return ad.Conn.WaitEachBroker(ctx, what, ad.PollInterval, ad.Log, func(ctx context.Context, br *kgo.Broker, id int32) (string, bool) {
		has, err := describe(ctx, br, b)
		switch {
		case err != nil:
			return fmt.Sprintf("broker %d: %v", id, err), false
		case has != present && present:
			return fmt.Sprintf("broker %d does not hold it yet", id), false
		case has != present:
			return fmt.Sprintf("broker %d still holds it", id), false
		}
		return "", true
	})
}

// describe asks one broker (or the cluster) whether it holds exactly the
// binding.
func describe(ctx context.Context, r kmsg.Requestor, b authz.Binding) (bool, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourceName, req.ResourcePatternType = b.Pattern.Type, &b.Pattern.Name, b.Pattern.PatternType
	req.Principal, req.Host, req.Operation, req.PermissionType = &b.Entry.Principal, &b.Entry.Host, b.Entry.Operation, b.Entry.Permission
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return false, fmt.Errorf("describing ACL %s: %w", b, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return false, fmt.Errorf("describing ACL %s: %w%s", b, err, kafkaconn.ErrMessage(resp.ErrorMessage))
	}
	for _, res := range resp.Resources {
		if res.ResourceType != b.Pattern.Type || res.ResourceName != b.Pattern.Name || res.ResourcePatternType != b.Pattern.PatternType {
			continue
		}
		for _, e := range res.ACLs {
			if e.Principal == b.Entry.Principal && e.Host == b.Entry.Host && e.Operation == b.Entry.Operation && e.PermissionType == b.Entry.Permission {
				return true, nil
			}
		}
	}
	return false, nil
}
