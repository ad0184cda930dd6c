package authz

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ClusterName is the only name of the CLUSTER resource, as in Kafka.
const ClusterName = "kafka-cluster"

// Wildcards: the literal resource name "*" matches every resource of its
// type; "User:*" every principal; host "*" every host.
const (
	WildcardResource  = "*"
	WildcardPrincipal = "User:*"
	WildcardHost      = "*"
)

// Pattern is an ACL's resource pattern.
type Pattern struct {
	Type        kmsg.ACLResourceType
	Name        string
	PatternType kmsg.ACLResourcePatternType // LITERAL or PREFIXED in a stored ACL
}

// Entry is an ACL's access control entry.
type Entry struct {
	Principal  string // "User:alice", "User:*"
	Host       string // an IP address or "*"
	Operation  kmsg.ACLOperation
	Permission kmsg.ACLPermissionType // ALLOW or DENY in a stored ACL
}

// Binding is one ACL: a pattern and an entry, Kafka's AclBinding.
type Binding struct {
	Pattern Pattern
	Entry   Entry
}

// String is Kafka's kafka-acls rendering, for logs and errors.
func (b Binding) String() string {
	return fmt.Sprintf("(%s:%s:%s, %s from %s: %s %s)", b.Pattern.Type, b.Pattern.PatternType, b.Pattern.Name,
		b.Entry.Principal, b.Entry.Host, b.Entry.Permission, b.Entry.Operation)
}

// InvalidError is a refused ACL or filter: Kafka's INVALID_REQUEST with the
// message.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return "invalid ACL: " + e.Msg }

