package server

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// batch encodes a RecordBatch v2 with n records of size bytes each.
func batch(producerID int64, epoch int16, seq int32, n, size int) []byte {
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = producerID, epoch, seq
	b.FirstTimestamp = time.Now().UnixMilli()
	b.MaxTimestamp = b.FirstTimestamp
	b.LastOffsetDelta = int32(n - 1)
	b.NumRecords = int32(n)
	var recs []byte
	for i := range n {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Value = make([]byte, size)
		recs = appendRecord(recs, r)
	}
	b.Records = recs
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(nil)
	crc := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	b.CRC = int32(crc)
	return b.AppendTo(nil)
}

// appendRecord encodes one record with its correct varint length prefix.
func appendRecord(dst []byte, r kmsg.Record) []byte {
	r.Length = 0
	body := r.AppendTo(nil)[1:] // drop the zero length varint
	r.Length = int32(len(body))
	return r.AppendTo(dst)
}

func produceReq(topic string, acks int16, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = acks
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// listOffsetsReq is a ListOffsets (v6) of one partition at a timestamp
// (timestampLatest, timestampEarliest, or a time), with no leader epoch.
func listOffsetsReq(topic string, partition int32, timestamp int64) *kmsg.ListOffsetsRequest {
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 6
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, timestamp, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func fetchReq(topic string, offset int64, maxBytes, partMax int32) *kmsg.FetchRequest {
	f := kmsg.NewPtrFetchRequest()
	f.Version = 12
	f.MaxBytes = maxBytes
	f.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset = offset
	fp.PartitionMaxBytes = partMax
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)
	return f
}

func TestIdempotentDuplicateAnsweredWithOriginalOffset(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("idem", 1, nil); err != nil {
		t.Fatal(err)
	}
	init := roundTrip[*kmsg.InitProducerIDResponse](t, s, kmsg.NewPtrInitProducerIDRequest())
	if init.ErrorCode != 0 {
		t.Fatalf("init producer id: %d", init.ErrorCode)
	}
	first := roundTrip[*kmsg.ProduceResponse](t, s, produceReq("idem", -1, batch(init.ProducerID, 0, 0, 3, 10)))
	second := roundTrip[*kmsg.ProduceResponse](t, s, produceReq("idem", -1, batch(init.ProducerID, 0, 3, 2, 10)))
	dup := roundTrip[*kmsg.ProduceResponse](t, s, produceReq("idem", -1, batch(init.ProducerID, 0, 0, 3, 10)))
	p1, p2, pd := first.Topics[0].Partitions[0], second.Topics[0].Partitions[0], dup.Topics[0].Partitions[0]
	if p1.ErrorCode != 0 || p2.ErrorCode != 0 || pd.ErrorCode != 0 {
		t.Fatalf("errors %d %d %d", p1.ErrorCode, p2.ErrorCode, pd.ErrorCode)
	}
	if p1.BaseOffset != 0 || p2.BaseOffset != 3 || pd.BaseOffset != 0 {
		t.Fatalf("offsets %d %d, duplicate %d", p1.BaseOffset, p2.BaseOffset, pd.BaseOffset)
	}
	gap := roundTrip[*kmsg.ProduceResponse](t, s, produceReq("idem", -1, batch(init.ProducerID, 0, 9, 1, 10)))
	if got := gap.Topics[0].Partitions[0].ErrorCode; got != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("sequence gap: error %d", got)
	}
	p, _ := s.lookupPartition("idem", 0)
	if end := p.log.LogEndOffset(); end != 5 {
		t.Fatalf("log end %d, want 5", end)
	}
}

