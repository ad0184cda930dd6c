package kafkaquota

import (
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/chaos"
	"github.com/tributary/tributary/internal/testenv"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

func TestValidateAsTheBrokers(t *testing.T) {
	tests := []struct {
		e      Entity
		values map[string]float64
		want   string
	}{
		{Entity{User: "alice"}, map[string]float64{"producer_byte_rate": 1024, "request_percentage": 12.5}, ""},
		{Entity{User: Default, ClientID: "app"}, map[string]float64{"consumer_byte_rate": 1}, ""},
		{Entity{IP: Default}, map[string]float64{"connection_creation_rate": 5}, ""},
		{Entity{}, nil, "at least one of user, client-id or ip"},
		{Entity{IP: "10.0.0.300"}, nil, "not an IP address"},
		{Entity{IP: "10.0.0.1", User: "a"}, nil, "cannot be combined"},
		{Entity{User: "alice"}, map[string]float64{}, "at least one of"},
		{Entity{User: "alice"}, map[string]float64{"producer_rate": 1}, `unknown quota key "producer_rate"`},
		{Entity{User: "alice"}, map[string]float64{"connection_creation_rate": 1}, "does not apply to entity user=alice"},
		{Entity{User: "alice"}, map[string]float64{"producer_byte_rate": 0}, "greater than 0"},
		{Entity{User: "alice"}, map[string]float64{"producer_byte_rate": 10.5}, "whole number"},
	}
	for _, tt := range tests {
		err := tt.e.Validate()
		if err == nil && tt.values != nil {
			err = tt.e.ValidateValues(tt.values)
		}
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s %v: %v, want %q", tt.e, tt.values, err, tt.want)
		}
	}
}

// TestProblemsAtTheirArgument: every mistake that belongs to one argument
// is listed with it, all at once, including names the brokers store but
// never match.
func TestProblemsAtTheirArgument(t *testing.T) {
	tests := []struct {
		e      Entity
		values map[string]float64
		want   map[string]string // field -> part of its message
	}{
		{Entity{User: "alice"}, map[string]float64{"producer_byte_rate": 1}, nil},
		{Entity{User: "CN=app,OU=User:x"}, map[string]float64{"producer_byte_rate": 1}, nil},
		{Entity{IP: "2001:db8::1"}, map[string]float64{"connection_creation_rate": 1}, nil},
		{Entity{IP: Default}, map[string]float64{"connection_creation_rate": 1}, nil},
		{Entity{User: "User:alice"}, nil, map[string]string{"user": `without User:, "alice"`}},
		{Entity{User: "user:alice"}, nil, map[string]string{"user": `without User:, "alice"`}},
		{Entity{IP: "2001:DB8::1"}, nil, map[string]string{"ip": "is written 2001:db8::1"}},
		{Entity{IP: "::ffff:10.0.0.1"}, nil, map[string]string{"ip": "is written 10.0.0.1"}},
		{Entity{IP: "app.internal"}, nil, map[string]string{"ip": "not an IP address"}},
		{Entity{ClientID: "app"}, map[string]float64{"producer_byte_rate": -1, "connection_creation_rate": 5, "request_percentage": 50},
			map[string]string{"producer_byte_rate": "greater than 0", "connection_creation_rate": "does not apply to entity client-id=app"}},
	}
	for _, tt := range tests {
		got := map[string]string{}
		for _, p := range tt.e.Problems(tt.values) {
			got[p.Field] += p.Error()
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s %v: problems %v, want %v", tt.e, tt.values, got, tt.want)
			continue
		}
		for f, w := range tt.want {
			if !strings.Contains(got[f], w) {
				t.Errorf("%s %v: problem for %s = %q, want one containing %q", tt.e, tt.values, f, got[f], w)
			}
		}
	}
}

