package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/authz"
)

// TestACLsReachEveryNode creates and deletes ACLs through a follower: the
// change is visible to that node's authorizer when the call returns, and
// reaches every other node's.
func TestACLsReachEveryNode(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	m := &MetadataStore{Controller: tc.follower()}
	az := authz.NewACLAuthorizer(authz.ACLOptions{Source: m.ACLs})
	alice := authz.RequestContext{Principal: "User:alice", Host: netip.MustParseAddr("10.0.0.1")}
	read := []authz.Action{{Operation: kmsg.ACLOperationRead, Type: kmsg.ACLResourceTypeTopic, Name: "orders-eu"}}
	if az.Authorize(context.Background(), alice, read)[0].Allowed {
		t.Fatal("allowed with no ACL and allow.everyone.if.no.acl.found off")
	}

	acl := metadata.ACL{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "orders-", PatternType: kmsg.ACLResourcePatternTypePrefixed,
		Principal: "User:alice", Host: "*", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow}
	if err := m.CreateACLs(ctxT(t), []metadata.ACL{acl}); err != nil {
		t.Fatal(err)
	}
	if !az.Authorize(context.Background(), alice, read)[0].Allowed {
		t.Fatal("the node that made the change does not authorize with it")
	}
	tc.waitForState("the ACL applied", func(st *metadata.State) error {
		if st.ACLs.Len() != 1 || st.ACLs.List()[0] != acl {
			return fmt.Errorf("ACLs %+v", st.ACLs.List())
		}
		return nil
	})

	bad := acl
	bad.Host = "somewhere"
	if err := m.CreateACLs(ctxT(t), []metadata.ACL{bad}); !errors.Is(err, metadata.ErrInvalidRequest) {
		t.Fatalf("an ACL with a host that is no address: %v", err)
	}
	unknown := metadata.ACLFilter{ResourceType: kmsg.ACLResourceTypeUnknown, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	if _, err := m.DeleteACLs(ctxT(t), []metadata.ACLFilter{unknown}); !errors.Is(err, metadata.ErrInvalidRequest) {
		t.Fatalf("a filter with an UNKNOWN part: %v", err)
	}

	principal := "User:alice"
	matched, err := m.DeleteACLs(ctxT(t), []metadata.ACLFilter{{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny,
		Principal: &principal, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}})
	if err != nil || len(matched) != 1 || len(matched[0]) != 1 || matched[0][0] != acl {
		t.Fatalf("deleting: %+v %v", matched, err)
	}
	if az.Authorize(context.Background(), alice, read)[0].Allowed {
		t.Fatal("a deleted ACL still allows")
	}
	tc.waitForState("the ACL deleted", func(st *metadata.State) error {
		if st.ACLs.Len() != 0 {
			return fmt.Errorf("ACLs %+v", st.ACLs.List())
		}
		return nil
	})
	for id, c := range tc.nodes {
		if err := c.Err(); err != nil {
			t.Fatalf("node %d: the state machine halted: %v", id, err)
		}
	}
}
