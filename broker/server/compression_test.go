package server

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// storedBatches returns the headers of the batches partition 0 of topic
// holds, read from its log.
func storedBatches(t *testing.T, s *Server, topic string) []recordbatch.Header {
	t.Helper()
	p, ok := s.lookupPartition(topic, 0)
	if !ok {
		t.Fatalf("no partition %s-0", topic)
	}
	b, err := p.log.Read(0, 64<<20, p.log.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	var out []recordbatch.Header
	for len(b) > 0 {
		h, err := recordbatch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := recordbatch.Check(&h, b[:h.Size()]); err != nil {
			t.Fatalf("stored batch at offset %d: %v", h.BaseOffset, err)
		}
		out = append(out, h)
		b = b[h.Size():]
	}
	return out
}

// compressibleValue is a value every codec shrinks, so that a producer
// compresses its batches.
func compressibleValue(i int) []byte {
	return fmt.Appendf(nil, "value-%d-%s", i, strings.Repeat("abcdefgh", 40))
}

func produceSnappy(ctx context.Context, t *testing.T, addr, topic string, n int, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.ProducerLinger(20 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: compressibleValue(i),
			Headers: []kgo.RecordHeader{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}}, Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing to %s: %v", topic, err)
	}
}

// consumeAll reads n records of topic from the start with franz-go.
func consumeAll(ctx context.Context, t *testing.T, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consuming %s: %d of %d records: %v", topic, len(out), n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch %s: %v", topic, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// TestCompressionTypeStoresTheTopicsCodec sends snappy batches from an
// idempotent franz-go producer to topics of each compression.type and
// checks the codec of the batches in the log, that every header field
// the producer set survives (producer id, epoch, sequences, timestamps),
// and that a consumer reads back the same records.
func TestCompressionTypeStoresTheTopicsCodec(t *testing.T) {
	s := startServer(t)
	addr := s.Addr().String()
	ctx := testCtxFor(t, 60*time.Second)
	const n = 200
	for _, tt := range []struct {
		compressionType string
		want            int
	}{
		{"zstd", recordbatch.CodecZstd},
		{"uncompressed", recordbatch.CodecNone},
		{"gzip", recordbatch.CodecGzip},
		{"lz4", recordbatch.CodecLz4},
		{"snappy", recordbatch.CodecSnappy},
		{"producer", recordbatch.CodecSnappy},
	} {
		t.Run(tt.compressionType, func(t *testing.T) {
			topic := "codec-" + tt.compressionType
			if _, err := s.createTopic(topic, 1, map[string]string{"compression.type": tt.compressionType}); err != nil {
				t.Fatal(err)
			}
			produceSnappy(ctx, t, addr, topic, n)
			batches := storedBatches(t, s, topic)
			next, seq := int64(0), int32(0)
			for _, h := range batches {
				if h.Codec() != tt.want {
					t.Fatalf("batch at %d stored with codec %d, want %d", h.BaseOffset, h.Codec(), tt.want)
				}
				if h.BaseOffset != next || h.ProducerID < 0 || h.BaseSequence != seq || h.IsTransactional() {
					t.Fatalf("batch header %+v: want offset %d, sequence %d of an idempotent producer", h, next, seq)
				}
				if h.BaseTimestamp != 1_700_000_000_000+next || h.MaxTimestamp != h.BaseTimestamp+int64(h.LastOffsetDelta) {
					t.Fatalf("batch at %d: timestamps %d..%d changed", h.BaseOffset, h.BaseTimestamp, h.MaxTimestamp)
				}
				next, seq = h.LastOffset()+1, seq+h.RecordCount
			}
			if next != n {
				t.Fatalf("log holds %d records, want %d", next, n)
			}
			for i, r := range consumeAll(ctx, t, addr, topic, n) {
				if r.Offset != int64(i) || string(r.Key) != fmt.Sprintf("k%d", i) || !bytes.Equal(r.Value, compressibleValue(i)) ||
					len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) || r.Timestamp.UnixMilli() != 1_700_000_000_000+int64(i) {
					t.Fatalf("record %d read back as offset %d key %q headers %v at %v", i, r.Offset, r.Key, r.Headers, r.Timestamp)
				}
			}
		})
	}
}