func TestProduceChecks(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.MessageMaxBytes = 2000 })
	if _, err := s.createTopic("checks", 1, nil); err != nil {
		t.Fatal(err)
	}
	// The offsets topic exists once a group coordinator was looked for.
	if err := s.ensureOffsetsTopic(context.Background()); err != nil {
		t.Fatal(err)
	}
	corrupt := batch(-1, -1, -1, 1, 10)
	corrupt[len(corrupt)-1] ^= 0xff
	// Marked lz4, records left uncompressed, the CRC right: no lz4 frame
	// to inflate. Stored unread, every consumer would fail on it.
	notLZ4 := batch(-1, -1, -1, 3, 10)
	notLZ4[22] |= 3
	binary.BigEndian.PutUint32(notLZ4[17:], crc32.Checksum(notLZ4[21:], crc32.MakeTable(crc32.Castagnoli)))
	tests := []struct {
		name  string
		req   *kmsg.ProduceRequest
		topic string
		want  int16
	}{
		{"too large", produceReq("checks", 1, batch(-1, -1, -1, 1, 4000)), "checks", kerr.MessageTooLarge.Code},
		{"bad crc", produceReq("checks", 1, corrupt), "checks", kerr.CorruptMessage.Code},
		{"compressed records that do not inflate", produceReq("checks", 1, notLZ4), "checks", kerr.CorruptMessage.Code},
		{"unknown topic", produceReq("nope", 1, batch(-1, -1, -1, 1, 10)), "nope", kerr.UnknownTopicOrPartition.Code},
		{"bad acks", produceReq("checks", 2, batch(-1, -1, -1, 1, 10)), "checks", kerr.InvalidRequiredAcks.Code},
		{"internal topic", produceReq(offsetsTopic, 1, batch(-1, -1, -1, 1, 10)), offsetsTopic, kerr.InvalidTopicException.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := roundTrip[*kmsg.ProduceResponse](t, s, tt.req)
			if got := resp.Topics[0].Partitions[0].ErrorCode; got != tt.want {
				t.Fatalf("error %v, want %v", kerr.ErrorForCode(got), kerr.ErrorForCode(tt.want))
			}
		})
	}
	// acks=all with min.insync.replicas=2 cannot be met by one node.
	if err := s.setTopicConfigs(context.Background(), "checks", map[string]string{"min.insync.replicas": "2"}); err != nil {
		t.Fatal(err)
	}
	resp := roundTrip[*kmsg.ProduceResponse](t, s, produceReq("checks", -1, batch(-1, -1, -1, 1, 10)))
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with min.insync.replicas=2: %v", kerr.ErrorForCode(got))
	}
}

func TestAcksZeroSendsNothing(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("a0", 1, nil); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	c.send(produceReq("a0", 0, batch(-1, -1, -1, 1, 10)))
	// The next response on the connection is for the next request.
	corr := c.send(kmsg.NewPtrApiVersionsRequest())
	c.recv(kmsg.NewPtrApiVersionsResponse(), corr)
	// acks=0 with an error closes the connection.
	c.send(produceReq("missing", 0, batch(-1, -1, -1, 1, 10)))
	c.expectClosed()
}

func TestFetchSizeLimitsKIP74(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("limits", 1, nil); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for range 3 {
		b := batch(-1, -1, -1, 1, 1000)
		sizes = append(sizes, len(b))
		resp := roundTrip[*kmsg.ProduceResponse](t, s, produceReq("limits", 1, b))
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("produce: %v", kerr.ErrorForCode(code))
		}
	}
	tests := []struct {
		name              string
		maxBytes, partMax int32
		want              int
	}{
		{"everything", 1 << 20, 1 << 20, sizes[0] + sizes[1] + sizes[2]},
		{"two batches", 1 << 20, int32(sizes[0] + sizes[1] + 10), sizes[0] + sizes[1]},
		{"first batch even if larger (KIP-74)", 100, 100, sizes[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := roundTrip[*kmsg.FetchResponse](t, s, fetchReq("limits", 0, tt.maxBytes, tt.partMax))
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != 0 || len(p.RecordBatches) != tt.want || p.HighWatermark != 3 {
				t.Fatalf("error %d, %d bytes (want %d), hw %d", p.ErrorCode, len(p.RecordBatches), tt.want, p.HighWatermark)
			}
		})
	}
	resp := roundTrip[*kmsg.FetchResponse](t, s, fetchReq("limits", 7, 1<<20, 1<<20))
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch past the end: %v", kerr.ErrorForCode(got))
	}
}

