package loadtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// StallThreshold: a produce acknowledged later than this after its
// Produce call counts as a stall. Percentiles average a few multi-second
// waits away; the count shows them.
const StallThreshold = 100 * time.Millisecond

// ThroughputLinger is the producer linger of the throughput phases:
// franz-go's default (10 ms), stated rather than inherited, so that a
// client upgrade cannot change the benchmark. Latency phases use no linger.
const ThroughputLinger = 10 * time.Millisecond

// BufferedRecords is how many records the benchmark's producer holds
// unacknowledged (kgo.MaxBufferedRecords; 20,000 x 1 KiB, about 20 MiB,
// under the Java producer's 32 MiB buffer.memory). With fsync before the
// acknowledgement that window, not CPU, bounds one broker's flat-out
// produce: the throughput phases also run with WideBufferedRecords.
const BufferedRecords = 20000

// WideBufferedRecords is the window of the single-broker "wide window"
// phase (kgo.MaxBufferedRecords(WideBufferedRecords), about 80 MiB of
// 1 KiB records): wide enough that neither side waits on the client's
// buffer (40,000 records still raised both on 6 December; 160,000 did
// not), so the ratio is that of two servers near their CPU bound.
const WideBufferedRecords = 80000

// ProduceOptions shape one produce phase.
type ProduceOptions struct {
	Topic       string
	RecordBytes int
	// Duration bounds the phase; MaxRecords (if > 0) ends it early.
	Duration   time.Duration
	MaxRecords int
	// RateBytes is the offered load in bytes per second; 0 produces as
	// fast as the client accepts records.
	RateBytes float64
	// Linger is the producer's linger (kgo.ProducerLinger): how long a
	// partition's batch waits for more records before it is sent. Always
	// set by the caller: 0 for latency phases, ThroughputLinger for
	// throughput phases.
	Linger time.Duration
	// Client are more options of the producer (TLS, SASL).
	Client []kgo.Opt
	// Compression is the producer's codec: "" or "none" (uncompressed,
	// the benchmark's default), "gzip", "snappy", "lz4" or "zstd".
	Compression string
	// Warmup, if > 0, runs the same load for that long before the timed
	// phase, untimed, with the same producer: its connections, producer
	// id and the partitions' first batches are then behind it, as in
	// kafka-producer-perf-test's --warmup-records (KIP-1052). Its records
	// stay in the topic.
	Warmup time.Duration
	// ServerPIDs are the processes serving the phase (brokers, kfake)
	// whose CPU time Cost counts beside this process's.
	ServerPIDs []int
}

// Latency summarises per-record produce latencies.
type Latency struct {
	P50, P99, P999, Max time.Duration
	// Stalls counts records acknowledged more than StallThreshold after
	// their Produce call.
	Stalls int
}

// ProduceResult is what one produce phase reached.
type ProduceResult struct {
	Records int64
	Bytes   int64
	// MiBps is acknowledged MiB (2^20 bytes) per second, from the first
	// Produce call to the last acknowledgement.
	MiBps   float64
	Latency Latency
	// FirstAck is the time from a new producer's first Produce call to
	// its first acknowledgement (metadata, producer id, connections and
	// the first requests): that of the warm-up when there is one.
	FirstAck time.Duration
	// Cost is the timed phase's CPU: this process's (the producer) and
	// ProduceOptions.ServerPIDs'.
	Cost CPU
}

// Summarize computes the latency figures of a set of samples (sorted in
// place).
func Summarize(samples []time.Duration) Latency {
	slices.Sort(samples)
	l := Latency{
		P50:  percentile(samples, 0.50),
		P99:  percentile(samples, 0.99),
		P999: percentile(samples, 0.999),
	}
	if n := len(samples); n > 0 {
		l.Max = samples[n-1]
		i, _ := slices.BinarySearch(samples, StallThreshold+1)
		l.Stalls = n - i
	}
	return l
}

// ProducerCodecs are the names ProducerCodec takes, "" aside.
var ProducerCodecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// ProducerCodec is the franz-go codec of a producer compression name
// (ProducerCodecs; "" is "none").
func ProducerCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("producer compression %q: want one of %s", name, strings.Join(ProducerCodecs, ", "))
}

// newProducer is the benchmark's franz-go producer: idempotent, acks=all
// (both franz-go defaults, spelled out), uncompressed, round robin over the
// partitions, with the given linger; up to five requests in flight per
// broker (franz-go's default), BufferedRecords buffered unless extra says
// otherwise (options given later win in kgo).
func newProducer(seeds []string, topic string, linger time.Duration, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(BufferedRecords),
		kgo.ProducerLinger(linger),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the producer: %w", err)
	}
	return cl, nil
}