func invalid(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// BindingFromCreation is the binding a CreateAcls creation asks for (v0
// requests carry no pattern type: LITERAL).
func BindingFromCreation(c kmsg.CreateACLsRequestCreation) Binding {
	return Binding{
		Pattern: Pattern{Type: c.ResourceType, Name: c.ResourceName, PatternType: c.ResourcePatternType},
		Entry:   Entry{Principal: c.Principal, Host: c.Host, Operation: c.Operation, Permission: c.PermissionType},
	}
}

// Validate applies Kafka's checks on a new ACL (CreateAcls): a concrete
// resource type, LITERAL or PREFIXED, a non-empty name ("kafka-cluster" for
// CLUSTER), a concrete operation and permission, a "Type:name" principal,
// and a host that is "*" or an IP address.
func (b Binding) Validate() error {
	switch b.Pattern.Type {
	case kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeCluster,
		kmsg.ACLResourceTypeTransactionalId, kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
	default:
		return invalid("resource type %s", b.Pattern.Type)
	}
	switch b.Pattern.PatternType {
	case kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed:
	default:
		return invalid("pattern type %s: an ACL is LITERAL or PREFIXED", b.Pattern.PatternType)
	}
	if b.Pattern.Name == "" {
		return invalid("empty resource name")
	}
	if b.Pattern.Type == kmsg.ACLResourceTypeCluster && b.Pattern.Name != ClusterName {
		return invalid("the only valid name for the CLUSTER resource is %s", ClusterName)
	}
	switch b.Entry.Operation {
	case kmsg.ACLOperationUnknown, kmsg.ACLOperationAny:
		return invalid("operation %s", b.Entry.Operation)
	}
	if b.Entry.Operation < kmsg.ACLOperationAll || b.Entry.Operation > kmsg.ACLOperationDescribeTokens {
		return invalid("operation %d", int8(b.Entry.Operation))
	}
	switch b.Entry.Permission {
	case kmsg.ACLPermissionTypeAllow, kmsg.ACLPermissionTypeDeny:
	default:
		return invalid("permission type %s", b.Entry.Permission)
	}
	if typ, name, ok := strings.Cut(b.Entry.Principal, ":"); !ok || typ == "" || name == "" {
		return invalid("principal %q is not Type:name (no colon separates the principal type from its name)", b.Entry.Principal)
	}
	if b.Entry.Host != WildcardHost {
		if _, err := netip.ParseAddr(b.Entry.Host); err != nil {
			return invalid("host %q is not an IP address or *", b.Entry.Host)
		}
	}
	return nil
}

// hostMatches compares an ACL host with a client address. IP addresses
// are compared as addresses (so "::1" and "0:0:0:0:0:0:0:1" are one host,
// where Kafka compares Java's strings).
func hostMatches(aclHost string, client netip.Addr) bool {
	if aclHost == WildcardHost {
		return true
	}
	a, err := netip.ParseAddr(aclHost)
	if err != nil {
		return false
	}
	return a.Unmap() == client.Unmap()
}

// Filter selects ACLs as Kafka's AclBindingFilter does, for DescribeAcls
// and DeleteAcls. Nil Name, Principal or Host match anything.
type Filter struct {
	Type        kmsg.ACLResourceType        // ANY matches every type
	Name        *string                     // nil: any name
	PatternType kmsg.ACLResourcePatternType // ANY, MATCH, LITERAL or PREFIXED
	Principal   *string
	Host        *string
	Operation   kmsg.ACLOperation      // ANY matches every operation
	Permission  kmsg.ACLPermissionType // ANY matches both
}

// FilterFromDescribe is the filter of a DescribeAcls request.
func FilterFromDescribe(r *kmsg.DescribeACLsRequest) Filter {
	return Filter{Type: r.ResourceType, Name: r.ResourceName, PatternType: r.ResourcePatternType,
		Principal: r.Principal, Host: r.Host, Operation: r.Operation, Permission: r.PermissionType}
}

// FilterFromDelete is one filter of a DeleteAcls request.
func FilterFromDelete(f kmsg.DeleteACLsRequestFilter) Filter {
	return Filter{Type: f.ResourceType, Name: f.ResourceName, PatternType: f.ResourcePatternType,
		Principal: f.Principal, Host: f.Host, Operation: f.Operation, Permission: f.PermissionType}
}

// Validate refuses filters with UNKNOWN parts, as Kafka does.
func (f Filter) Validate() error {
	if f.Type == kmsg.ACLResourceTypeUnknown || f.Type > kmsg.ACLResourceTypeUser || f.Type < 0 {
		return invalid("filter resource type %s", f.Type)
	}
	if f.PatternType == kmsg.ACLResourcePatternTypeUnknown || f.PatternType > kmsg.ACLResourcePatternTypePrefixed || f.PatternType < 0 {
		return invalid("filter pattern type %s", f.PatternType)
	}
	if f.Operation == kmsg.ACLOperationUnknown || f.Operation > kmsg.ACLOperationDescribeTokens || f.Operation < 0 {
		return invalid("filter operation %s", f.Operation)
	}
	if f.Permission == kmsg.ACLPermissionTypeUnknown || f.Permission > kmsg.ACLPermissionTypeAllow || f.Permission < 0 {
		return invalid("filter permission type %s", f.Permission)
	}
	return nil
}

// Matches is Kafka's AclBindingFilter.matches.
func (f Filter) Matches(b Binding) bool {
	return f.matchesPattern(b.Pattern) && f.matchesEntry(b.Entry)
}

// matchesPattern is ResourcePatternFilter.matches: with MATCH, a name
// selects the ACLs that apply to that resource (the literal name, the
// literal wildcard and every prefix of it); with ANY or a concrete type,
// the name must be equal.
func (f Filter) matchesPattern(p Pattern) bool {
	if f.Type != kmsg.ACLResourceTypeAny && f.Type != p.Type {
		return false
	}
	if f.PatternType != kmsg.ACLResourcePatternTypeAny && f.PatternType != kmsg.ACLResourcePatternTypeMatch && f.PatternType != p.PatternType {
		return false
	}
	if f.Name == nil {
		return true
	}
	if f.PatternType == kmsg.ACLResourcePatternTypeAny || f.PatternType == p.PatternType {
		return *f.Name == p.Name
	}
	switch p.PatternType {
	case kmsg.ACLResourcePatternTypeLiteral:
		return *f.Name == p.Name || p.Name == WildcardResource
	case kmsg.ACLResourcePatternTypePrefixed:
		return strings.HasPrefix(*f.Name, p.Name)
	}
	return false
}

func (f Filter) matchesEntry(e Entry) bool {
	if f.Principal != nil && *f.Principal != e.Principal {
		return false
	}
	if f.Host != nil && *f.Host != e.Host {
		return false
	}
	if f.Operation != kmsg.ACLOperationAny && f.Operation != e.Operation {
		return false
	}
	return f.Permission == kmsg.ACLPermissionTypeAny || f.Permission == e.Permission
}

// ParseSuperUsers reads super.users: principals separated by ';'
// ("User:admin;User:CN=broker").
func ParseSuperUsers(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ";") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if typ, name, ok := strings.Cut(p, ":"); !ok || typ == "" || name == "" {
			return nil, fmt.Errorf("super.users: %q is not Type:name", p)
		}
		out = append(out, p)
	}
	return out, nil
}
