// Package loadtest measures a Kafka-compatible broker with franz-go:
// produce and consume throughput and produce latency for 1 KiB records on
// one topic, the resident memory of a broker process holding many idle
// partitions, and how long a broker process takes to serve again after
// kill -9; and a three-broker cluster (separate processes, replication
// factor 3): produce throughput, latency at a fixed offered rate, and the
// failover time after kill -9 of a partition leader. The tributary-loadtest
// command runs it against the Tributary broker and franz-go's in-memory
// kfake and prints tables (docs/benchmarks.md).
package loadtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options shape one throughput run.
type Options struct {
	Topic       string
	Partitions  int32
	RecordBytes int
	// Duration bounds the produce phase; MaxRecords (if > 0) ends it early.
	Duration   time.Duration
	MaxRecords int
	// Warmup is ProduceOptions.Warmup of the produce phase; the consumer
	// reads as many records as the timed phase produced.
	Warmup time.Duration
	// Linger is the producer's linger (ThroughputLinger in the benchmark).
	Linger time.Duration
	// Client are more options of every client (TLS, SASL).
	Client []kgo.Opt
	// Compression is the producer's codec (ProduceOptions.Compression).
	Compression string
	// TopicConfigs are the topic's configs at creation (e.g.
	// compression.type); nil leaves every one at the broker's default.
	TopicConfigs map[string]*string
	// BrokerPIDs are the server processes (brokers, kfake) whose CPU
	// time the produce and consume phases count (Produce.Cost,
	// ConsumeCost, ConsumeCPU) beside this process's.
	BrokerPIDs []int
}

// ConsumeCPU is the CPU time the consume phase cost: the brokers'
// (serving the fetches, and in a cluster replicating nothing more) and this process's (the consumer: decoding, and
// on TLS decrypting, what it reads). On one machine both draw on the same
// cores, so a client that costs more lowers what the broker can serve.
type ConsumeCPU struct {
	Broker, Client time.Duration
}

// Result of one throughput run.
type Result struct {
	Produce ProduceResult
	// ConsumeMiBps is MiB of record values read per second by one
	// consumer reading the whole topic from the start.
	ConsumeMiBps float64
	// ConsumeCPU is ConsumeCost's client and broker time.
	ConsumeCPU ConsumeCPU
	// ConsumeCost is the consume phase's CPU accounting.
	ConsumeCost CPU
	// ConsumeBytes is the size of the record values read.
	ConsumeBytes int64
}

// Throughput creates the topic on the broker at addr, produces to it for
// the configured time with one franz-go producer (acks=all, idempotent,
// uncompressed random values, o.Linger), then reads everything back with
// one consumer. Latency is per record, from Produce to acknowledgement,
// under that full load.
func Throughput(ctx context.Context, addr string, o Options) (Result, error) {
	if err := createTopicConfigs(ctx, []string{addr}, o.Topic, o.Partitions, 1, o.TopicConfigs, o.Client...); err != nil {
		return Result{}, err
	}
	return throughput(ctx, []string{addr}, o)
}

// ClusterThroughput is Throughput on a cluster: the topic is created with
// replicationFactor replicas (waiting for every ISR to be full first), the
// producer and the consumer are seeded with every broker, and
// Options.BrokerPIDs are every broker's process.
func ClusterThroughput(ctx context.Context, seeds []string, replicationFactor int16, o Options) (Result, error) {
	if err := CreateReplicatedTopic(ctx, seeds, o.Topic, o.Partitions, replicationFactor, o.Client...); err != nil {
		return Result{}, err
	}
	return throughput(ctx, seeds, o)
}

func throughput(ctx context.Context, seeds []string, o Options) (Result, error) {
	pr, err := Produce(ctx, seeds, ProduceOptions{Topic: o.Topic, RecordBytes: o.RecordBytes, Duration: o.Duration, MaxRecords: o.MaxRecords, Warmup: o.Warmup, Linger: o.Linger, Compression: o.Compression, Client: o.Client, ServerPIDs: o.BrokerPIDs})
	if err != nil {
		return Result{}, err
	}
	res := Result{Produce: pr}

	cons, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ConsumeTopics(o.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(50 << 20),
		kgo.FetchMaxPartitionBytes(10 << 20),
	}, o.Client...)...)
	if err != nil {
		return res, err
	}
	defer cons.Close()
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Minute)
	defer ccancel()
	meter, err := startCPU(o.BrokerPIDs)
	if err != nil {
		return res, err
	}
	start := time.Now()
	var read int64
	for read < pr.Records {
		fs := cons.PollFetches(cctx)
		if cctx.Err() != nil {
			return res, fmt.Errorf("consumed %d of %d records before the deadline", read, pr.Records)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetching %s[%d]: %w", t, p, err) })
		if ferr != nil {
			return res, ferr
		}
		read += int64(fs.NumRecords())
	}
	res.ConsumeMiBps = mib(pr.Bytes) / time.Since(start).Seconds()
	res.ConsumeBytes = pr.Bytes
	if res.ConsumeCost, err = meter.stop(pr.Bytes); err != nil {
		return res, err
	}
	res.ConsumeCPU = ConsumeCPU{Broker: res.ConsumeCost.Server, Client: res.ConsumeCost.Client}
	return res, nil
}

// CreateTopic creates a topic with replication factor 1.
func CreateTopic(ctx context.Context, addr, topic string, partitions int32) error {
	return createTopic(ctx, []string{addr}, topic, partitions, 1)
}

// CreateTopicWithConfigs creates a topic with replication factor 1 and the
// given configs.
func CreateTopicWithConfigs(ctx context.Context, addr, topic string, partitions int32, configs map[string]*string) error {
	return createTopicConfigs(ctx, []string{addr}, topic, partitions, 1, configs)
}

func createTopic(ctx context.Context, seeds []string, topic string, partitions int32, replicationFactor int16, client ...kgo.Opt) error {
	return createTopicConfigs(ctx, seeds, topic, partitions, replicationFactor, nil, client...)
}

func createTopicConfigs(ctx context.Context, seeds []string, topic string, partitions int32, replicationFactor int16, configs map[string]*string, client ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, client...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, replicationFactor, configs, topic)
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("creating topic %s: %w (%s)", topic, resp.Err, resp.ErrMessage)
	}
	return nil
}

// Fill produces about size bytes of records of recordBytes into a topic as
// fast as possible, to build a large log.
func Fill(ctx context.Context, addr, topic string, partitions int32, size int64, recordBytes int) error {
	if err := CreateTopic(ctx, addr, topic, partitions); err != nil {
		return err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(50000),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	value := make([]byte, recordBytes)
	_, _ = rand.Read(value)
	var (
		mu       sync.Mutex
		firstErr error
	)
	for n := int64(0); n < size && ctx.Err() == nil; n += int64(recordBytes) {
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}

// WaitServing polls the broker until it answers Metadata and lists the
// end offsets of topic (the partition logs are open), or ctx ends. It
// returns when the broker serves.
func WaitServing(ctx context.Context, addr, topic string) error {
	for {
		err := probe(ctx, addr, topic)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker at %s not serving: %w", addr, errors.Join(err, ctx.Err()))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, addr, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(time.Second), kgo.RetryTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(pctx, topic)
	if err != nil {
		return err
	}
	return ends.Error()
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
