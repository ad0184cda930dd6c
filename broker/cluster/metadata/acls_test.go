package metadata

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func aclOf(typ kmsg.ACLResourceType, name string, pattern kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) ACL {
	return ACL{ResourceType: typ, ResourceName: name, PatternType: pattern, Principal: principal, Host: "*", Operation: op, Permission: perm}
}

var (
	readOrders  = aclOf(kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
	writePrefix = aclOf(kmsg.ACLResourceTypeTopic, "ord", kmsg.ACLResourcePatternTypePrefixed, "User:alice", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow)
	denyBob     = aclOf(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLResourcePatternTypeLiteral, "User:bob", kmsg.ACLOperationAll, kmsg.ACLPermissionTypeDeny)
	groupRead   = aclOf(kmsg.ACLResourceTypeGroup, "g1", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
)

func anyFilter() ACLFilter {
	return ACLFilter{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
}

func TestCreateAndDeleteACLs(t *testing.T) {
	m := newMachine(t)
	m.must(InitCluster{ClusterID: "c1"})
	before := m.f.Current().ACLs
	res := m.must(CreateACLs{ACLs: []ACL{readOrders, writePrefix, readOrders}}).(ACLChange)
	if res.Index != m.f.Current().Index {
		t.Errorf("change index %d, state index %d", res.Index, m.f.Current().Index)
	}
	if n := m.f.Current().ACLs.Len(); n != 2 {
		t.Fatalf("%d ACLs after creating two (one twice)", n)
	}
	if before.Len() != 0 {
		t.Fatal("the earlier state's ACLs changed")
	}
	// Creating an ACL that exists changes nothing, as in Kafka.
	m.must(CreateACLs{ACLs: []ACL{readOrders, denyBob, groupRead}})
	if got := m.f.Current().ACLs.List(); len(got) != 4 {
		t.Fatalf("ACLs: %+v", got)
	}

	// The snapshot is what the authorizer reads: PREFIXED "ord" applies to
	// "orders".
	snap := m.f.Current().ACLs.Snapshot()
	name := "orders"
	if got := snap.Describe(ACLFilter{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: &name, PatternType: kmsg.ACLResourcePatternTypeMatch, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}.Filter()); len(got) != 3 {
		t.Errorf("ACLs that apply to topic orders: %v, want the literal, the prefix and the wildcard", got)
	}

	alice := "User:alice"
	del := m.must(DeleteACLs{Filters: []ACLFilter{
		{ResourceType: kmsg.ACLResourceTypeTopic, PatternType: kmsg.ACLResourcePatternTypeAny, Principal: &alice, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny},
		{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: &name, PatternType: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow},
		{ResourceType: kmsg.ACLResourceTypeTransactionalId, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny},
	}}).(ACLChange)
	if len(del.Matched) != 3 || len(del.Matched[0]) != 2 || len(del.Matched[1]) != 1 || len(del.Matched[2]) != 0 {
		t.Fatalf("matched per filter: %+v", del.Matched)
	}
	if del.Matched[1][0] != readOrders {
		t.Errorf("second filter matched %+v", del.Matched[1][0])
	}
	if got := m.f.Current().ACLs.List(); !slices.Equal(got, []ACL{denyBob, groupRead}) {
		t.Fatalf("left: %+v", got)
	}
	m.must(DeleteACLs{Filters: []ACLFilter{anyFilter()}})
	if n := m.f.Current().ACLs.Len(); n != 0 {
		t.Fatalf("%d ACLs left after deleting all", n)
	}
	if b := m.bytes(); bytes.Contains(b, []byte(`"acls"`)) {
		t.Errorf("an empty ACL set is written: %s", b)
	}
}

func TestInvalidACLCommandsChangeNothing(t *testing.T) {
	m := newMachine(t)
	m.must(InitCluster{ClusterID: "c1"})
	m.must(CreateACLs{ACLs: []ACL{readOrders}})
	before := m.bytes()
	bad := []Command{
		CreateACLs{},
		CreateACLs{ACLs: []ACL{writePrefix, aclOf(kmsg.ACLResourceTypeCluster, "other", kmsg.ACLResourcePatternTypeLiteral, "User:x", kmsg.ACLOperationAlter, kmsg.ACLPermissionTypeAllow)}},
		CreateACLs{ACLs: []ACL{aclOf(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeMatch, "User:x", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)}},
		CreateACLs{ACLs: []ACL{aclOf(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)}},
		CreateACLs{ACLs: []ACL{aclOf(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "User:x", kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAllow)}},
		DeleteACLs{},
	}
	for _, c := range bad {
		r := m.apply(c)
		if !errors.Is(r.Err, ErrInvalidRequest) {
			t.Errorf("%+v: %v, want ErrInvalidRequest", c, r.Err)
		}
	}
	after := m.bytes()
	// Only the applied index moved.
	if got, want := strings.Count(string(after), "orders"), strings.Count(string(before), "orders"); got != want || m.f.Current().ACLs.Len() != 1 {
		t.Fatalf("a refused command changed the ACLs:\n%s\n%s", before, after)
	}
	if m.f.Err() != nil {
		t.Fatalf("a refused ACL command halted the state machine: %v", m.f.Err())
	}
}

func TestACLSnapshotRoundTrip(t *testing.T) {
	m := newMachine(t)
	m.must(InitCluster{ClusterID: "c1"})
	m.must(CreateACLs{ACLs: []ACL{readOrders, writePrefix, denyBob, groupRead}})
	want := m.bytes()
	for _, field := range []string{`"resource_type":"TOPIC"`, `"pattern_type":"PREFIXED"`, `"operation":"READ"`, `"permission":"DENY"`} {
		if !bytes.Contains(want, []byte(field)) {
			t.Errorf("snapshot lacks %s: %s", field, want)
		}
	}
	restored := newMachine(t)
	if err := restored.f.Restore(io.NopCloser(bytes.NewReader(want))); err != nil {
		t.Fatal(err)
	}
	if got := restored.bytes(); !bytes.Equal(got, want) {
		t.Fatalf("restored state differs:\n%s\n%s", got, want)
	}
	if restored.f.Current().ACLs.Snapshot().Len() != 4 {
		t.Fatal("the restored authorizer snapshot lost ACLs")
	}
	for name, snap := range map[string]string{
		"unknown field":     `{"format":1,"state":{"cluster_id":"x","brokers":{},"topics":{},"acls":[{"resource_type":"TOPIC","resource_name":"t","pattern_type":"LITERAL","principal":"User:a","host":"*","operation":"READ","permission":"ALLOW","expires":1}]}}`,
		"unknown operation": `{"format":1,"state":{"cluster_id":"x","brokers":{},"topics":{},"acls":[{"resource_type":"TOPIC","resource_name":"t","pattern_type":"LITERAL","principal":"User:a","host":"*","operation":"FLY","permission":"ALLOW"}]}}`,
		"invalid ACL":       `{"format":1,"state":{"cluster_id":"x","brokers":{},"topics":{},"acls":[{"resource_type":"TOPIC","resource_name":"","pattern_type":"LITERAL","principal":"User:a","host":"*","operation":"READ","permission":"ALLOW"}]}}`,
	} {
		if err := newMachine(t).f.Restore(io.NopCloser(strings.NewReader(snap))); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}