// Produce writes random values of o.RecordBytes to an existing topic with
// one producer for o.Duration, flat out or paced at o.RateBytes, and
// measures acknowledged throughput and the latency of every record from
// the Produce call to its acknowledgement (time queued in the client
// included: that is what an application sees). With o.Warmup, the same
// producer first runs the same load for that long, untimed, and waits for
// all of it (res.FirstAck is the new producer's first acknowledgement).
func Produce(ctx context.Context, seeds []string, o ProduceOptions) (ProduceResult, error) {
	var res ProduceResult
	codec, err := ProducerCodec(o.Compression)
	if err != nil {
		return res, err
	}
	// The codec given last wins over newProducer's uncompressed one.
	prod, err := newProducer(seeds, o.Topic, o.Linger, append(slices.Clone(o.Client), kgo.ProducerBatchCompression(codec))...)
	if err != nil {
		return res, err
	}
	defer prod.Close()

	value := make([]byte, o.RecordBytes)
	_, _ = rand.Read(value)
	if o.Warmup > 0 {
		warm, err := producePhase(ctx, prod, value, o, o.Warmup, 0)
		if err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
		res.FirstAck = warm.firstAck
	}
	meter, err := startCPU(o.ServerPIDs)
	if err != nil {
		return res, err
	}
	ph, err := producePhase(ctx, prod, value, o, o.Duration, o.MaxRecords)
	if err != nil {
		return res, err
	}
	if o.Warmup == 0 {
		res.FirstAck = ph.firstAck
	}
	res.Records = int64(len(ph.latencies))
	res.Bytes = res.Records * int64(o.RecordBytes)
	if res.Cost, err = meter.stop(res.Bytes); err != nil {
		return res, err
	}
	if res.Records > 0 {
		res.MiBps = mib(res.Bytes) / ph.lastAck.Sub(ph.start).Seconds()
	}
	res.Latency = Summarize(ph.latencies)
	return res, nil
}

// phase is what one run of the produce loop saw.
type phase struct {
	start, lastAck time.Time
	firstAck       time.Duration // from start to the first acknowledgement
	latencies      []time.Duration
}

// flushTimeout bounds how long a produce phase waits for its records'
// acknowledgements after its end.
var flushTimeout = 2 * time.Minute // a variable for TestProduceEndsWhenTheServerDies

// producePhase runs o's load through prod for d (or until maxRecords, if
// > 0) and waits until every record is acknowledged.
func producePhase(ctx context.Context, prod *kgo.Client, value []byte, o ProduceOptions, d time.Duration, maxRecords int) (phase, error) {
	var (
		mu       sync.Mutex
		ph       = phase{latencies: make([]time.Duration, 0, 1<<20)}
		firstErr error
	)
	ph.start = time.Now()
	start := ph.start
	// The phase ends by the clock, not only by pctx: a context's deadline
	// is delivered by a timer goroutine, which a loaded machine runs late,
	// and a paced producer must not release records past its schedule.
	end := start.Add(d)
	pctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	// A pacer releases records in 1 ms steps: sleeping per 1 KiB record
	// (50 µs at 20 MiB/s) is finer than the timer can do.
	var perRecord time.Duration
	if o.RateBytes > 0 {
		perRecord = time.Duration(float64(time.Second) * float64(o.RecordBytes) / o.RateBytes)
	}
	// Records handed over up to the end are still produced after it, so
	// Produce is not given pctx; but a server that died (kfake killed for
	// memory, once) would block a full buffer's Produce and the flush for
	// ever: their context ends flushTimeout after the phase.
	bctx, bcancel := context.WithDeadline(ctx, end.Add(flushTimeout))
	defer bcancel()
	var sent int
	for pctx.Err() == nil && time.Now().Before(end) && (maxRecords == 0 || sent < maxRecords) {
		if perRecord > 0 {
			due := start.Add(time.Duration(sent) * perRecord)
			if !due.Before(end) {
				break
			}
			if wait := time.Until(due); wait > 0 {
				select {
				case <-pctx.Done():
					continue
				case <-time.After(max(wait, time.Millisecond)):
				}
			}
		}
		begin := time.Now()
		prod.Produce(bctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			if ph.lastAck.IsZero() {
				ph.firstAck = now.Sub(start)
			}
			ph.lastAck = now
			ph.latencies = append(ph.latencies, now.Sub(begin))
		})
		sent++
	}
	// Stopped by the caller (Ctrl-C), not by the phase's end: no figures.
	if err := ctx.Err(); err != nil {
		return ph, fmt.Errorf("producing: %w", err)
	}
	if err := prod.Flush(bctx); err != nil {
		return ph, fmt.Errorf("flushing: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return ph, fmt.Errorf("producing: %w", firstErr)
	}
	return ph, nil
}