// TestCompressionTypeReadByKcat reads a zstd topic that got snappy
// batches, and a snappy topic that got zstd batches (re-compressed in the
// Java producer's xerial framing), with kcat (librdkafka), a client other
// than the producer's, and the second with franz-go too.
func TestCompressionTypeReadByKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed")
	}
	s := startServer(t)
	addr := s.Addr().String()
	ctx := testCtxFor(t, 60*time.Second)
	const n = 50
	for _, tt := range []struct {
		topic, compressionType string
		codec                  int
		producer               kgo.CompressionCodec
	}{
		{"kcat-zstd", "zstd", recordbatch.CodecZstd, kgo.SnappyCompression()},
		{"kcat-snappy", "snappy", recordbatch.CodecSnappy, kgo.ZstdCompression()},
	} {
		if _, err := s.createTopic(tt.topic, 1, map[string]string{"compression.type": tt.compressionType}); err != nil {
			t.Fatal(err)
		}
		produceSnappy(ctx, t, addr, tt.topic, n, kgo.ProducerBatchCompression(tt.producer))
		for _, h := range storedBatches(t, s, tt.topic) {
			if h.Codec() != tt.codec {
				t.Fatalf("%s: batch at %d has codec %d", tt.topic, h.BaseOffset, h.Codec())
			}
		}
		out, err := exec.CommandContext(ctx, kcat, "-b", addr, "-C", "-t", tt.topic, "-p", "0", "-o", "beginning", "-e", "-q",
			"-f", "%k=%s\n").CombinedOutput()
		if err != nil {
			t.Fatalf("kcat: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(lines) != n {
			t.Fatalf("%s: kcat read %d records, want %d:\n%s", tt.topic, len(lines), n, out)
		}
		for i, l := range lines {
			if want := fmt.Sprintf("k%d=%s", i, compressibleValue(i)); l != want {
				t.Fatalf("%s: kcat record %d: %q, want %q", tt.topic, i, l, want)
			}
		}
		for i, r := range consumeAll(ctx, t, addr, tt.topic, n) {
			if string(r.Key) != fmt.Sprintf("k%d", i) || !bytes.Equal(r.Value, compressibleValue(i)) {
				t.Fatalf("%s: franz-go record %d: key %q", tt.topic, i, r.Key)
			}
		}
	}
}

// TestCompressionTypeTransactionalGzip: a transactional producer's snappy
// batches into a gzip topic are re-compressed with their transactional
// flag, producer id and sequences; the commit marker stays an
// uncompressed control batch and read_committed sees the records.
func TestCompressionTypeTransactionalGzip(t *testing.T) {
	s := startServer(t)
	addr := s.Addr().String()
	ctx := testCtxFor(t, 60*time.Second)
	if _, err := s.createTopic("txn-gzip", 1, map[string]string{"compression.type": "gzip"}); err != nil {
		t.Fatal(err)
	}
	cl := txnClient(t, addr, "gzip-txn", kgo.DefaultProduceTopic("txn-gzip"), kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: compressibleValue(i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// EndTxn answers before the markers are written: wait for the
	// commit marker to be stored before counting (it failed CI once,
	// counting 0 markers right after the commit).
	var stored []recordbatch.Header
	for {
		stored = storedBatches(t, s, "txn-gzip")
		if slices.ContainsFunc(stored, func(h recordbatch.Header) bool { return h.IsControl() }) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no commit marker stored: %d batches", len(stored))
		case <-time.After(10 * time.Millisecond):
		}
	}
	var data, markers int
	for _, h := range stored {
		switch {
		case h.IsControl():
			markers++
			if h.Codec() != recordbatch.CodecNone || !h.IsTransactional() {
				t.Fatalf("marker at %d: codec %d, transactional %v", h.BaseOffset, h.Codec(), h.IsTransactional())
			}
		default:
			data++
			if h.Codec() != recordbatch.CodecGzip || !h.IsTransactional() || h.ProducerID < 0 || h.BaseSequence < 0 {
				t.Fatalf("transactional batch at %d stored as %+v", h.BaseOffset, h)
			}
		}
	}
	if data == 0 || markers != 1 {
		t.Fatalf("%d data batches, %d markers", data, markers)
	}
	recs := consumeAll(ctx, t, addr, "txn-gzip", n, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for i, r := range recs {
		if !bytes.Equal(r.Value, compressibleValue(i)) {
			t.Fatalf("read_committed record %d: %q", i, r.Value)
		}
	}
}

// TestCompressionTypeAlteredAndDescribed changes a topic's
// compression.type with IncrementalAlterConfigs, reads it back with
// DescribeConfigs, and checks the next batches follow it; a re-compressed
// batch past max.message.bytes is refused with MESSAGE_TOO_LARGE and an
// unknown codec name with INVALID_CONFIG.
func TestCompressionTypeAlteredAndDescribed(t *testing.T) {
	s := startServer(t)
	addr := s.Addr().String()
	ctx := testCtxFor(t, 60*time.Second)
	if _, err := s.createTopic("altered", 1, nil); err != nil {
		t.Fatal(err)
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	adm := kadm.NewClient(admCl)
	describe := func() string {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, "altered")
		if err != nil {
			t.Fatal(err)
		}
		c, err := rcs.On("altered", nil)
		if err != nil || c.Err != nil {
			t.Fatalf("describe: %v %v", err, c.Err)
		}
		for _, cfg := range c.Configs {
			if cfg.Key == "compression.type" {
				return cfg.MaybeValue()
			}
		}
		t.Fatal("DescribeConfigs has no compression.type")
		return ""
	}
	if got := describe(); got != "producer" {
		t.Fatalf("default compression.type %q", got)
	}
	alter := func(v string) error {
		t.Helper()
		v2 := v
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "compression.type", Value: &v2}}, "altered")
		if err != nil {
			t.Fatal(err)
		}
		return rs[0].Err
	}
	if err := alter("lz4"); err != nil {
		t.Fatal(err)
	}
	if got := describe(); got != "lz4" {
		t.Fatalf("compression.type after the change: %q", got)
	}
	if err := alter("brotli"); err != kerr.InvalidConfig {
		t.Fatalf("brotli: %v, want INVALID_CONFIG", err)
	}
	produceSnappy(ctx, t, addr, "altered", 20)
	for _, h := range storedBatches(t, s, "altered") {
		if h.Codec() != recordbatch.CodecLz4 {
			t.Fatalf("batch at %d has codec %d after compression.type=lz4", h.BaseOffset, h.Codec())
		}
	}

	// 600 KB of zeros compress to a few hundred bytes; uncompressed
	// they pass the topic's 100 KB max.message.bytes.
	if err := alter("uncompressed"); err != nil {
		t.Fatal(err)
	}
	big := "102400"
	if rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &big}}, "altered"); err != nil || rs[0].Err != nil {
		t.Fatalf("max.message.bytes: %v %v", err, rs)
	}
	zeros, err := recordbatch.Encode(recordbatch.Header{Attributes: recordbatch.CodecZstd, RecordCount: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		recordbatch.AppendNewRecord(nil, recordbatch.NewRecord{Value: make([]byte, 600<<10)}))
	if err != nil {
		t.Fatal(err)
	}
	if len(zeros) > 102400 {
		t.Fatalf("test batch of %d bytes does not fit max.message.bytes compressed", len(zeros))
	}
	resp := roundTrip[*kmsg.ProduceResponse](t, s, produceReq("altered", 1, zeros))
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.MessageTooLarge.Code {
		t.Fatalf("a batch re-compressed past max.message.bytes: error %d, want MESSAGE_TOO_LARGE", p.ErrorCode)
	}
	// The same batch kept as sent is accepted.
	if err := alter("zstd"); err != nil {
		t.Fatal(err)
	}
	resp = roundTrip[*kmsg.ProduceResponse](t, s, produceReq("altered", 1, zeros))
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("zstd batch into a zstd topic: error %d", p.ErrorCode)
	}
}