func TestFetchLongPollWokenByProduce(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("poll", 1, nil); err != nil {
		t.Fatal(err)
	}
	f := fetchReq("poll", 0, 1<<20, 1<<20)
	f.MaxWaitMillis = 10000
	f.MinBytes = 1
	c := dial(t, s)
	start := time.Now()
	corr := c.send(f)
	time.Sleep(100 * time.Millisecond)
	roundTrip[*kmsg.ProduceResponse](t, s, produceReq("poll", 1, batch(-1, -1, -1, 1, 10)))
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = f.Version
	c.recv(resp, corr)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("long poll answered after %v, want right after the produce", took)
	}
	if p := resp.Topics[0].Partitions[0]; len(p.RecordBatches) == 0 {
		t.Fatalf("woken fetch returned no records (error %d)", p.ErrorCode)
	}
}

func TestLeaderEpochBumpedOnRestartAndFenced(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if err := cfg.Set("listeners", "PLAINTEXT://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *Server {
		s, err := New(context.Background(), Options{Config: cfg, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := open()
	if _, err := s1.createTopic("epochs", 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.handleProduce(context.Background(), anonymousAuth(s1, 0), produceReq("epochs", 1, batch(-1, -1, -1, 3, 10))); err != nil {
		t.Fatal(err)
	}
	p1, _ := s1.lookupPartition("epochs", 0)
	id1, err := s1.producerIDs.allocate()
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := open()
	defer s2.Shutdown(context.Background())
	p2, _ := s2.lookupPartition("epochs", 0)
	if p2.leaderEpoch <= p1.leaderEpoch {
		t.Fatalf("leader epoch %d after restart, was %d", p2.leaderEpoch, p1.leaderEpoch)
	}
	id2, err := s2.producerIDs.allocate()
	if err != nil {
		t.Fatal(err)
	}
	if id2 <= id1 {
		t.Fatalf("producer id %d after restart reuses the range of %d", id2, id1)
	}
	if _, err := s2.handleProduce(context.Background(), anonymousAuth(s2, 0), produceReq("epochs", 1, batch(-1, -1, -1, 2, 10))); err != nil {
		t.Fatal(err)
	}
	// The old epoch ended where the new one began (offset 3); the current
	// one ends at the log end (5).
	for _, tt := range []struct {
		epoch, wantEpoch int32
		wantEnd          int64
	}{
		{p1.leaderEpoch, p1.leaderEpoch, 3},
		{p2.leaderEpoch, p2.leaderEpoch, 5},
	} {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version = 4
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = "epochs"
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.LeaderEpoch = p2.leaderEpoch, tt.epoch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		got := s2.handleOffsetForLeaderEpoch(context.Background(), anonymousAuth(s2, 23), req).Topics[0].Partitions[0]
		if got.ErrorCode != 0 || got.LeaderEpoch != tt.wantEpoch || got.EndOffset != tt.wantEnd {
			t.Fatalf("OffsetForLeaderEpoch(%d): error %d epoch %d end %d, want epoch %d end %d",
				tt.epoch, got.ErrorCode, got.LeaderEpoch, got.EndOffset, tt.wantEpoch, tt.wantEnd)
		}
	}
	// A fetcher whose log says epoch p1 went on to offset 4 has diverged:
	// that epoch ended at 3 here (KIP-595 style DivergingEpoch, v12+).
	div := fetchReq("epochs", 4, 1<<20, 1<<20)
	div.Topics[0].Partitions[0].CurrentLeaderEpoch = p2.leaderEpoch
	div.Topics[0].Partitions[0].LastFetchedEpoch = p1.leaderEpoch
	if got := s2.handleFetch(context.Background(), anonymousAuth(s2, 1), div, fetchQuota{}, fetchRead{}).Topics[0].Partitions[0]; got.DivergingEpoch.Epoch != p1.leaderEpoch || got.DivergingEpoch.EndOffset != 3 || len(got.RecordBatches) != 0 {
		t.Fatalf("diverging fetch: %+v", got.DivergingEpoch)
	}
	// A fetch naming the old epoch is fenced.
	f := fetchReq("epochs", 0, 1<<20, 1<<20)
	f.Topics[0].Partitions[0].CurrentLeaderEpoch = p1.leaderEpoch
	resp := s2.handleFetch(context.Background(), anonymousAuth(s2, 1), f, fetchQuota{}, fetchRead{})
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.FencedLeaderEpoch.Code {
		t.Fatalf("old epoch: %v", kerr.ErrorForCode(got))
	}
}

func TestJointProduceAppends(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("joint", 2, nil); err != nil {
		t.Fatal(err)
	}
	pid := roundTrip[*kmsg.InitProducerIDResponse](t, s, kmsg.NewPtrInitProducerIDRequest()).ProducerID
	corrupt := batch(-1, -1, -1, 1, 10)
	corrupt[len(corrupt)-1] ^= 0xff
	// Marked lz4, records left uncompressed, the CRC right: no lz4 frame
	// to inflate. Stored unread, every consumer would fail on it.
	notLZ4 := batch(-1, -1, -1, 3, 10)
	notLZ4[22] |= 3
	binary.BigEndian.PutUint32(notLZ4[17:], crc32.Checksum(notLZ4[21:], crc32.MakeTable(crc32.Castagnoli)))
	onPartition := func(req *kmsg.ProduceRequest, p int32) *kmsg.ProduceRequest {
		req.Topics[0].Partitions[0].Partition = p
		return req
	}
	type want struct {
		code   int16
		offset int64
	}
	tests := []struct {
		name string
		reqs []*kmsg.ProduceRequest
		want []want
	}{
		{"idempotent in sequence", []*kmsg.ProduceRequest{
			produceReq("joint", -1, batch(pid, 0, 0, 3, 10)),
			produceReq("joint", -1, batch(pid, 0, 3, 2, 10)),
			produceReq("joint", 1, batch(-1, -1, -1, 4, 10)),
		}, []want{{0, 0}, {0, 3}, {0, 5}}},
		{"a bad batch fails alone", []*kmsg.ProduceRequest{
			produceReq("joint", 1, batch(-1, -1, -1, 1, 10)),
			produceReq("joint", 1, corrupt),
			produceReq("joint", 1, batch(-1, -1, -1, 2, 10)),
		}, []want{{0, 9}, {kerr.CorruptMessage.Code, -1}, {0, 10}}},
		{"a resent duplicate keeps its offset", []*kmsg.ProduceRequest{
			produceReq("joint", -1, batch(pid, 0, 3, 2, 10)),
			produceReq("joint", -1, batch(pid, 0, 5, 1, 10)),
		}, []want{{0, 3}, {0, 12}}},
		{"two partitions", []*kmsg.ProduceRequest{
			onPartition(produceReq("joint", 1, batch(-1, -1, -1, 2, 10)), 1),
			produceReq("joint", 1, batch(-1, -1, -1, 1, 10)),
			onPartition(produceReq("joint", 1, batch(-1, -1, -1, 1, 10)), 1),
		}, []want{{0, 0}, {0, 13}, {0, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resps := s.handleProduceGroup(context.Background(), anonymousAuth(s, 0), tt.reqs)()
			for i, r := range resps {
				p := r.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
				if p.ErrorCode != tt.want[i].code || p.BaseOffset != tt.want[i].offset {
					t.Errorf("request %d: error %v offset %d, want %v offset %d", i,
						kerr.ErrorForCode(p.ErrorCode), p.BaseOffset, kerr.ErrorForCode(tt.want[i].code), tt.want[i].offset)
				}
			}
		})
	}
	// The log holds exactly what was acknowledged, in order.
	p, _ := s.lookupPartition("joint", 0)
	if end := p.log.LogEndOffset(); end != 14 {
		t.Fatalf("log end %d, want 14", end)
	}
}

func TestPipelinedProduceOnOneConnection(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("pipe", 1, nil); err != nil {
		t.Fatal(err)
	}
	pid := roundTrip[*kmsg.InitProducerIDResponse](t, s, kmsg.NewPtrInitProducerIDRequest()).ProducerID
	c := dial(t, s)
	// Many requests sent back to back: whether the broker appends them
	// one by one or together, every answer is in order with the offsets
	// a one-by-one append gives.
	const n = 40
	var corrs []int32
	for i := range n {
		corrs = append(corrs, c.send(produceReq("pipe", -1, batch(pid, 0, int32(2*i), 2, 100))))
	}
	for i, corr := range corrs {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		c.recv(resp, corr)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(2*i) {
			t.Fatalf("request %d: error %v offset %d", i, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
	}
}
