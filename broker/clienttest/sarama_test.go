package clienttest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

func TestSaramaProduceConsume(t *testing.T) {
	b := startBroker(t)
	codecs := map[string]sarama.CompressionCodec{
		"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
		"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "sarama-" + name
			b.createTopic(t, topic, 2, nil)
			cfg := saramaConfig()
			cfg.Producer.Compression = codec
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
			prod, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			const n = 100
			var msgs []*sarama.ProducerMessage
			for i := range n {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i % 5)), Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", name, i))})
			}
			if err := prod.SendMessages(msgs); err != nil {
				t.Fatalf("sending: %v", err)
			}

			cons, err := sarama.NewConsumer([]string{b.addr}, saramaConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			seen := map[string]int{}
			for _, p := range []int32{0, 1} {
				pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				hw := pc.HighWaterMarkOffset()
				timeout := time.After(20 * time.Second)
				for read := int64(0); read < hw; read++ {
					select {
					case m := <-pc.Messages():
						seen[string(m.Value)]++
					case err := <-pc.Errors():
						t.Fatalf("consuming: %v", err)
					case <-timeout:
						t.Fatalf("partition %d: read %d of %d", p, read, hw)
					}
				}
				pc.Close()
			}
			for i := range n {
				if v := fmt.Sprintf("%s-%d", name, i); seen[v] != 1 {
					t.Fatalf("%s seen %d times", v, seen[v])
				}
			}
		})
	}
}

func TestSaramaAdmin(t *testing.T) {
	b := startBroker(t)
	admin, err := sarama.NewClusterAdmin([]string{b.addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	retention := "3600000"
	if err := admin.CreateTopic("sarama-admin", &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &retention}}, false); err != nil {
		t.Fatalf("create: %v", err)
	}
	topics, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := topics["sarama-admin"]; !ok || d.NumPartitions != 3 {
		t.Fatalf("listed %+v", topics["sarama-admin"])
	}
	results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: "sarama-admin"}}, sarama.DescribeConfigsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].ErrorCode != sarama.ErrNoError {
		t.Fatalf("describe configs: %+v", results)
	}
	entries := results[0].Configs
	found := false
	for _, e := range entries {
		if e.Name == "retention.ms" {
			found = e.Value == retention
		}
	}
	if !found {
		t.Fatalf("retention.ms not described as %s: %+v", retention, entries)
	}
	if err := admin.CreatePartitions("sarama-admin", 5, nil, false); err != nil {
		t.Fatalf("create partitions: %v", err)
	}
	if err := admin.DeleteTopic("sarama-admin"); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// saramaHandler counts the records a sarama group member consumes and
// marks them, so the session commits them.
type saramaHandler struct {
	mu   sync.Mutex
	seen map[string]int
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		h.seen[string(m.Value)]++
		h.mu.Unlock()
		sess.MarkMessage(m, "")
	}
	return nil
}

func (h *saramaHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func TestSaramaConsumerGroup(t *testing.T) {
	b := startBroker(t)
	b.createTopic(t, "sarama-group", 3, nil)
	produceSync(t, b.client(t, kgo.DefaultProduceTopic("sarama-group")), "sarama-group", 150, "sg")

	cfg := saramaConfig()
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	group, err := sarama.NewConsumerGroup([]string{b.addr}, "sarama-group-id", cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &saramaHandler{seen: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{"sarama-group"}, h); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	waitFor(t, "sarama to consume every record", 30*time.Second, func() bool { return h.count() >= 150 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("consume: %v", err)
	}
	if err := group.Close(); err != nil { // commits the marked offsets
		t.Fatalf("close: %v", err)
	}
	for v, n := range h.seen {
		if n != 1 {
			t.Fatalf("%s consumed %d times", v, n)
		}
	}
	assertCommitted(t, b, "sarama-group-id", "sarama-group", 150)
}