func TestIDRoundTrip(t *testing.T) {
	for _, e := range []Entity{{User: "CN=app,OU=payments"}, {User: Default, ClientID: "a=b"}, {ClientID: Default}, {IP: "::1"}} {
		cid, got, err := ParseID(e.ID("tc-0123456789abcdef"))
		if err != nil || cid != "tc-0123456789abcdef" || got != e {
			t.Fatalf("ParseID(ID(%+v)) = %q, %+v, %v", e, cid, got, err)
		}
	}
	for _, bad := range []string{"tc-0123456789abcdef", "tc-0123456789abcdef|group=g", "tc-0123456789abcdef|user=a|user=b", "tc-0123456789abcdef|user="} {
		if _, _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

// TestQuotaLifecycleIsEnforced runs three brokers, sets a quota on every
// unauthenticated client (user=<default>) through Set, and checks that
// each broker throttles a real producer once Set returned, that an update
// in place changes the values exactly, and that after removal nothing is
// throttled.
func TestQuotaLifecycleIsEnforced(t *testing.T) {
	c, err := chaos.NewCluster(chaos.ClusterConfig{Binary: testenv.BrokerBinary(t), Dir: t.TempDir(), Nodes: 3,
		// Rates over 2 one-second samples: a new client's burst is one
		// second's worth.
		Settings: map[string]string{"default.replication.factor": "1", "auto.create.topics.enable": "true", "quota.window.num": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var brokers []kafkaconn.Broker
	for _, n := range c.Nodes() {
		if err := c.WaitServing(ctx, n.ID); err != nil {
			t.Fatalf("broker %d: %v\n%s", n.ID, err, c.Log(n.ID, 2000))
		}
		brokers = append(brokers, kafkaconn.Broker{NodeID: n.ID, Addr: n.KafkaAddr()})
	}
	ad := &Admin{Conn: kafkaconn.New("test", brokers), PollInterval: 100 * time.Millisecond}
	e := Entity{User: Default}
	if _, err := ad.Describe(ctx, e); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Describe before Set: %v", err)
	}
	want := map[string]float64{"producer_byte_rate": 64 << 10, "request_percentage": 50}
	if err := ad.Set(ctx, e, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ad.Describe(ctx, e); err != nil || !maps.Equal(got, want) {
		t.Fatalf("Describe after Set: %v %v", got, err)
	}
	for _, b := range brokers {
		if n := throttles(ctx, t, b.Addr, 256<<10); n == 0 {
			t.Fatalf("broker %d did not throttle a producer sending 256 KiB against 64 KiB/s", b.NodeID)
		}
	}
	// In place: one key changed, one removed.
	want = map[string]float64{"producer_byte_rate": 1 << 30}
	if err := ad.Set(ctx, e, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ad.Describe(ctx, e); err != nil || !maps.Equal(got, want) {
		t.Fatalf("Describe after the update: %v %v", got, err)
	}
	if err := ad.Set(ctx, e, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ad.Describe(ctx, e); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Describe after removal: %v", err)
	}
	if n := throttles(ctx, t, brokers[0].Addr, 256<<10); n != 0 {
		t.Fatalf("throttled %d times after the quota was removed", n)
	}
	if err := ad.Set(ctx, e, map[string]float64{"connection_creation_rate": 1}); err == nil || !strings.Contains(err.Error(), "does not apply") {
		t.Fatalf("setting an ip key on a user entity: %v", err)
	}
}

// throttles produces n random bytes with addr as the only seed (to a topic
// this broker leads, created for it) and counts the throttles the client
// is told of.
func throttles(ctx context.Context, t *testing.T, addr string, n int) int64 {
	t.Helper()
	var count atomic.Int64
	hook := throttleHook{&count}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.WithHooks(hook))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic := "q-" + strings.NewReplacer(":", "-", ".", "-").Replace(addr)
	var recs []*kgo.Record
	for range n / 1024 {
		v := make([]byte, 1024)
		_, _ = rand.Read(v)
		recs = append(recs, &kgo.Record{Topic: topic, Value: v})
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing through %s: %v", addr, err)
	}
	return count.Load()
}

type throttleHook struct{ n *atomic.Int64 }

func (h throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	if d > 0 {
		h.n.Add(1)
	}
}
