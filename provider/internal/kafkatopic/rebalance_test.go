package kafkatopic

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/chaos"
	"github.com/tributary/tributary/internal/testenv"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// threeToSix is a topic of 6 partitions with 3 replicas on brokers 1-3
// (racks a, b, c), and brokers 4-6 (racks a, b, c) that hold nothing.
func threeToSix() kadm.Metadata {
	rack := func(s string) *string { return &s }
	md := kadm.Metadata{Topics: kadm.TopicDetails{"t": {Topic: "t", Partitions: kadm.PartitionDetails{}}}}
	for id := int32(1); id <= 6; id++ {
		md.Brokers = append(md.Brokers, kadm.BrokerDetail{NodeID: id, Rack: rack(string(rune('a' + (id-1)%3)))})
	}
	for p := int32(0); p < 6; p++ {
		r := []int32{1 + p%3, 1 + (p+1)%3, 1 + (p+2)%3}
		md.Topics["t"].Partitions[p] = kadm.PartitionDetail{Topic: "t", Partition: p, Replicas: r}
	}
	return md
}

// TestPlanOntoNewBrokers: 18 replicas over 6 brokers is 3 each, so 9 move
// onto brokers 4-6, only from old brokers to new ones, and every partition
// still spans the three racks.
func TestPlanOntoNewBrokers(t *testing.T) {
	md := threeToSix()
	st, err := placementState(md)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := planOnto(st, []int32{4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	rack := map[int32]int32{1: 0, 2: 1, 3: 2, 4: 0, 5: 1, 6: 2}
	held := map[int32]int{}
	moved := 0
	for p := int32(0); p < 6; p++ {
		replicas := md.Topics["t"].Partitions[p].Replicas
		if target, ok := targets["t"][p]; ok {
			for i, r := range target {
				if r != replicas[i] && r < 4 {
					t.Errorf("partition %d: %v -> %v moves a replica between old brokers", p, replicas, target)
				}
				if r >= 4 {
					moved++
				}
			}
			replicas = target
		}
		racks := map[int32]bool{}
		for _, r := range replicas {
			held[r]++
			racks[rack[r]] = true
		}
		if len(racks) != 3 {
			t.Errorf("partition %d on %v spans %d racks, want 3", p, replicas, len(racks))
		}
	}
	if moved != 9 {
		t.Errorf("%d replicas moved onto brokers 4-6, want 9 (targets %v)", moved, targets)
	}
	for id := int32(1); id <= 6; id++ {
		if held[id] != 3 {
			t.Errorf("broker %d holds %d replicas, want 3 (%v)", id, held[id], held)
		}
	}
}

func TestPlanOntoRefusesUnknownBroker(t *testing.T) {
	st, err := placementState(threeToSix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planOnto(st, []int32{7}); err == nil {
		t.Fatal("planning onto broker 7, which the cluster does not list, succeeded")
	}
}

// TestRebalanceOntoJoinedBrokers: a topic on brokers 1-3 with 300 records;
// brokers 4-6 join; RebalanceOnto gives each new broker its share of the
// replicas, every broker agrees, each partition still spans three racks,
// leaders follow the preferred replicas, and every record reads back.
func TestRebalanceOntoJoinedBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six broker processes; skipped with -short")
	}
	c, err := chaos.NewCluster(chaos.ClusterConfig{Binary: testenv.BrokerBinary(t), Dir: t.TempDir(), Nodes: 6,
		Settings: map[string]string{"default.replication.factor": "3", "min.insync.replicas": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var brokers []kafkaconn.Broker
	for _, n := range c.Nodes() {
		brokers = append(brokers, kafkaconn.Broker{NodeID: n.ID, Addr: n.KafkaAddr()})
	}
	serve := func(ids ...int32) {
		t.Helper()
		for _, id := range ids {
			if err := c.Start(id); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			if err := c.WaitServing(ctx, id); err != nil {
				t.Fatalf("broker %d: %v\n%s", id, err, c.Log(id, 2000))
			}
		}
	}
	serve(1, 2, 3)
	logs := &logLines{}
	a := &Admin{Conn: kafkaconn.New("test", brokers[:3]), Log: logs.add, PollInterval: 100 * time.Millisecond}
	if err := a.Create(ctx, Spec{Name: "spread", Partitions: 6, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()[:3]...), kgo.DefaultProduceTopic("spread"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 300 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("producing record %d: %v", i, err)
		}
	}

	serve(4, 5, 6)
	a.Conn = kafkaconn.New("test", brokers)
	// The new brokers register with the controller a moment after they serve.
	adm, err := a.Conn.Admin()
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		md, err := adm.BrokerMetadata(ctx)
		if err == nil && len(md.Brokers) == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("brokers 4-6 never listed: %v %v\nbroker 4's log:\n%s", err, md.Brokers, c.Log(4, 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	start := time.Now()
	res, err := a.RebalanceOnto(ctx, []int32{4, 5, 6})
	if err != nil {
		t.Fatalf("%v\nbroker 4's log:\n%s\nbroker 1's log:\n%s", err, c.Log(4, 4000), c.Log(1, 4000))
	}
	t.Logf("rebalance onto brokers 4-6: %d replicas in %d partitions moved, %d leaders, in %s",
		res.Moved, res.Partitions, res.Leaders, time.Since(start).Round(10*time.Millisecond))
	if res.Moved != 9 || res.Partitions == 0 {
		t.Errorf("moved %d replicas in %d partitions, want 9 (18 replicas, 3 per broker)", res.Moved, res.Partitions)
	}
	if !logs.contains("rebalance done") {
		t.Error("no progress logged")
	}
	racks := map[int32]string{1: "a", 2: "b", 3: "c", 4: "a", 5: "b", 6: "c"}
	topic := describe(ctx, t, a, "spread")
	held := map[int32]int{}
	for i, p := range topic.Partitions {
		zones := map[string]bool{}
		for _, r := range p.Replicas {
			held[r]++
			zones[racks[r]] = true
		}
		if len(zones) != 3 {
			t.Errorf("partition %d on %v spans %d racks", i, p.Replicas, len(zones))
		}
		if len(p.ISR) != 3 {
			t.Errorf("partition %d has ISR %v, want all of %v", i, p.ISR, p.Replicas)
		}
		if p.Leader != p.Replicas[0] {
			t.Errorf("partition %d is led by %d, not its preferred leader %d", i, p.Leader, p.Replicas[0])
		}
	}
	for id := int32(1); id <= 6; id++ {
		if held[id] != 3 {
			t.Errorf("broker %d holds %d replicas of spread, want 3 (%v)", id, held[id], held)
		}
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.ConsumeTopics("spread"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]bool{}
	for len(seen) < 300 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Key)] = true })
	}
	if len(seen) != 300 {
		t.Fatalf("read back %d of 300 records after the rebalance", len(seen))
	}
}
