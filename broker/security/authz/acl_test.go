package authz

import (
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	literal  = kmsg.ACLResourcePatternTypeLiteral
	prefixed = kmsg.ACLResourcePatternTypePrefixed
	anyPat   = kmsg.ACLResourcePatternTypeAny
	match    = kmsg.ACLResourcePatternTypeMatch
	allow    = kmsg.ACLPermissionTypeAllow
	deny     = kmsg.ACLPermissionTypeDeny
)

func acl(typ kmsg.ACLResourceType, pt kmsg.ACLResourcePatternType, name, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) Binding {
	return Binding{Pattern{typ, name, pt}, Entry{principal, host, op, perm}}
}

func ptr(s string) *string { return &s }

func TestBindingValidate(t *testing.T) {
	good := acl(rTopic, literal, "orders", "User:alice", "*", opRead, allow)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(*Binding)
	}{
		{"resource type ANY", func(b *Binding) { b.Pattern.Type = kmsg.ACLResourceTypeAny }},
		{"resource type UNKNOWN", func(b *Binding) { b.Pattern.Type = kmsg.ACLResourceTypeUnknown }},
		{"pattern MATCH", func(b *Binding) { b.Pattern.PatternType = match }},
		{"pattern ANY", func(b *Binding) { b.Pattern.PatternType = anyPat }},
		{"empty name", func(b *Binding) { b.Pattern.Name = "" }},
		{"cluster named otherwise", func(b *Binding) { b.Pattern.Type, b.Pattern.Name = rCluster, "my-cluster" }},
		{"operation ANY", func(b *Binding) { b.Entry.Operation = kmsg.ACLOperationAny }},
		{"operation 99", func(b *Binding) { b.Entry.Operation = 99 }},
		{"permission ANY", func(b *Binding) { b.Entry.Permission = kmsg.ACLPermissionTypeAny }},
		{"principal without type", func(b *Binding) { b.Entry.Principal = "alice" }},
		{"principal without name", func(b *Binding) { b.Entry.Principal = "User:" }},
		{"host name", func(b *Binding) { b.Entry.Host = "client.example.com" }},
	}
	for _, tt := range tests {
		b := good
		tt.mod(&b)
		var ie *InvalidError
		if err := b.Validate(); !errors.As(err, &ie) {
			t.Errorf("%s: %v, want an InvalidError", tt.name, err)
		}
	}
	for _, b := range []Binding{
		acl(rCluster, literal, ClusterName, "User:alice", "10.0.0.1", kmsg.ACLOperationAll, deny),
		acl(rGroup, prefixed, "app-", "User:*", "::1", opRead, allow),
		acl(rTopic, literal, "*", "User:CN=app,OU=team", "*", opWrite, allow),
	} {
		if err := b.Validate(); err != nil {
			t.Errorf("%v: %v", b, err)
		}
	}
}

