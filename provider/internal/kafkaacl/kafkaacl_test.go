package kafkaacl

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/chaos"
	"github.com/tributary/tributary/internal/testenv"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

func TestBindingChecksAsKafka(t *testing.T) {
	ok := ACL{ResourceType: "TOPIC", ResourceName: "orders", PatternType: "LITERAL", Principal: "User:alice", Host: "*", Operation: "WRITE", Permission: "ALLOW"}
	if _, err := ok.Binding(); err != nil {
		t.Fatalf("valid ACL refused: %v", err)
	}
	tests := []struct {
		name string
		edit func(*ACL)
		want string
	}{
		{"unknown resource type", func(a *ACL) { a.ResourceType = "QUEUE" }, "one of CLUSTER, GROUP, TOPIC, TRANSACTIONAL_ID"},
		{"delegation tokens are not served", func(a *ACL) { a.ResourceType = "DELEGATION_TOKEN" }, "one of"},
		{"ANY is a filter, not an ACL", func(a *ACL) { a.ResourceType = "ANY" }, "one of"},
		{"lower case is spelled as Kafka", func(a *ACL) { a.Operation = "write" }, `"write" is written WRITE`},
		{"MATCH is a filter", func(a *ACL) { a.PatternType = "MATCH" }, "LITERAL or PREFIXED"},
		{"operation the type does not support", func(a *ACL) { a.ResourceType = "GROUP" }, "a GROUP ACL may name ALL, READ, DESCRIBE, DELETE"},
		{"cluster name", func(a *ACL) { a.ResourceType = "CLUSTER"; a.Operation = "ALTER" }, "kafka-cluster"},
		{"principal without a type", func(a *ACL) { a.Principal = "alice" }, "not Type:name"},
		{"host name instead of an address", func(a *ACL) { a.Host = "app.internal" }, "not an IP address"},
		{"permission", func(a *ACL) { a.Permission = "MAYBE" }, "ALLOW or DENY"},
		{"empty name", func(a *ACL) { a.ResourceName = "" }, "empty resource name"},
		{"principal type in lower case", func(a *ACL) { a.Principal = "user:alice" }, `"user:alice" is written User:alice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ok
			tt.edit(&a)
			_, err := a.Binding()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Binding() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestProblemsListsEveryMistake: a plan names every argument that is
// wrong, each with its own message, not only the first one found.
func TestProblemsListsEveryMistake(t *testing.T) {
	a := ACL{ResourceType: "CLUSTER", ResourceName: "prod", PatternType: "literal", Principal: "user:alice", Host: "app.internal", Operation: "READ", Permission: "MAYBE"}
	want := map[string]string{
		"resource_name": "kafka-cluster",
		"pattern_type":  `"literal" is written LITERAL`,
		"principal":     `"user:alice" is written User:alice`,
		"host":          "not an IP address",
		"operation":     "a CLUSTER ACL may name",
		"permission":    "ALLOW or DENY",
	}
	got := map[string]string{}
	for _, p := range a.Problems() {
		if _, dup := got[p.Field]; dup {
			t.Errorf("two problems for %s: %q and %q", p.Field, got[p.Field], p.Error())
		}
		got[p.Field] = p.Error()
	}
	for field, w := range want {
		if !strings.Contains(got[field], w) {
			t.Errorf("problem for %s = %q, want one containing %q", field, got[field], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("problems for %d fields (%v), want %d", len(got), got, len(want))
	}
	if _, err := a.Binding(); err == nil {
		t.Error("Binding accepted an ACL with problems")
	}
	// With the resource type wrong too, the operation is checked against
	// every type's.
	bad := ACL{ResourceType: "SCHEMA", ResourceName: "x", PatternType: "LITERAL", Principal: "User:a", Host: "*", Operation: "FLY", Permission: "ALLOW"}
	if ps := bad.Problems(); len(ps) != 2 || ps[0].Field != "resource_type" || ps[1].Field != "operation" || !strings.Contains(ps[1].Error(), `operation "FLY": one of ALL, ALTER`) {
		t.Errorf("Problems(%+v) = %v, want the resource type's and the operation's", bad, ps)
	}
	// A principal type the brokers never produce but spelled otherwise
	// than User stays allowed (Kafka allows custom principal types).
	ok := ACL{ResourceType: "TOPIC", ResourceName: "orders", PatternType: "LITERAL", Principal: "Group:ops", Host: "::1", Operation: "READ", Permission: "DENY"}
	if ps := ok.Problems(); len(ps) != 0 {
		t.Errorf("Problems(%+v) = %v, want none", ok, ps)
	}
}

func TestIDRoundTrip(t *testing.T) {
	for _, a := range []ACL{
		{ResourceType: "TOPIC", ResourceName: "orders", PatternType: "PREFIXED", Principal: "User:CN=app,OU=payments", Host: "10.0.0.7", Operation: "READ", Permission: "DENY"},
		{ResourceType: "GROUP", ResourceName: "a|b", PatternType: "LITERAL", Principal: "User:arn:aws:iam::123456789012:role/app", Host: "*", Operation: "READ", Permission: "ALLOW"},
	} {
		cid, got, err := ParseID(a.ID("tc-0123456789abcdef"))
		if err != nil || cid != "tc-0123456789abcdef" || got != a {
			t.Fatalf("ParseID(ID(%+v)) = %q, %+v, %v", a, cid, got, err)
		}
	}
	for _, bad := range []string{"tc-0123456789abcdef|TOPIC|orders", "tc-0123456789abcdef|TOPIC|LITERAL|orders|User:a|*|FLY|ALLOW"} {
		if _, _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

// TestACLLifecycleIsEnforced runs three brokers whose plaintext clients are
// User:ANONYMOUS, denies that principal WRITE on one topic through Create,
// and checks that every broker holds the ACL, that a real producer is
// refused on that topic and not on another, and that after Delete the
// producer writes again.
func TestACLLifecycleIsEnforced(t *testing.T) {
	c, err := chaos.NewCluster(chaos.ClusterConfig{Binary: testenv.BrokerBinary(t), Dir: t.TempDir(), Nodes: 3,
		Settings: map[string]string{"default.replication.factor": "3", "min.insync.replicas": "1", "auto.create.topics.enable": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var brokers []kafkaconn.Broker
	for _, n := range c.Nodes() {
		if err := c.WaitServing(ctx, n.ID); err != nil {
			t.Fatalf("broker %d: %v\n%s", n.ID, err, c.Log(n.ID, 2000))
		}
		brokers = append(brokers, kafkaconn.Broker{NodeID: n.ID, Addr: n.KafkaAddr()})
	}
	conn := kafkaconn.New("test", brokers)
	ad := &Admin{Conn: conn, PollInterval: 100 * time.Millisecond}

	deny := ACL{ResourceType: "TOPIC", ResourceName: "locked", PatternType: "LITERAL", Principal: "User:ANONYMOUS", Host: "*", Operation: "WRITE", Permission: "DENY"}
	if has, err := ad.Exists(ctx, deny); err != nil || has {
		t.Fatalf("Exists before Create = %v, %v", has, err)
	}
	if err := ad.Create(ctx, deny); err != nil {
		t.Fatal(err)
	}
	if err := ad.Create(ctx, deny); err != nil {
		t.Fatalf("creating the same ACL again: %v", err)
	}
	if has, err := ad.Exists(ctx, deny); err != nil || !has {
		t.Fatalf("Exists after Create = %v, %v", has, err)
	}
	// Create returned once every broker holds it: each one refuses now.
	for _, b := range brokers {
		if err := produce(ctx, b.Addr, "locked"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("produce to the denied topic through broker %d: %v, want TOPIC_AUTHORIZATION_FAILED", b.NodeID, err)
		}
	}
	if err := produce(ctx, brokers[0].Addr, "open"); err != nil {
		t.Fatalf("produce to a topic without ACLs: %v", err)
	}

	if err := ad.Delete(ctx, deny); err != nil {
		t.Fatal(err)
	}
	if err := ad.Delete(ctx, deny); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting it again: %v, want ErrNotFound", err)
	}
	for _, b := range brokers {
		if err := produce(ctx, b.Addr, "locked"); err != nil {
			t.Fatalf("produce through broker %d after the ACL was deleted: %v", b.NodeID, err)
		}
	}

	bad := deny
	bad.Operation = "CLUSTER_ACTION"
	if err := ad.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "a TOPIC ACL may name") {
		t.Fatalf("creating an ACL with an operation topics do not support: %v", err)
	}
}

// produce writes one record, acks=all, with addr as the only seed broker.
func produce(ctx context.Context, addr, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.RecordRetries(3),
		kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
}

// TestCreateThatLocksTheCallerOut: an ACL on the CLUSTER resource for
// another principal takes the unauthenticated caller's access away (a
// resource with ACLs allows only what they allow). Create says so at once,
// as a change the cluster took, instead of polling
// CLUSTER_AUTHORIZATION_FAILED until its context ends (2 minutes in the
// resource).
func TestCreateThatLocksTheCallerOut(t *testing.T) {
	c, err := chaos.NewCluster(chaos.ClusterConfig{Binary: testenv.BrokerBinary(t), Dir: t.TempDir(), Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := c.Nodes()[0]
	if err := c.WaitServing(ctx, n.ID); err != nil {
		t.Fatalf("broker %d: %v\n%s", n.ID, err, c.Log(n.ID, 2000))
	}
	ad := &Admin{Conn: kafkaconn.New("test", []kafkaconn.Broker{{NodeID: n.ID, Addr: n.KafkaAddr()}}), PollInterval: 100 * time.Millisecond}
	lock := ACL{ResourceType: "CLUSTER", ResourceName: "kafka-cluster", PatternType: "LITERAL", Principal: "User:CN=app", Host: "*", Operation: "DESCRIBE", Permission: "DENY"}
	if has, err := ad.Exists(ctx, lock); err != nil || has {
		t.Fatalf("Exists before Create = %v, %v", has, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	start := time.Now()
	err = ad.Create(wctx, lock)
	took := time.Since(start)
	if !errors.Is(err, ErrUnconfirmed) || !errors.Is(err, kerr.ClusterAuthorizationFailed) || !strings.Contains(err.Error(), "allow the provider's principal first") {
		t.Fatalf("Create after %v: %v; want the ACL taken and CLUSTER_AUTHORIZATION_FAILED with the reason", took, err)
	}
	if took > 20*time.Second {
		t.Errorf("Create took %v to give up; an authorization failure does not pass by waiting", took)
	}
	// The ACL is there: the caller is locked out of what it did before.
	if _, err := ad.Exists(ctx, lock); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("describing the ACLs after the lock-out: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
}
