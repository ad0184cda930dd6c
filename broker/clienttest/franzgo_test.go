package clienttest

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/config"
)

// produceSync produces records with values "<prefix>-<i>" and fails on any error.
func produceSync(t *testing.T, cl *kgo.Client, topic string, n int, prefix string) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing to %s: %v", topic, err)
	}
}

// consumeAll reads n records of topic from the start and returns the values
// by partition, in offset order.
func consumeAll(t *testing.T, addr, topic string, n int, opts ...kgo.Opt) map[int32][]string {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testContext(t, 30*time.Second)
	got := map[int32][]string{}
	seen := 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s before the deadline", seen, n, topic)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if want := int64(len(got[r.Partition])); r.Offset < want {
				t.Fatalf("%s[%d]: offset %d delivered again", topic, r.Partition, r.Offset)
			}
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			seen++
		})
	}
	return got
}

func flatten(by map[int32][]string) map[string]int {
	out := map[string]int{}
	for _, vs := range by {
		for _, v := range vs {
			out[v]++
		}
	}
	return out
}

func TestFranzGoProduceConsumeEveryCodec(t *testing.T) {
	b := startBroker(t)
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			topic := "franz-" + c.name
			b.createTopic(t, topic, 3, nil)
			cl := b.client(t, kgo.ProducerBatchCompression(c.codec), kgo.DefaultProduceTopic(topic))
			const n = 300
			produceSync(t, cl, topic, n, c.name)
			got := flatten(consumeAll(t, b.addr, topic, n))
			for i := range n {
				if v := fmt.Sprintf("%s-%d", c.name, i); got[v] != 1 {
					t.Fatalf("record %s seen %d times", v, got[v])
				}
			}
		})
	}
}

func TestFranzGoAutoCreateAndKeyOrder(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.NumPartitions = 4 })
	cl := b.client(t, kgo.AllowAutoTopicCreation())
	produceSync(t, cl, "auto", 200, "v")
	byPart := consumeAll(t, b.addr, "auto", 200)
	if len(byPart) == 0 || len(byPart) > 4 {
		t.Fatalf("records spread over %d partitions, want 1..4", len(byPart))
	}
	// Records of one key go to one partition, in the order produced.
	for p, vs := range byPart {
		last := -1
		for _, v := range vs {
			var i int
			fmt.Sscanf(v, "v-%d", &i)
			if i <= last {
				t.Fatalf("partition %d: %s after v-%d", p, v, last)
			}
			last = i
		}
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	b := startBroker(t)
	b.createTopic(t, "durable", 2, nil)
	produceSync(t, b.client(t), "durable", 100, "before")
	b.restart()
	produceSync(t, b.client(t), "durable", 100, "after")
	got := flatten(consumeAll(t, b.addr, "durable", 200))
	if len(got) != 200 {
		t.Fatalf("got %d distinct records after restart, want 200", len(got))
	}
}
