package authz

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	alice     = RequestContext{Principal: "User:alice", Host: netip.MustParseAddr("10.0.0.1")}
	bob       = RequestContext{Principal: "User:bob", Host: netip.MustParseAddr("10.0.0.2")}
	aliceIPv6 = RequestContext{Principal: "User:alice", Host: netip.MustParseAddr("::1")}
)

func topicAct(op kmsg.ACLOperation, name string) Action { return Action{op, rTopic, name} }

func mustACLs(t testing.TB, bs ...Binding) *ACLs {
	t.Helper()
	a, err := NewACLs(bs)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestACLAuthorizer(t *testing.T) {
	type check struct {
		rc   RequestContext
		act  Action
		want bool
	}
	tests := []struct {
		name   string
		opts   ACLOptions
		acls   []Binding
		checks []check
	}{
		{"no ACLs, allow.everyone.if.no.acl.found=false", ACLOptions{}, nil, []check{
			{alice, topicAct(opRead, "orders"), false},
		}},
		{"no ACLs, allow.everyone.if.no.acl.found=true", ACLOptions{AllowEveryoneIfNoACLFound: true}, nil, []check{
			{alice, topicAct(opRead, "orders"), true},
		}},
		{"an ACL for someone else closes the resource", ACLOptions{AllowEveryoneIfNoACLFound: true}, []Binding{
			acl(rTopic, literal, "orders", "User:bob", "*", opRead, allow),
		}, []check{
			{alice, topicAct(opRead, "orders"), false},
			{bob, topicAct(opRead, "orders"), true},
			{alice, topicAct(opRead, "payments"), true}, // no ACL applies to payments
		}},
		{"implied operations", ACLOptions{}, []Binding{
			acl(rTopic, literal, "r", "User:alice", "*", opRead, allow),
			acl(rTopic, literal, "w", "User:alice", "*", opWrite, allow),
			acl(rTopic, literal, "d", "User:alice", "*", opDelete, allow),
			acl(rTopic, literal, "a", "User:alice", "*", opAlter, allow),
			acl(rTopic, literal, "c", "User:alice", "*", opCreate, allow),
			acl(rTopic, literal, "ac", "User:alice", "*", opAlterConfigs, allow),
			acl(rTopic, literal, "all", "User:alice", "*", kmsg.ACLOperationAll, allow),
		}, []check{
			{alice, topicAct(opDescribe, "r"), true},
			{alice, topicAct(opDescribe, "w"), true},
			{alice, topicAct(opDescribe, "d"), true},
			{alice, topicAct(opDescribe, "a"), true},
			{alice, topicAct(opDescribe, "c"), false}, // CREATE implies nothing
			{alice, topicAct(opWrite, "r"), false},
			{alice, topicAct(opDescribeConfigs, "ac"), true},
			{alice, topicAct(opDescribeConfigs, "a"), false},
			{alice, topicAct(opDescribe, "ac"), false},
			{alice, topicAct(opDelete, "all"), true},
			{alice, topicAct(opDescribeConfigs, "all"), true},
		}},
		{"DENY wins", ACLOptions{}, []Binding{
			acl(rTopic, literal, "orders", "User:alice", "*", kmsg.ACLOperationAll, allow),
			acl(rTopic, prefixed, "ord", "User:alice", "*", opWrite, deny),
		}, []check{
			{alice, topicAct(opRead, "orders"), true},
			{alice, topicAct(opWrite, "orders"), false},
		}},
		{"DENY ALL denies everything, DENY READ does not deny DESCRIBE", ACLOptions{}, []Binding{
			acl(rTopic, literal, "t", "User:alice", "*", opDescribe, allow),
			acl(rTopic, literal, "t", "User:alice", "*", opRead, deny),
			acl(rTopic, literal, "u", "User:alice", "*", opRead, allow),
			acl(rTopic, literal, "u", "User:*", "*", kmsg.ACLOperationAll, deny),
		}, []check{
			{alice, topicAct(opDescribe, "t"), true},
			{alice, topicAct(opRead, "t"), false},
			{alice, topicAct(opRead, "u"), false},
			{alice, topicAct(opDescribe, "u"), false},
		}},
		{"prefixed and wildcard patterns", ACLOptions{AllowEveryoneIfNoACLFound: true}, []Binding{
			acl(rTopic, prefixed, "team-a.", "User:alice", "*", opRead, allow),
			acl(rGroup, literal, "*", "User:alice", "*", opRead, allow),
		}, []check{
			{alice, topicAct(opRead, "team-a.orders"), true},
			{alice, topicAct(opRead, "team-a."), true},
			{bob, topicAct(opRead, "team-a.orders"), false},
			{bob, topicAct(opRead, "team-b.orders"), true}, // nothing applies: allow.everyone
			{alice, Action{opRead, rGroup, "anything"}, true},
			{bob, Action{opRead, rGroup, "anything"}, false},
			{alice, topicAct(opRead, "team-a"), true}, // shorter than the prefix: no ACL applies
		}},
		{"types are separate", ACLOptions{}, []Binding{
			acl(rGroup, literal, "orders", "User:alice", "*", opRead, allow),
		}, []check{
			{alice, topicAct(opRead, "orders"), false},
			{alice, Action{opRead, rGroup, "orders"}, true},
		}},
		{"wildcard principal and hosts", ACLOptions{}, []Binding{
			acl(rTopic, literal, "t", "User:*", "10.0.0.1", opRead, allow),
			acl(rTopic, literal, "v6", "User:alice", "0:0:0:0:0:0:0:1", opRead, allow),
			acl(rTopic, literal, "g", "Group:alice", "*", opRead, allow),
		}, []check{
			{alice, topicAct(opRead, "t"), true},
			{bob, topicAct(opRead, "t"), false}, // from 10.0.0.2
			{RequestContext{Principal: "User:carol", Host: netip.MustParseAddr("::ffff:10.0.0.1")}, topicAct(opRead, "t"), true},
			{aliceIPv6, topicAct(opRead, "v6"), true},
			{alice, topicAct(opRead, "g"), false}, // another principal type
		}},
		{"super users", ACLOptions{SuperUsers: []string{"User:admin"}}, []Binding{
			acl(rTopic, literal, "t", "User:*", "*", kmsg.ACLOperationAll, deny),
		}, []check{
			{RequestContext{Principal: "User:admin", Host: netip.MustParseAddr("10.9.9.9")}, topicAct(opDelete, "t"), true},
			{RequestContext{Principal: "User:admin", Host: netip.MustParseAddr("10.9.9.9")}, Action{opAlter, rCluster, ClusterName}, true},
			{alice, topicAct(opDelete, "t"), false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewACLAuthorizer(tt.opts)
			a.SetACLs(mustACLs(t, tt.acls...))
			acts := make([]Action, len(tt.checks))
			for i, c := range tt.checks {
				acts[i] = c.act
			}
			for i, c := range tt.checks {
				d := a.Authorize(context.Background(), c.rc, []Action{c.act})[0]
				if d.Allowed != c.want || d.Reason() == "" {
					t.Errorf("%s %s: %+v, want allowed=%v", c.rc.Principal, c.act, d, c.want)
				}
				// Asking for many actions at once gives the same answers.
				if all := a.Authorize(context.Background(), c.rc, acts); all[i].Allowed != c.want {
					t.Errorf("%s %s in a batch: %+v", c.rc.Principal, c.act, all[i])
				}
			}
		})
	}
}

// TestAuthorizeByResourceType follows Kafka's
// AuthorizerInterfaceDefaultTest / AclAuthorizerTest cases.
func TestAuthorizeByResourceType(t *testing.T) {
	tests := []struct {
		name string
		opts ACLOptions
		acls []Binding
		rc   RequestContext
		want bool
	}{
		{"no ACLs", ACLOptions{}, nil, alice, false},
		{"no ACLs, allow.everyone", ACLOptions{AllowEveryoneIfNoACLFound: true}, nil, alice, true},
		{"super user", ACLOptions{SuperUsers: []string{"User:alice"}}, []Binding{acl(rTopic, literal, "*", "User:*", "*", opWrite, deny)}, alice, true},
		{"literal allow", ACLOptions{}, []Binding{acl(rTopic, literal, "t1", "User:alice", "*", opWrite, allow)}, alice, true},
		{"other principal", ACLOptions{}, []Binding{acl(rTopic, literal, "t1", "User:alice", "*", opWrite, allow)}, bob, false},
		{"other operation", ACLOptions{}, []Binding{acl(rTopic, literal, "t1", "User:alice", "*", opRead, allow)}, alice, false},
		{"ALL counts", ACLOptions{}, []Binding{acl(rTopic, literal, "t1", "User:alice", "*", kmsg.ACLOperationAll, allow)}, alice, true},
		{"literal allow, literal deny", ACLOptions{}, []Binding{
			acl(rTopic, literal, "t1", "User:alice", "*", opWrite, allow),
			acl(rTopic, literal, "t1", "User:alice", "*", opWrite, deny),
		}, alice, false},
		{"literal allow, deny of a prefix of it", ACLOptions{}, []Binding{
			acl(rTopic, literal, "abc", "User:alice", "*", opWrite, allow),
			acl(rTopic, prefixed, "ab", "User:alice", "*", opWrite, deny),
		}, alice, false},
		{"literal allow, deny of another prefix", ACLOptions{}, []Binding{
			acl(rTopic, literal, "abc", "User:alice", "*", opWrite, allow),
			acl(rTopic, prefixed, "abd", "User:alice", "*", opWrite, deny),
		}, alice, true},
		{"prefixed allow, longer prefixed deny", ACLOptions{}, []Binding{
			acl(rTopic, prefixed, "ab", "User:alice", "*", opWrite, allow),
			acl(rTopic, prefixed, "abc", "User:alice", "*", opWrite, deny),
		}, alice, true},
		{"prefixed allow, literal deny of the same name", ACLOptions{}, []Binding{
			acl(rTopic, prefixed, "ab", "User:alice", "*", opWrite, allow),
			acl(rTopic, literal, "ab", "User:alice", "*", opWrite, deny),
		}, alice, true},
		{"wildcard deny beats everything", ACLOptions{}, []Binding{
			acl(rTopic, literal, "t1", "User:alice", "*", opWrite, allow),
			acl(rTopic, literal, "*", "User:*", "*", opWrite, deny),
		}, alice, false},
		{"wildcard allow", ACLOptions{}, []Binding{acl(rTopic, literal, "*", "User:*", "*", opWrite, allow)}, bob, true},
		{"wildcard allow, literal deny", ACLOptions{}, []Binding{
			acl(rTopic, literal, "*", "User:alice", "*", opWrite, allow),
			acl(rTopic, literal, "t1", "User:alice", "*", opWrite, deny),
		}, alice, true},
		{"host mismatch", ACLOptions{}, []Binding{acl(rTopic, literal, "t1", "User:alice", "10.9.9.9", opWrite, allow)}, alice, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewACLAuthorizer(tt.opts)
			a.SetACLs(mustACLs(t, tt.acls...))
			if d := a.AuthorizeByResourceType(context.Background(), tt.rc, opWrite, rTopic); d.Allowed != tt.want {
				t.Fatalf("%+v, want allowed=%v", d, tt.want)
			}
		})
	}
}

func TestSnapshotsAreImmutable(t *testing.T) {
	base := mustACLs(t,
		acl(rTopic, literal, "a", "User:alice", "*", opRead, allow),
		acl(rTopic, literal, "a", "User:alice", "*", opRead, allow), // duplicate
		acl(rTopic, prefixed, "b", "User:bob", "*", opRead, allow),
	)
	if base.Len() != 2 {
		t.Fatalf("Len %d, want duplicates dropped", base.Len())
	}
	more, err := base.With(acl(rGroup, literal, "g", "User:alice", "*", opRead, allow), acl(rTopic, literal, "a", "User:alice", "*", opRead, allow))
	if err != nil || more.Len() != 3 || base.Len() != 2 {
		t.Fatalf("With: %d (base %d) %v", more.Len(), base.Len(), err)
	}
	if _, err := base.With(acl(rTopic, literal, "", "User:alice", "*", opRead, allow)); err == nil {
		t.Fatal("With took an invalid ACL")
	}
	anyOp := Filter{Type: kmsg.ACLResourceTypeAny, PatternType: match, Name: ptr("bx"), Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	byAlice := Filter{Type: kmsg.ACLResourceTypeAny, PatternType: anyPat, Principal: ptr("User:alice"), Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	less, matched := more.Without(anyOp, byAlice, byAlice)
	if less.Len() != 0 || len(matched[0]) != 1 || len(matched[1]) != 2 || len(matched[2]) != 2 || more.Len() != 3 {
		t.Fatalf("Without: left %v, matched %v, original %d", less.All(), matched, more.Len())
	}
	if got := more.Describe(anyOp); len(got) != 1 || got[0].Pattern.Name != "b" {
		t.Fatalf("Describe MATCH bx: %v", got)
	}
	var nilACLs *ACLs
	if nilACLs.Len() != 0 || nilACLs.Describe(anyOp) != nil || nilACLs.All() != nil {
		t.Fatal("a nil snapshot is not empty")
	}
	if _, err := NewACLs([]Binding{acl(rCluster, literal, "c", "User:a", "*", opAlter, allow)}); err == nil {
		t.Fatal("NewACLs took an invalid ACL")
	}
}

// TestSwapWhileAuthorizing: requests read snapshots while the metadata
// log swaps them; every answer is that of one snapshot or the other (run
// with -race).
func TestSwapWhileAuthorizing(t *testing.T) {
	a := NewACLAuthorizer(ACLOptions{})
	open := mustACLs(t, acl(rTopic, literal, "t", "User:alice", "*", opRead, allow))
	closed := mustACLs(t, acl(rTopic, literal, "t", "User:alice", "*", opRead, deny))
	a.SetACLs(open)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			if i%2 == 0 {
				a.SetACLs(open)
			} else {
				a.SetACLs(closed)
			}
		}
		stop.Store(true)
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load() && n < 100000; n++ {
				d := a.Authorize(context.Background(), alice, []Action{topicAct(opRead, "t")})[0]
				if !strings.HasPrefix(d.Reason(), "ACL ") {
					t.Errorf("answer from no snapshot: %+v", d)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// reference is Kafka's decision written as plainly as possible over the
// list of ACLs: the fuzz test checks the indexed authorizer against it.
func reference(bs []Binding, opts ACLOptions, rc RequestContext, act Action) bool {
	for _, s := range opts.SuperUsers {
		if s == rc.Principal {
			return true
		}
	}
	found, allowed := false, false
	for _, b := range bs {
		if b.Pattern.Type != act.Type {
			continue
		}
		applies := b.Pattern.PatternType == literal && (b.Pattern.Name == act.Name || b.Pattern.Name == "*") ||
			b.Pattern.PatternType == prefixed && strings.HasPrefix(act.Name, b.Pattern.Name)
		if !applies {
			continue
		}
		found = true
		if b.Entry.Principal != rc.Principal && b.Entry.Principal != "User:*" {
			continue
		}
		if b.Entry.Host != "*" && netip.MustParseAddr(b.Entry.Host) != rc.Host {
			continue
		}
		op := b.Entry.Operation
		if b.Entry.Permission == deny && (op == act.Operation || op == kmsg.ACLOperationAll) {
			return false
		}
		if b.Entry.Permission == allow {
			implied := op == act.Operation || op == kmsg.ACLOperationAll ||
				act.Operation == opDescribe && (op == opRead || op == opWrite || op == opDelete || op == opAlter) ||
				act.Operation == opDescribeConfigs && op == opAlterConfigs
			allowed = allowed || implied
		}
	}
	if !found {
		return opts.AllowEveryoneIfNoACLFound
	}
	return allowed
}

// FuzzAuthorizerAgainstReference: the indexed, snapshot authorizer and the
// plain reference agree on every decision, and a MATCH filter on a name
// selects exactly the ACLs that apply to that resource.
func FuzzAuthorizerAgainstReference(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(3), "ab", false)
	f.Add([]byte{9, 9, 1, 1, 0, 0, 2, 2, 3, 3, 4, 4, 200, 100}, uint8(8), "a*", true)
	names := []string{"a", "ab", "abc", "b", "*", "ba"}
	principals := []string{"User:alice", "User:bob", "User:*", "Group:alice"}
	hosts := []string{"*", "10.0.0.1", "10.0.0.2"}
	ops := []kmsg.ACLOperation{kmsg.ACLOperationAll, opRead, opWrite, opCreate, opDelete, opAlter, opDescribe, opDescribeConfigs, opAlterConfigs}
	types := []kmsg.ACLResourceType{rTopic, rGroup}
	f.Fuzz(func(t *testing.T, data []byte, opByte uint8, name string, allowEveryone bool) {
		if len(name) == 0 || len(name) > 8 {
			return
		}
		var bs []Binding
		for i := 0; i+1 < len(data) && len(bs) < 40; i += 2 {
			x, y := int(data[i]), int(data[i+1])
			pt := literal
			if x&1 == 1 {
				pt = prefixed
			}
			perm := allow
			if x&2 == 2 {
				perm = deny
			}
			n := names[(x>>2)%len(names)]
			if pt == prefixed && n == "*" {
				n = "a"
			}
			bs = append(bs, acl(types[(x>>5)%len(types)], pt, n, principals[y%len(principals)], hosts[(y>>2)%len(hosts)], ops[(y>>4)%len(ops)], perm))
		}
		opts := ACLOptions{AllowEveryoneIfNoACLFound: allowEveryone}
		if len(data) > 0 && data[0] == 255 {
			opts.SuperUsers = []string{"User:alice"}
		}
		a := NewACLAuthorizer(opts)
		acls := mustACLs(t, bs...)
		a.SetACLs(acls)
		act := Action{ops[1+int(opByte)%(len(ops)-1)], types[int(opByte>>4)%len(types)], name}
		for _, rc := range []RequestContext{alice, bob} {
			got := a.Authorize(context.Background(), rc, []Action{act})[0]
			if want := reference(bs, opts, rc, act); got.Allowed != want {
				t.Fatalf("%s %s with %v: got %+v, reference says %v", rc.Principal, act, bs, got, want)
			}
		}
		// MATCH on the name selects what forResource walks.
		var walked []string
		acls.forResource(act.Type, name, func(p Pattern, e Entry) bool {
			walked = append(walked, Binding{p, e}.String())
			return true
		})
		described := acls.Describe(Filter{Type: act.Type, Name: &name, PatternType: match, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny})
		if len(described) != len(walked) {
			t.Fatalf("MATCH %q described %d ACLs, %d apply: %v vs %v", name, len(described), len(walked), described, walked)
		}
		seen := map[string]bool{}
		for _, w := range walked {
			seen[w] = true
		}
		for _, d := range described {
			if !seen[d.String()] {
				t.Fatalf("MATCH %q described %v, which does not apply", name, d)
			}
		}
	})
}

func TestRouter(t *testing.T) {
	acls := NewACLAuthorizer(ACLOptions{AllowEveryoneIfNoACLFound: true})
	iamSide := authorizerFunc(func(rc RequestContext, acts []Action) []Decision {
		return []Decision{{Allowed: false, reason: "iam says no to " + rc.Principal}}
	})
	r := Router{ACLs: acls, IAM: iamSide}
	if d := r.Authorize(context.Background(), alice, []Action{topicAct(opRead, "t")}); !d[0].Allowed {
		t.Fatalf("ACL principal: %+v", d)
	}
	iamRC := RequestContext{Principal: "User:arn:aws:iam::1:role/r", IAM: true}
	if d := r.Authorize(context.Background(), iamRC, []Action{topicAct(opRead, "t")}); d[0].Allowed || !strings.Contains(d[0].Reason(), "iam says no") {
		t.Fatalf("IAM principal: %+v", d)
	}
}

type authorizerFunc func(RequestContext, []Action) []Decision

func (f authorizerFunc) Authorize(_ context.Context, rc RequestContext, acts []Action) []Decision {
	return f(rc, acts)
}

func BenchmarkAuthorize(b *testing.B) {
	var bs []Binding
	for i := range 1000 {
		bs = append(bs, acl(rTopic, literal, fmt.Sprintf("topic-%d", i), "User:alice", "*", opWrite, allow))
		bs = append(bs, acl(rTopic, prefixed, fmt.Sprintf("team-%d.", i), "User:bob", "*", opRead, allow))
	}
	a := NewACLAuthorizer(ACLOptions{})
	a.SetACLs(mustACLs(b, bs...))
	acts := []Action{topicAct(opWrite, "topic-500"), topicAct(opRead, "team-7.orders")}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a.Authorize(context.Background(), alice, acts)
	}
}