// TestCompressionTypeBrokerDefault: a topic without its own
// compression.type takes the broker's.
func TestCompressionTypeBrokerDefault(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("compression.type", "zstd"); err != nil {
			t.Fatal(err)
		}
	})
	addr := s.Addr().String()
	ctx := testCtxFor(t, 60*time.Second)
	if _, err := s.createTopic("inherits", 1, nil); err != nil {
		t.Fatal(err)
	}
	produceSnappy(ctx, t, addr, "inherits", 20)
	for _, h := range storedBatches(t, s, "inherits") {
		if h.Codec() != recordbatch.CodecZstd {
			t.Fatalf("batch at %d has codec %d under the broker's compression.type=zstd", h.BaseOffset, h.Codec())
		}
	}
}

// TestCompressionTypeBytesInCountsWhatWasSent: BytesInPerSec counts a
// produced batch at the size the client sent, as Kafka marks bytesInRate
// with the request's records, also when the leader stores it re-compressed
// (here snappy sent to an uncompressed topic, stored larger).
func TestCompressionTypeBytesInCountsWhatWasSent(t *testing.T) {
	s := startServer(t)
	ctx := testCtxFor(t, 30*time.Second)
	const topic, n = "bytes-in-as-sent", 50
	if _, err := s.createTopic(topic, 1, map[string]string{"compression.type": "uncompressed"}); err != nil {
		t.Fatal(err)
	}
	var recs []byte
	for i := range n {
		recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: int32(i), Key: fmt.Appendf(nil, "k%d", i), Value: compressibleValue(i)})
	}
	batch, err := recordbatch.Encode(recordbatch.Header{PartitionLeaderEpoch: -1, Attributes: recordbatch.CodecSnappy, LastOffsetDelta: n - 1,
		BaseTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: n}, recs)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
	stored := 0
	for _, h := range storedBatches(t, s, topic) {
		if h.Codec() != recordbatch.CodecNone {
			t.Fatalf("stored in codec %d, want uncompressed", h.Codec())
		}
		stored += h.Size()
	}
	if stored <= len(batch) {
		t.Fatalf("stored %d bytes for a %d-byte snappy batch: the test needs a batch the topic stores larger", stored, len(batch))
	}
	var got metrics.TopicTotals
	for _, tt := range s.metrics.Snapshot().Topics {
		if tt.Topic == topic {
			got = tt
		}
	}
	if got.BytesIn != int64(len(batch)) || got.MessagesIn != n {
		t.Fatalf("topic BytesIn %d, MessagesIn %d; want %d (as sent; %d as stored), %d", got.BytesIn, got.MessagesIn, len(batch), stored, n)
	}
}
