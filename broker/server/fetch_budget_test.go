package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchBuffersReleasedOnEveryPath: every way a TLS connection can end
// with a fetch response read into memory and not written gives that
// memory back to the broker's read budget. Each case ends a connection on
// one such path, then finds nothing held; a buffer left unreleased would
// hold its charge for good, and enough of them starve every consumer.
func TestFetchBuffersReleasedOnEveryPath(t *testing.T) {
	e := newTLSEnv(t)
	s, _ := startListeners(t, threeListeners(e))
	const size = 3 << 20
	produceTopic(t, s, "released", size)
	budget := s.readBudget

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"responses queued behind a write that failed", func(t *testing.T) {
			// One response is being written (the client reads
			// nothing), four wait in the writer's queue; the write
			// fails when the client resets the connection.
			c := dialRaw(t, s, e, "CLIENT_SECURE")
			for i := range 5 {
				sendFetch(t, c, fetchOpts{corr: int32(i), topic: "released"})
			}
			waitSteady(t, budget.Held, 5*size)
			reset(t, c)
		}},
		{"a response queued after the write failed", func(t *testing.T) {
			// One written, eight queued, a tenth built and waiting
			// for room in the queue when the write fails.
			c := dialRaw(t, s, e, "CLIENT_SECURE")
			for i := range 14 {
				sendFetch(t, c, fetchOpts{corr: int32(i), topic: "released"})
			}
			waitSteady(t, budget.Held, 10*size)
			reset(t, c)
		}},
		{"a handler that fails after its read", func(t *testing.T) {
			fail := func(*conn) { panic("injected failure after the read") }
			s.afterFetchRead.Store(&fail)
			defer s.afterFetchRead.Store(nil)
			c := dialRaw(t, s, e, "CLIENT_SECURE")
			sendFetch(t, c, fetchOpts{corr: 1, topic: "released"})
			// The connection is closed for the failure.
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatal("a fetch whose handler failed was answered")
			}
		}},
		{"a long poll dropped by its client", func(t *testing.T) {
			// The data is there, but less than MinBytes: the poll
			// reads, drops the read and waits, until the client
			// goes.
			c := dialRaw(t, s, e, "CLIENT_SECURE")
			sendFetch(t, c, fetchOpts{corr: 1, topic: "released", minBytes: 1 << 30, maxWaitMs: 20_000})
			time.Sleep(200 * time.Millisecond)
			reset(t, c)
		}},
		{"a response held for its throttle when the client goes", func(t *testing.T) {
			// A client from before KIP-219 (Fetch v7) does not back
			// off by itself: its throttled response is held for the
			// throttle time, the connection muted. The client goes
			// meanwhile.
			admin, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()))
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			alterQuotas(t, kadm.NewClient(admin), setQuota(qentity("client-id", "muted"), "request_percentage", 0.001))
			c := dialRaw(t, s, e, "CLIENT_SECURE")
			sendFetch(t, c, fetchOpts{corr: 1, topic: "released", version: 7, clientID: "muted"})
			waitSteady(t, budget.Held, size)
			reset(t, c)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The case before may still be ending: a long poll woken by
			// its cancellation reads once more on its way out (and gives
			// that back when its response cannot be written). A leak
			// holds for good, so a bounded wait still finds it.
			waitReleased(t, budget.Held, "before the case")
			tc.run(t)
			waitReleased(t, budget.Held, "after the connection ended")
		})
	}
}

// waitReleased waits until held reports nothing held, within 4 s: well
// within the shortest throttle or long poll of the cases, far from what a
// leak would let go (never).
func waitReleased(t *testing.T, held func() int64, when string) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Second)
	for held() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of read buffers still held %s", held(), when)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// produceTopic writes about size bytes of records to partition 0 of a new
