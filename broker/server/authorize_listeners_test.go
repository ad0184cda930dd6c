package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
)

// TestMutualTLSPrincipalAuthorized: a client named by its certificate
// (User:app on the mutual-TLS listener) is refused what no ACL allows it
// (allow.everyone.if.no.acl.found is false beside an authenticating
// listener) and allowed what an ACL made by an administrator allows; the
// administrator is a super user on the PLAINTEXT listener.
func TestMutualTLSPrincipalAuthorized(t *testing.T) {
	e := newTLSEnv(t)
	props := threeListeners(e)
	props["super.users"] = "User:ANONYMOUS"
	s, _ := startListeners(t, props)
	if s.Config().AllowEveryoneIfNoACLFound() {
		t.Fatal("allow.everyone.if.no.acl.found is true beside a mutual-TLS listener")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "payments"); err != nil {
		t.Fatal(err)
	}

	app, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_MTLS").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, &e.client)),
		kgo.RecordRetries(2), kgo.DefaultProduceTopic("payments"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := app.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("User:app without ACLs: %v, want an authorization error", err)
	}
	for _, b := range []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:app").AllowHosts().Topics("payments").ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpWrite),
		kadm.NewACLs().Allow("User:app").AllowHosts().Clusters().Operations(kadm.OpIdempotentWrite),
	} {
		created, err := adm.CreateACLs(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range created {
			if c.Err != nil {
				t.Fatalf("creating %+v: %v", c, c.Err)
			}
		}
	}
	// A new client: franz-go keeps a producer id refusal for the client's
	// life.
	app2, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_MTLS").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, &e.client)),
		kgo.DefaultProduceTopic("payments"))
	if err != nil {
		t.Fatal(err)
	}
	defer app2.Close()
	if err := app2.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr(); err != nil {
		t.Fatalf("User:app with WRITE on payments and IDEMPOTENT_WRITE: %v", err)
	}
	if err := app2.ProduceSync(ctx, &kgo.Record{Topic: "other", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("User:app to a topic it may not write: %v", err)
	}
}

// TestBrokersNeedNoACLs: in a three-broker cluster where nothing is open
// without an ACL and the clients may only write and read one topic, the
// brokers' own traffic (the metadata quorum, followers fetching, the ISR
// and high watermark they move) needs no ACL: acks=all with replication
// factor 3 succeeds.
func TestBrokersNeedNoACLs(t *testing.T) {
	c := startInProcessCluster(t, func(cfg *config.Config) {
		if err := cfg.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	s := c.servers[1]
	grant := []metadata.ACL{topicACL("orders", kmsg.ACLOperationCreate), topicACL("orders", kmsg.ACLOperationWrite), topicACL("orders", kmsg.ACLOperationRead)}
	if err := s.meta.CreateACLs(context.Background(), grant); err != nil {
		t.Fatal(err)
	}
	c.createReplicated("orders", 1)
	leader, _ := c.leader("orders", 0)
	resp := roundTrip[*kmsg.ProduceResponse](t, c.servers[leader], produceReq("orders", -1, batch(-1, -1, -1, 5, 10)))
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("acks=all produce to a replication factor 3 topic: %v", kerr.ErrorForCode(code))
	}
	// The followers have the records: the high watermark passed them.
	waitCluster(t, 10*time.Second, func() error {
		f := fetchReq("orders", 0, 1<<20, 1<<20)
		p := roundTrip[*kmsg.FetchResponse](t, c.servers[leader], f).Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != 5 {
			return fmt.Errorf("fetch: %v, high watermark %d", kerr.ErrorForCode(p.ErrorCode), p.HighWatermark)
		}
		return nil
	})
	// And the clients can do nothing else.
	other := roundTrip[*kmsg.ProduceResponse](t, c.servers[leader], produceReq("other", -1, batch(-1, -1, -1, 1, 10)))
	if code := other.Topics[0].Partitions[0].ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("produce to a topic without ACL: %v", kerr.ErrorForCode(code))
	}
}
