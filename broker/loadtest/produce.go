package loadtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
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

// newProducer is the benchmark's franz-go producer: idempotent, acks=all
// (both franz-go defaults, spelled out), uncompressed, round robin over the
// partitions, with the given linger; up to five requests in flight per
// broker (franz-go's default).
func newProducer(seeds []string, topic string, linger time.Duration, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(20000),
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
// included: that is what an application sees).
func Produce(ctx context.Context, seeds []string, o ProduceOptions) (ProduceResult, error) {
	var res ProduceResult
	prod, err := newProducer(seeds, o.Topic, o.Linger, o.Client...)
	if err != nil {
		return res, err
	}
	defer prod.Close()

	value := make([]byte, o.RecordBytes)
	_, _ = rand.Read(value)
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, 1<<20)
		lastAck   time.Time
		firstErr  error
	)
	start := time.Now()
	// The phase ends by the clock, not only by pctx: a context's deadline
	// is delivered by a timer goroutine, which a loaded machine runs late,
	// and a paced producer must not release records past its schedule.
	end := start.Add(o.Duration)
	pctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	// A pacer releases records in 1 ms steps: sleeping per 1 KiB record
	// (50 µs at 20 MiB/s) is finer than the timer can do.
	var perRecord time.Duration
	if o.RateBytes > 0 {
		perRecord = time.Duration(float64(time.Second) * float64(o.RecordBytes) / o.RateBytes)
	}
	var sent int
	for pctx.Err() == nil && time.Now().Before(end) && (o.MaxRecords == 0 || sent < o.MaxRecords) {
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
		prod.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			lastAck = now
			latencies = append(latencies, now.Sub(begin))
		})
		sent++
	}
	// Stopped by the caller (Ctrl-C), not by the phase's end: no figures.
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("producing: %w", err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer fcancel()
	if err := prod.Flush(fctx); err != nil {
		return res, fmt.Errorf("flushing: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return res, fmt.Errorf("producing: %w", firstErr)
	}
	res.Records = int64(len(latencies))
	res.Bytes = res.Records * int64(o.RecordBytes)
	if res.Records > 0 {
		res.MiBps = mib(res.Bytes) / lastAck.Sub(start).Seconds()
	}
	res.Latency = Summarize(latencies)
	return res, nil
}
