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
}

// ProduceResult is what one produce phase reached.
type ProduceResult struct {
	Records int64
	Bytes   int64
	// MBps is acknowledged MiB per second, from the first Produce call
	// to the last acknowledgement.
	MBps     float64
	P50, P99 time.Duration
}

// newProducer is the benchmark's franz-go producer: idempotent, acks=all
// (both franz-go defaults, spelled out), uncompressed, round robin over the
// partitions, no linger (franz-go's default: a batch goes out as soon as a
// request slot is free, up to five in flight per broker).
func newProducer(seeds []string, topic string, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(20000),
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
	prod, err := newProducer(seeds, o.Topic)
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
	// (50 µs at 20 MB/s) is finer than the timer can do.
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
		res.MBps = mb(res.Bytes) / lastAck.Sub(start).Seconds()
	}
	slices.Sort(latencies)
	res.P50 = percentile(latencies, 0.50)
	res.P99 = percentile(latencies, 0.99)
	return res, nil
}
