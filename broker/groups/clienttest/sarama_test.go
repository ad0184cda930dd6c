package clienttest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
)

// saramaHandler records every message it is given and marks it for commit.
type saramaHandler struct {
	mu     *sync.Mutex
	seen   map[string]int
	claims *int
}

func (h saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, parts := range s.Claims() {
		*h.claims += len(parts)
	}
	return nil
}

func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.mu.Lock()
		h.seen[string(msg.Value)]++
		h.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

// TestSaramaConsumerGroup runs sarama consumer groups at two protocol
// levels: Kafka 2.1, the oldest Kafka 4 accepts (JoinGroup v3), and Kafka 2.8
// (JoinGroup v5 with KIP-394 member ids). Two consumers share the topic;
// when one closes, the other takes over its partitions and nothing is lost.
func TestSaramaConsumerGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end broker test")
	}
	for _, version := range []sarama.KafkaVersion{sarama.V2_1_0_0, sarama.V2_8_0_0} {
		t.Run(version.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			addr, _ := startBroker(t, t.TempDir())
			adm := newAdmin(t, addr)
			const topic, group = "payments", "sarama-group"
			if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
				t.Fatalf("creating topic: %v", err)
			}
			produce(t, ctx, addr, topic, 0, 200)

			var mu sync.Mutex
			seen := map[string]int{}
			count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
			start := func(name string) (claims *int, stop func()) {
				cfg := sarama.NewConfig()
				cfg.Version = version
				cfg.ClientID = name
				cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
				cfg.Consumer.Offsets.AutoCommit.Interval = 50 * time.Millisecond
				cfg.Consumer.Group.Session.Timeout = 3 * time.Second
				cfg.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
				cfg.Consumer.Group.Rebalance.Timeout = 3 * time.Second
				cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
				cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
				if err != nil {
					t.Fatalf("%s: NewConsumerGroup: %v", name, err)
				}
				claims = new(int)
				h := saramaHandler{mu: &mu, seen: seen, claims: claims}
				cctx, ccancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() {
					defer close(done)
					for cctx.Err() == nil {
						if err := cg.Consume(cctx, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
							t.Errorf("%s: Consume: %v", name, err)
							return
						}
					}
				}()
				return claims, func() {
					ccancel()
					<-done
					if err := cg.Close(); err != nil {
						t.Errorf("%s: Close: %v", name, err)
					}
				}
			}

			_, stopA := start("a")
			waitUntil(t, "the first consumer to read 200 records", 30*time.Second, func() bool { return count() == 200 })
			claimsB, stopB := start("b")
			waitUntil(t, "two stable members", 30*time.Second, func() bool {
				d := describeGroup(t, ctx, adm, group)
				return d.State == "Stable" && len(d.Members) == 2
			})
			produce(t, ctx, addr, topic, 200, 400)
			waitUntil(t, "400 records", 30*time.Second, func() bool { return count() == 400 })
			stopA()
			waitUntil(t, "one stable member after a left", 30*time.Second, func() bool {
				d := describeGroup(t, ctx, adm, group)
				return d.State == "Stable" && len(d.Members) == 1
			})
			produce(t, ctx, addr, topic, 400, 600)
			waitUntil(t, "600 records", 30*time.Second, func() bool { return count() == 600 })
			stopB()

			mu.Lock()
			for i := range 600 {
				if seen[strconv.Itoa(i)] == 0 {
					t.Errorf("record %d never consumed", i)
				}
			}
			if *claimsB == 0 {
				t.Errorf("the second consumer never got a partition")
			}
			mu.Unlock()
			// sarama commits marked offsets on Close.
			offsets, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				t.Fatalf("FetchOffsets: %v", err)
			}
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				t.Fatalf("ListEndOffsets: %v", err)
			}
			ends.Each(func(e kadm.ListedOffset) {
				if o, ok := offsets.Lookup(topic, e.Partition); !ok || o.At != e.Offset {
					t.Errorf("partition %d committed %v, want the end offset %d", e.Partition, o.At, e.Offset)
				}
			})
		})
	}
}
