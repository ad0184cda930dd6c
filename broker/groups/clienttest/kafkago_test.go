package clienttest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestKafkaGoConsumerGroup runs kafka-go readers in one group: kafka-go
// speaks the oldest group versions (FindCoordinator v0, JoinGroup v1/v2,
// SyncGroup/Heartbeat/LeaveGroup v0, OffsetCommit v2, OffsetFetch v1). Two
// readers share the partitions; when one closes, the other takes over, and
// nothing is lost.
func TestKafkaGoConsumerGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end broker test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, _ := startBroker(t, t.TempDir())
	adm := newAdmin(t, addr)
	const topic, group = "events", "kafka-go-group"
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatalf("creating topic: %v", err)
	}
	produce(t, ctx, addr, topic, 0, 200)

	var mu sync.Mutex
	seen := map[string]int{}
	byReader := map[string]int{}
	newReader := func(name string) (stop func()) {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:           []string{addr},
			GroupID:           group,
			Topic:             topic,
			StartOffset:       kafka.FirstOffset,
			MaxWait:           100 * time.Millisecond,
			HeartbeatInterval: 100 * time.Millisecond,
			SessionTimeout:    3 * time.Second,
			RebalanceTimeout:  3 * time.Second,
			JoinGroupBackoff:  100 * time.Millisecond,
			ReadBackoffMin:    50 * time.Millisecond,
			ReadBackoffMax:    100 * time.Millisecond,
			// CommitInterval 0: ReadMessage commits each message
			// synchronously (OffsetCommit v2) before returning it.
		})
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				m, err := r.ReadMessage(rctx)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("%s: ReadMessage: %v", name, err)
					}
					return
				}
				mu.Lock()
				seen[string(m.Value)]++
				byReader[name]++
				mu.Unlock()
			}
		}()
		return func() {
			rcancel()
			<-done
			if err := r.Close(); err != nil {
				t.Errorf("%s: Close: %v", name, err)
			}
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

	stopA := newReader("a")
	waitUntil(t, "the first reader to read 200 records", 30*time.Second, func() bool { return count() == 200 })
	stopB := newReader("b")
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
	defer mu.Unlock()
	for i := range 600 {
		if seen[strconv.Itoa(i)] == 0 {
			t.Errorf("record %d never read", i)
		}
	}
	if byReader["b"] == 0 {
		t.Errorf("the second reader got no partition")
	}
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
}