// topic.
func produceTopic(t *testing.T, s *Server, topic string, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()), kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	v := bytes.Repeat([]byte(topic), 1000/len(topic)+1)[:1000]
	for range size / len(v) {
		prod.Produce(ctx, &kgo.Record{Value: v}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// fetchOpts is a raw Fetch of partition 0 of topic from offset 0 (v11 and
// MinBytes 1 unless set).
type fetchOpts struct {
	corr                int32
	topic, clientID     string
	version             int16
	minBytes, maxWaitMs int32
}

// sendFetch writes a Fetch request for up to 64 MiB.
func sendFetch(t *testing.T, c net.Conn, o fetchOpts) {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	if o.version != 0 {
		req.SetVersion(o.version)
	}
	req.ReplicaID, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = -1, 64<<20, max(o.minBytes, 1), max(o.maxWaitMs, 100)
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = o.topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 64 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	b := []byte{0, 0, 0, 0}
	b = kbin.AppendInt16(b, req.Key())
	b = kbin.AppendInt16(b, req.GetVersion())
	b = kbin.AppendInt32(b, o.corr)
	var id *string
	if o.clientID != "" {
		id = &o.clientID
	}
	b = kbin.AppendNullableString(b, id)
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// waitSteady waits until f reaches at least least and then stops growing
// for a while: the broker has built every response it will while its
// client reads nothing.
func waitSteady(t *testing.T, f func() int64, least int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last, since := f(), time.Now()
	for f() < least || time.Since(since) < 300*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes held, waiting for at least %d and for it to settle", f(), least)
		}
		if v := f(); v != last {
			last, since = v, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reset ends a raw connection with a TCP reset, so that the broker's
// pending write fails at once.
func reset(t *testing.T, c net.Conn) {
	t.Helper()
	nc := c
	if tc, ok := c.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if err := nc.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestFetchMemoryBoundUnderManyTLSConsumers: many TLS consumers, each
// asking for far more than the broker's fetch memory bound, read a topic
// at once. The memory their responses hold (the budget's count, sampled
// throughout) stays under the bound plus a batch per fetch in progress,
// every consumer reads every record with the bytes it was produced with,
// a record larger than the whole bound still arrives, the fetches the
// bound cut short are counted in the metrics, and nothing is held once
// the consumers are gone.
func TestFetchMemoryBoundUnderManyTLSConsumers(t *testing.T) {
	e := newTLSEnv(t)
	const (
		limit     = 4 << 20
		consumers = 10
		batch     = 64 << 10 // the producer's largest batch
		records   = 6000
	)
	props := threeListeners(e)
	props["fetch.memory.max.bytes"] = strconv.Itoa(limit)
	props["message.max.bytes"] = strconv.Itoa(8 << 20)
	s, _ := startListeners(t, props)
	if got := s.readBudget.Limit(); got != limit {
		t.Fatalf("fetch.memory.max.bytes %d gives a bound of %d", limit, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "bounded"
	value := func(i int) []byte {
		v := make([]byte, 1000+i%500)
		for j := 0; j+8 <= len(v); j += 8 {
			binary.BigEndian.PutUint64(v[j:], uint64(i)<<32|uint64(j))
		}
		return v
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()), kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(batch))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range records {
		prod.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: value(i)}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// One record larger than the whole bound.
	big := bytes.Repeat([]byte("big"), (6<<20)/3)
	bigProd, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()), kgo.DefaultProduceTopic(topic+"-big"),
		kgo.AllowAutoTopicCreation(), kgo.ProducerBatchMaxBytes(8<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer bigProd.Close()
	if err := bigProd.ProduceSync(ctx, &kgo.Record{Value: big}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	budget := s.readBudget
	var maxHeld atomic.Int64
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if h := budget.Held(); h > maxHeld.Load() {
				maxHeld.Store(h)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	consume := func(topic string, want int, check func(*kgo.Record) error) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_SECURE").String()),
			kgo.DialTLSConfig(clientTLS(t, e.ca, nil)),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(50<<20), kgo.FetchMaxPartitionBytes(50<<20), kgo.BrokerMaxReadBytes(100<<20))
		if err != nil {
			return err
		}
		defer cl.Close()
		seen := 0
		for seen < want {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				return fmt.Errorf("after %d records of %s: %w", seen, topic, err)
			}
			var bad error
			fs.EachRecord(func(r *kgo.Record) {
				if err := check(r); err != nil && bad == nil {
					bad = err
				}
				seen++
			})
			if bad != nil {
				return bad
			}
		}
		return nil
	}
	var (
		wg   sync.WaitGroup
		errs = make(chan error, consumers+1)
	)
	for range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- consume(topic, records, func(r *kgo.Record) error {
				i, err := strconv.Atoi(string(r.Key))
				if err != nil || !bytes.Equal(r.Value, value(i)) {
					return fmt.Errorf("record %s at %d/%d has bytes it was not produced with", r.Key, r.Partition, r.Offset)
				}
				return nil
			})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- consume(topic+"-big", 1, func(r *kgo.Record) error {
			if !bytes.Equal(r.Value, big) {
				return fmt.Errorf("the record larger than the bound arrived with %d bytes, want %d", len(r.Value), len(big))
			}
			return nil
		})
	}()
	wg.Wait()
	close(stopSampling)
	<-sampled
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// Each consumer has at most two fetches in progress (one written,
	// the next read), each past the bound by at most one batch; the
	// big record's consumer by its one record.
	bound := int64(limit + 2*consumers*(batch+4<<10) + len(big) + 64<<10)
	t.Logf("held at most %d bytes of a %d bound (allowed %d); %d fetches cut short", maxHeld.Load(), limit, bound, budget.Cut())
	if maxHeld.Load() > bound {
		t.Errorf("fetch responses held up to %d bytes, over the bound of %d and a batch per fetch in progress (%d)", maxHeld.Load(), limit, bound)
	}
	if budget.Cut() == 0 {
		t.Error("no fetch was cut short by the bound: the consumers never reached it, the test tests nothing")
	}
	if got := s.metrics.Snapshot().FetchMemory; got.Limit != limit || got.Cut != budget.Cut() {
		t.Errorf("the metrics report a bound of %d and %d fetches cut short; the budget %d and %d", got.Limit, got.Cut, limit, budget.Cut())
	}
	for deadline := time.Now().Add(10 * time.Second); budget.Held() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held once every consumer is gone", budget.Held())
		}
	}
}

// TestFetchBuffersLeakedByAPathReleasedWhenTheConnectionEnds: a path that
// drops a fetch's read buffers without releasing them (injected: the
// handler loses them, so that neither the writer nor any drop path sees
// them) holds their charge while the connection lives; when it ends, the
// connection's backstop releases them, counts the leak in the metrics and
// logs it, so the bound does not shrink for good.
func TestFetchBuffersLeakedByAPathReleasedWhenTheConnectionEnds(t *testing.T) {
	e := newTLSEnv(t)
	s, logs := startListeners(t, threeListeners(e))
	const size = 1 << 20
	produceTopic(t, s, "leaky", size)
	budget := s.readBudget

	forget := func(c *conn) { c.readBufs = nil }
	s.afterFetchRead.Store(&forget)
	c := dialRaw(t, s, e, "CLIENT_SECURE")
	sendFetch(t, c, fetchOpts{corr: 1, topic: "leaky"})
	records, err := readFetch(c, nil)
	s.afterFetchRead.Store(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(records) < size/2 {
		t.Fatalf("the fetch returned %d bytes of records, want about %d", len(records), size)
	}
	// Written, and still charged: nothing released the lost buffers.
	if budget.Held() < int64(len(records)) {
		t.Fatalf("%d bytes held with the response's %d bytes of buffers lost: the injected leak leaks nothing", budget.Held(), len(records))
	}
	if got := budget.Leaked(); got != 0 {
		t.Fatalf("%d leaked releases counted while the connection is open", got)
	}
	c.Close()
	waitReleased(t, budget.Held, "after the connection ended")
	// The line is logged once the leak is counted.
	for deadline := time.Now().Add(4 * time.Second); !strings.Contains(logs.String(), "released fetch read buffers"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no log line for the leak")
		}
	}
	if got := s.metrics.Snapshot().FetchMemory.Leaked; got != 1 {
		t.Errorf("the metrics count %d leaked releases, want 1", got)
	}
	if line := logLine(logs.String(), "released fetch read buffers"); !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "api=[Fetch]") {
		t.Errorf("the leak is logged as %q, want an error naming the Fetch API", line)
	}
}

// logLine is the first line of logs that contains s.
func logLine(logs, s string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// TestFetchDoesNotChargeAReadItDrops: over TLS, a partition whose first
// batch is larger than what the response has left after an earlier
// partition's data is not read at all, so it takes none of the fetch
// memory bound; and the next fetch, which has no earlier data, still
// returns that batch whole (KIP-74).
func TestFetchDoesNotChargeAReadItDrops(t *testing.T) {
	e := newTLSEnv(t)
	s, _ := startListeners(t, threeListeners(e))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const (
		topic    = "dropped"
		small    = 10 << 10
		large    = 200 << 10
		maxBytes = 100 << 10 // small fits, large does not
	)
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_SECURE").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	created, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, size := range []int{small, large} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(p), Value: bytes.Repeat([]byte{'x'}, size)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// held is what the fetch memory bound holds once the handler has read
	// (before the response is written); nothing else fetches over TLS.
	var held atomic.Int64
	measure := func(*conn) { held.Store(s.readBudget.Held()) }
	s.afterFetchRead.Store(&measure)
	defer s.afterFetchRead.Store(nil)
	fetch := func(partitions ...int32) *kmsg.FetchResponse {
		t.Helper()
		// The connection's writer releases a response's buffers after
		// the write returned, which may be after the client read it and
		// sent this request (once at load 24: the previous response's
		// 64 KiB still held when this one was measured). Measure from
		// nothing held.
		for deadline := time.Now().Add(10 * time.Second); s.readBudget.Held() != 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the fetch memory bound still holds %d bytes 10 s after the previous response", s.readBudget.Held())
			}
		}
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.ReplicaID, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = -1, maxBytes, 1, 100
		rt := kmsg.NewFetchRequestTopic()
		// The client asks the version it negotiated: by id from v13.
		rt.Topic, rt.TopicID = topic, created.ID
		for _, p := range partitions {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes = p, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != len(partitions) {
			t.Fatalf("a fetch of %d partitions answered %+v", len(partitions), resp.Topics)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("partition %d: error %d", p.Partition, p.ErrorCode)
			}
		}
		return resp
	}
	fetch(0)
	alone := held.Load()
	resp := fetch(0, 1)
	both := held.Load()
	got := resp.Topics[0].Partitions
	if len(got[0].RecordBatches) < small || len(got[1].RecordBatches) != 0 {
		t.Fatalf("the response carries %d and %d bytes of records, want partition 0's batch and nothing of partition 1's (over what is left)", len(got[0].RecordBatches), len(got[1].RecordBatches))
	}
	if alone == 0 || both != alone {
		t.Errorf("the fetch memory bound holds %d bytes for partition 0 alone and %d with partition 1 dropped: the dropped read was charged", alone, both)
	}
	// The next fetch has no data before partition 1: its batch comes
	// whole, past MaxBytes.
	next := fetch(1).Topics[0].Partitions[0]
	if len(next.RecordBatches) < large {
		t.Errorf("the next fetch of partition 1 returned %d bytes of records, want its %d-byte batch whole", len(next.RecordBatches), large)
	}
}