// TestFilterMatches follows Kafka's ResourcePatternFilterTest and
// AclBindingFilterTest.
func TestFilterMatches(t *testing.T) {
	lit := func(name string) Binding { return acl(rTopic, literal, name, "User:alice", "*", opRead, allow) }
	pre := func(name string) Binding { return acl(rTopic, prefixed, name, "User:alice", "*", opRead, allow) }
	f := func(typ kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType) Filter {
		return Filter{Type: typ, Name: name, PatternType: pt, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	}
	tests := []struct {
		name   string
		filter Filter
		b      Binding
		want   bool
	}{
		{"other type", f(rGroup, ptr("Name"), literal), lit("Name"), false},
		{"ANY type", f(kmsg.ACLResourceTypeAny, ptr("Name"), literal), lit("Name"), true},
		{"other pattern type", f(rTopic, ptr("Name"), prefixed), lit("Name"), false},
		{"other name", f(rTopic, ptr("Name"), literal), lit("Other"), false},
		{"literal equal", f(rTopic, ptr("Name"), literal), lit("Name"), true},
		{"literal filter does not expand the wildcard", f(rTopic, ptr("Name"), literal), lit("*"), false},
		{"literal filter on the wildcard", f(rTopic, ptr("*"), literal), lit("*"), true},
		{"literal filter is not a prefix match", f(rTopic, ptr("Name"), literal), pre("Na"), false},
		{"prefixed equal", f(rTopic, ptr("Name"), prefixed), pre("Name"), true},
		{"prefixed filter is exact", f(rTopic, ptr("Name"), prefixed), pre("Na"), false},
		{"null name matches any", f(rTopic, nil, literal), lit("Name"), true},
		{"ANY pattern, equal name", f(rTopic, ptr("Name"), anyPat), pre("Name"), true},
		{"ANY pattern does not expand", f(rTopic, ptr("Name"), anyPat), lit("*"), false},
		{"ANY pattern, prefix does not match", f(rTopic, ptr("Name"), anyPat), pre("Na"), false},
		{"MATCH literal equal", f(rTopic, ptr("Name"), match), lit("Name"), true},
		{"MATCH literal wildcard", f(rTopic, ptr("Name"), match), lit("*"), true},
		{"MATCH literal other", f(rTopic, ptr("Name"), match), lit("Other"), false},
		{"MATCH prefixed prefix", f(rTopic, ptr("Name"), match), pre("Na"), true},
		{"MATCH prefixed equal", f(rTopic, ptr("Name"), match), pre("Name"), true},
		{"MATCH prefixed longer", f(rTopic, ptr("Na"), match), pre("Name"), false},
		{"MATCH null name", f(rTopic, nil, match), pre("Name"), true},
		{"MATCH on the wildcard name matches the wildcard only", f(rTopic, ptr("*"), match), lit("Name"), false},
	}
	for _, tt := range tests {
		if got := tt.filter.Matches(tt.b); got != tt.want {
			t.Errorf("%s: %v", tt.name, got)
		}
	}
	entry := func(principal, host *string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) Filter {
		return Filter{Type: kmsg.ACLResourceTypeAny, PatternType: anyPat, Principal: principal, Host: host, Operation: op, Permission: perm}
	}
	b := acl(rTopic, literal, "t", "User:alice", "10.0.0.1", opRead, allow)
	entryTests := []struct {
		name   string
		filter Filter
		want   bool
	}{
		{"any", entry(nil, nil, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny), true},
		{"principal", entry(ptr("User:alice"), nil, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny), true},
		{"other principal", entry(ptr("User:bob"), nil, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny), false},
		{"wildcard principal is literal in filters", entry(ptr("User:*"), nil, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny), false},
		{"host", entry(nil, ptr("10.0.0.1"), kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny), true},
		{"other host", entry(nil, ptr("*"), kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny), false},
		{"operation", entry(nil, nil, opRead, kmsg.ACLPermissionTypeAny), true},
		{"ALL is not ANY", entry(nil, nil, kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAny), false},
		{"permission", entry(nil, nil, kmsg.ACLOperationAny, allow), true},
		{"other permission", entry(nil, nil, kmsg.ACLOperationAny, deny), false},
	}
	for _, tt := range entryTests {
		if got := tt.filter.Matches(b); got != tt.want {
			t.Errorf("%s: %v", tt.name, got)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	ok := Filter{Type: kmsg.ACLResourceTypeAny, PatternType: match, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(*Filter){
		func(f *Filter) { f.Type = kmsg.ACLResourceTypeUnknown },
		func(f *Filter) { f.Type = 8 },
		func(f *Filter) { f.PatternType = kmsg.ACLResourcePatternTypeUnknown },
		func(f *Filter) { f.Operation = kmsg.ACLOperationUnknown },
		func(f *Filter) { f.Permission = kmsg.ACLPermissionTypeUnknown },
		func(f *Filter) { f.Permission = -1 },
	} {
		f := ok
		mod(&f)
		if err := f.Validate(); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}

func TestWireConversions(t *testing.T) {
	c := kmsg.NewCreateACLsRequestCreation() // v0 default: LITERAL
	c.ResourceType, c.ResourceName, c.Principal, c.Host, c.Operation, c.PermissionType = rTopic, "t", "User:a", "*", opRead, allow
	if b := BindingFromCreation(c); b != acl(rTopic, literal, "t", "User:a", "*", opRead, allow) {
		t.Fatalf("%v", b)
	}
	d := kmsg.NewDeleteACLsRequestFilter()
	d.ResourceType, d.ResourceName, d.ResourcePatternType, d.Operation, d.PermissionType = rTopic, ptr("t"), match, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	if f := FilterFromDelete(d); !f.Matches(acl(rTopic, prefixed, "t", "User:a", "*", opRead, allow)) {
		t.Fatalf("%+v", f)
	}
	r := kmsg.NewPtrDescribeACLsRequest()
	r.ResourceType, r.ResourcePatternType, r.Operation, r.PermissionType, r.Principal = kmsg.ACLResourceTypeAny, anyPat, kmsg.ACLOperationAny, deny, ptr("User:a")
	if f := FilterFromDescribe(r); f.Matches(acl(rTopic, literal, "t", "User:a", "*", opRead, allow)) || !f.Matches(acl(rTopic, literal, "t", "User:a", "*", opRead, deny)) {
		t.Fatalf("%+v", f)
	}
}

func TestParseSuperUsers(t *testing.T) {
	got, err := ParseSuperUsers(" User:admin ; User:CN=broker,OU=kafka;;")
	if err != nil || !slices.Equal(got, []string{"User:admin", "User:CN=broker,OU=kafka"}) {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := ParseSuperUsers("admin"); err == nil {
		t.Fatal("a principal without a type accepted")
	}
	if got, err := ParseSuperUsers(""); err != nil || got != nil {
		t.Fatalf("%q %v", got, err)
	}
}
