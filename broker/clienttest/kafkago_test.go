package clienttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

func TestKafkaGoProduceConsume(t *testing.T) {
	b := startBroker(t)
	b.createTopic(t, "kafkago", 3, nil)
	ctx := testContext(t, 60*time.Second)
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(b.addr),
		Topic:        "kafkago",
		Balancer:     &kafkago.Hash{},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		Compression:  kafkago.Snappy,
	}
	defer w.Close()
	const n = 200
	var msgs []kafkago.Message
	for i := range n {
		msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprint(i % 9)), Value: []byte(fmt.Sprintf("kg-%d", i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("writing: %v", err)
	}

	// A group reader: kafka-go's group code uses FindCoordinator v0,
	// JoinGroup v1/v2, SyncGroup/Heartbeat/LeaveGroup v0, OffsetCommit v2,
	// OffsetFetch v1 and Metadata v1.
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        []string{b.addr},
		Topic:          "kafkago",
		GroupID:        "kafkago-group",
		MinBytes:       1,
		MaxBytes:       1 << 20,
		MaxWait:        200 * time.Millisecond,
		StartOffset:    kafkago.FirstOffset,
		CommitInterval: 0, // synchronous commits
	})
	defer r.Close()
	seen := map[string]int{}
	for len(seen) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", len(seen), err)
		}
		seen[string(m.Value)]++
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	for v, c := range seen {
		if c != 1 {
			t.Fatalf("%s seen %d times", v, c)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatalf("closing reader: %v", err)
	}

	// The commits are durable: a new reader of the group has nothing left.
	lag := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{b.addr}, Topic: "kafkago", GroupID: "kafkago-group", MaxWait: 100 * time.Millisecond})
	defer lag.Close()
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if m, err := lag.FetchMessage(short); err == nil {
		t.Fatalf("group re-read %s at offset %d after committing everything", m.Value, m.Offset)
	}
}

func TestKafkaGoAutoCreate(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 30*time.Second)
	w := &kafkago.Writer{
		Addr:                   kafkago.TCP(b.addr),
		Topic:                  "kafkago-auto",
		AllowAutoTopicCreation: true,
		RequiredAcks:           kafkago.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
	}
	defer w.Close()
	// The first write may race the topic's creation, as against Kafka;
	// kafka-go reports that as a retriable error.
	waitFor(t, "a write to the auto-created topic", 20*time.Second, func() bool {
		return w.WriteMessages(ctx, kafkago.Message{Value: []byte("first")}) == nil
	})
	conn, err := kafkago.DialLeader(ctx, "tcp", b.addr, "kafkago-auto", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	last, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	if last < 1 {
		t.Fatalf("last offset %d after a write", last)
	}
}
