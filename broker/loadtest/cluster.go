package loadtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/chaos"
)

// ClusterSize is the number of brokers of the cluster benchmark: one per
// rack (a, b, c), as one per Availability Zone in MSK.
const ClusterSize = 3

// StartCluster starts ClusterSize tributary-broker processes (racks a, b,
// c; each on its own 127.0.0.x address with its own data directory and
// config file under dir, controller.quorum.voters naming all three) and
// waits until Metadata lists every broker. settings are more broker
// settings (Kafka names) for every broker, e.g. log.flush.policy; they
// override the benchmark's. The caller must Close the cluster, which kills
// the processes.
func StartCluster(ctx context.Context, bin, dir string, settings map[string]string) (*chaos.Cluster, error) {
	return startClusterTLS(ctx, bin, dir, settings, false)
}

// StartSecureCluster is StartCluster with TLS everywhere, as a cluster
// with MSK's in-cluster encryption and TLS clients: each broker serves
// clients on an SSL listener only (c.ClientOpts trusts the run's CA), and
// replicates and runs the metadata quorum over TLS with its own broker
// certificate both ways.
func StartSecureCluster(ctx context.Context, bin, dir string, settings map[string]string) (*chaos.Cluster, error) {
	return startClusterTLS(ctx, bin, dir, settings, true)
}

func startClusterTLS(ctx context.Context, bin, dir string, settings map[string]string, tls bool) (*chaos.Cluster, error) {
	all := map[string]string{
		"default.replication.factor": fmt.Sprint(ClusterSize),
		"min.insync.replicas":        "2",
	}
	maps.Copy(all, settings)
	c, err := chaos.NewCluster(chaos.ClusterConfig{Binary: bin, Dir: dir, Nodes: ClusterSize, Settings: all, TLS: tls})
	if err != nil {
		return nil, fmt.Errorf("laying out the cluster: %w", err)
	}
	if err := startCluster(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func startCluster(ctx context.Context, c *chaos.Cluster) error {
	if err := c.StartAll(); err != nil {
		return err
	}
	for _, n := range c.Nodes() {
		if err := c.WaitServing(ctx, n.ID); err != nil {
			return fmt.Errorf("%w\nbroker %d log tail:\n%s", err, n.ID, c.Log(n.ID, 2000))
		}
	}
	if err := waitBrokers(ctx, c.Bootstrap(), ClusterSize, c.ClientOpts()...); err != nil {
		var tails string
		for _, n := range c.Nodes() {
			tails += fmt.Sprintf("\nbroker %d log tail:\n%s", n.ID, c.Log(n.ID, 1000))
		}
		return fmt.Errorf("%w%s", err, tails)
	}
	return nil
}

// waitBrokers polls Metadata until it lists n brokers or ctx ends.
func waitBrokers(ctx context.Context, seeds []string, n int, client ...kgo.Opt) error {
	var last string
	for {
		md, err := metadata(ctx, seeds, client)
		switch {
		case err != nil:
			last = err.Error()
		case len(md.Brokers) >= n:
			return nil
		default:
			last = fmt.Sprintf("Metadata lists %d brokers", len(md.Brokers))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for %d brokers (last: %s): %w", n, last, err)
		}
	}
}

// CreateReplicatedTopic creates a topic with the given replication factor,
// retrying while a just-formed cluster still refuses it (brokers not all
// registered yet), then waits until every partition has a leader and a
// full ISR, so that a measurement does not start during the ISR's ramp-up.
func CreateReplicatedTopic(ctx context.Context, seeds []string, topic string, partitions int32, replicationFactor int16, client ...kgo.Opt) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		last = createTopic(cctx, seeds, topic, partitions, replicationFactor, client...)
		cancel()
		// A retry after a timed-out attempt that did create it finds it.
		if last == nil || errors.Is(last, kerr.TopicAlreadyExists) {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("%w (last: %w)", err, last)
		}
	}
	return WaitFullISR(ctx, seeds, topic, int(replicationFactor), client...)
}

// WaitFullISR polls Metadata until every partition of topic has a leader
// and an ISR of size replicas, or ctx ends.
func WaitFullISR(ctx context.Context, seeds []string, topic string, replicas int, client ...kgo.Opt) error {
	var last string
	for {
		_, err := topicReady(ctx, seeds, topic, replicas, client...)
		if err == nil {
			return nil
		}
		last = err.Error()
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for a full ISR on %s (last: %s): %w", topic, last, err)
		}
	}
}

// topicReady returns the topic's metadata when every partition has a
// leader and an ISR of size replicas.
func topicReady(ctx context.Context, seeds []string, topic string, replicas int, client ...kgo.Opt) (kadm.Metadata, error) {
	md, err := metadata(ctx, seeds, client, topic)
	if err != nil {
		return md, err
	}
	td, ok := md.Topics[topic]
	switch {
	case !ok:
		return md, fmt.Errorf("topic %s not in Metadata", topic)
	case td.Err != nil:
		return md, fmt.Errorf("topic %s: %w", topic, td.Err)
	case len(td.Partitions) == 0:
		return md, fmt.Errorf("topic %s has no partitions yet", topic)
	}
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 || len(p.ISR) < replicas {
			return md, fmt.Errorf("%s[%d]: leader %d, ISR %v, error %v", topic, p.Partition, p.Leader, p.ISR, p.Err)
		}
	}
	return md, nil
}

// metadata asks for the brokers and the given topics (none: brokers only)
// with a new client each time, so that no client-side metadata cache can
// answer: the benchmark waits for what the brokers say now.
func metadata(ctx context.Context, seeds []string, client []kgo.Opt, topics ...string) (kadm.Metadata, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.DialTimeout(time.Second), kgo.RetryTimeout(2 * time.Second)}, client...)...)
	if err != nil {
		return kadm.Metadata{}, fmt.Errorf("creating an admin client: %w", err)
	}
	defer cl.Close()
	mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	if len(topics) == 0 {
		return adm.BrokerMetadata(mctx)
	}
	return adm.Metadata(mctx, topics...)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Kill is one measured failover.
type Kill struct {
	// Broker is the killed leader; Controller reports whether it was also
	// the active controller (then a Raft election precedes the new leader).
	Broker     int32
	Controller bool
	// NewLeader is the partition's leader when the measurement ended (-1
	// when it was not known).
	NewLeader int32
	// Time runs from the SIGKILL to the acknowledgement of the first
	// record sent once the process was gone; zero when none came within
	// the deadline.
	Time time.Duration
}

// FailoverOptions shape the failover measurement.
type FailoverOptions struct {
	Topic       string
	RecordBytes int
	// RateBytes is the producer's offered load while leaders are killed.
	RateBytes float64
	Kills     int
	// Deadline bounds each failover; a failover slower than it is reported
	// with Time zero and the run goes on.
	Deadline time.Duration
}

// Failover creates a one-partition topic with a replica on every broker,
// runs a paced producer (idempotent, acks=all, no linger) on it, and Kills times:
// waits for a full ISR, kill -9s the partition's leader, measures the time
// from the kill to the acknowledgement of the first record sent once the
// killed process was gone (an acknowledgement only a new leader can give),
// then restarts the killed broker. The producer refreshes metadata and
// retries as Kafka's Java client does by default, not as franz-go does:
// a metadata refresh floor of 100 ms instead of 5 s, and retry backoffs
// of 100 ms doubling to at most 1 s (retry.backoff.ms,
// retry.backoff.max.ms, KIP-580) instead of 250 ms doubling to 5 s, so
// that the figure measures the cluster, not the client's throttle.
func Failover(ctx context.Context, c *chaos.Cluster, o FailoverOptions) ([]Kill, error) {
	seeds := c.Bootstrap()
	if err := CreateReplicatedTopic(ctx, seeds, o.Topic, 1, ClusterSize); err != nil {
		return nil, err
	}
	// No linger: the first record after the kill leaves at once.
	prod, err := newProducer(seeds, o.Topic, 0, kgo.MetadataMinAge(100*time.Millisecond), kgo.RetryBackoffFn(javaRetryBackoff),
		kgo.RecordDeliveryTimeout(o.Deadline))
	if err != nil {
		return nil, err
	}
	defer prod.Close()

	w := newWatcher()
	pctx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		paced(pctx, prod, o.RecordBytes, o.RateBytes, w.acked)
	}()
	defer func() {
		stopProducing()
		<-produced
	}()

	var kills []Kill
	for range o.Kills {
		k, err := failoverOnce(ctx, c, w, o)
		if err != nil {
			return kills, err
		}
		kills = append(kills, k)
	}
	if n := w.failures(); n > 0 {
		return kills, fmt.Errorf("%d records failed during the failovers (first: %w)", n, w.firstError())
	}
	return kills, nil
}

func failoverOnce(ctx context.Context, c *chaos.Cluster, w *watcher, o FailoverOptions) (Kill, error) {
	seeds := c.Bootstrap()
	// A full ISR and a flowing producer before each kill.
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var md kadm.Metadata
	for {
		var err error
		md, err = topicReady(rctx, seeds, o.Topic, ClusterSize)
		if err == nil && w.flowing(500*time.Millisecond) {
			break
		}
		if serr := sleep(rctx, 100*time.Millisecond); serr != nil {
			return Kill{}, fmt.Errorf("waiting for a full ISR and acknowledged produces before a kill (last: %v): %w", err, serr)
		}
	}
	leader := md.Topics[o.Topic].Partitions[0].Leader
	k := Kill{Broker: leader, Controller: md.Controller == leader, NewLeader: -1}

	killedAt := time.Now()
	if err := c.Kill(leader); err != nil {
		return k, fmt.Errorf("killing broker %d: %w", leader, err)
	}
	// Only records sent once the process is gone count: their
	// acknowledgement cannot come from the killed leader.
	recovered := w.arm()
	select {
	case at := <-recovered:
		k.Time = at.Sub(killedAt)
	case <-time.After(o.Deadline):
	case <-ctx.Done():
		return k, ctx.Err()
	}
	if md, err := metadata(rctx, seeds, nil, o.Topic); err == nil {
		if p, ok := md.Topics[o.Topic].Partitions[0]; ok {
			k.NewLeader = p.Leader
		}
	}
	if err := c.Start(leader); err != nil {
		return k, fmt.Errorf("restarting broker %d: %w", leader, err)
	}
	if err := c.WaitServing(rctx, leader); err != nil {
		return k, fmt.Errorf("restarting broker %d: %w\n%s", leader, err, c.Log(leader, 2000))
	}
	return k, nil
}

// javaRetryBackoff is the Java client's retry backoff (KIP-580): 100 ms,
// doubling per failure up to 1 s, with 20 % jitter.
func javaRetryBackoff(fails int) time.Duration {
	const (
		base = 100 * time.Millisecond
		most = time.Second
	)
	d := base
	for i := 1; i < fails && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// paced produces one record of recordBytes every recordBytes/rate seconds
// until ctx ends, calling acked with each record's send time and outcome.
func paced(ctx context.Context, prod *kgo.Client, recordBytes int, rate float64, acked func(sentAt time.Time, err error)) {
	value := make([]byte, recordBytes)
	perRecord := time.Duration(float64(time.Second) * float64(recordBytes) / rate)
	start := time.Now()
	for n := 0; ctx.Err() == nil; n++ {
		if wait := time.Until(start.Add(time.Duration(n) * perRecord)); wait > 0 {
			if sleep(ctx, max(wait, time.Millisecond)) != nil {
				return
			}
		}
		at := time.Now()
		prod.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) { acked(at, err) })
	}
}

// ManyPartitionsResult is a cluster's footprint with many partitions.
type ManyPartitionsResult struct {
	Partitions int32
	// ReplicasPerBroker is how many partition replicas each broker holds.
	ReplicasPerBroker int
	// Ready is the time from the CreateTopics request to every partition
	// having a leader and a full ISR. The controller puts every replica in
	// the ISR at creation, so this says the metadata is in place, not
	// that the brokers act on it.
	Ready time.Duration
	// Open is the time from the CreateTopics request to every broker
	// holding a log for each of its replicas (DescribeLogDirs): until
	// then the brokers are still creating partitions, and memory and
	// Metadata figures would be of a broker at work.
	Open time.Duration
	// RSS is each broker's resident memory once they settled.
	RSS map[int32]int64
	// Metadata is the latency of full Metadata requests (every topic), as
	// a client that has connected measures it, over every broker: from the
	// request to its decoded response.
	Metadata Latency
	// MetadataWire is the same requests from the start of the request's
	// write to the last byte of the response read (kgo's end-to-end
	// broker hook): the broker's time and the transfer, without the
	// client's decoding of the response.
	MetadataWire Latency
}

// MaxRSS is the largest broker RSS.
func (r ManyPartitionsResult) MaxRSS() int64 {
	var m int64
	for _, v := range r.RSS {
		m = max(m, v)
	}
	return m
}

// metadataSamples is how many Metadata requests each broker answers.
const metadataSamples = 20

// ManyPartitions creates topic with partitions partitions and a replica on
// every broker, waits (up to ctx) for every partition to have a leader and
// a full ISR, lets the brokers settle for settle, then reads each broker's
// RSS and times metadataSamples full Metadata requests to each broker.
func ManyPartitions(ctx context.Context, c *chaos.Cluster, topic string, partitions int32, settle time.Duration) (ManyPartitionsResult, error) {
	res := ManyPartitionsResult{Partitions: partitions, ReplicasPerBroker: int(partitions), RSS: map[int32]int64{}}
	seeds := c.Bootstrap()
	start := time.Now()
	if err := CreateReplicatedTopic(ctx, seeds, topic, partitions, ClusterSize); err != nil {
		return res, err
	}
	res.Ready = time.Since(start)
	var ids []int32
	for _, n := range c.Nodes() {
		ids = append(ids, n.ID)
	}
	if err := waitReplicaLogs(ctx, seeds, ids, topic, partitions); err != nil {
		return res, err
	}
	res.Open = time.Since(start)
	if err := sleep(ctx, settle); err != nil {
		return res, err
	}
	for _, n := range c.Nodes() {
		pid, ok := c.PID(n.ID)
		if !ok {
			return res, fmt.Errorf("broker %d is not running", n.ID)
		}
		rss, err := RSS(pid)
		if err != nil {
			return res, fmt.Errorf("RSS of broker %d: %w", n.ID, err)
		}
		res.RSS[n.ID] = rss
	}
	wire := make(chan time.Duration, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.WithHooks(metadataWireHook(wire)))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	var samples, wireSamples []time.Duration
	for _, n := range c.Nodes() {
		b := cl.Broker(int(n.ID))
		// The first request dials; it is not a metadata figure.
		if _, err := b.Request(ctx, kmsg.NewPtrApiVersionsRequest()); err != nil {
			return res, fmt.Errorf("connecting to broker %d: %w", n.ID, err)
		}
		for range metadataSamples {
			req := kmsg.NewPtrMetadataRequest() // Topics nil: every topic
			begin := time.Now()
			r, err := b.Request(ctx, req)
			took := time.Since(begin)
			if err != nil {
				return res, fmt.Errorf("metadata from broker %d: %w", n.ID, err)
			}
			md := r.(*kmsg.MetadataResponse)
			if got := countPartitions(md, topic); got != int(partitions) {
				return res, fmt.Errorf("metadata from broker %d lists %d partitions of %s, want %d", n.ID, got, topic, partitions)
			}
			samples = append(samples, took)
			select {
			case w := <-wire:
				wireSamples = append(wireSamples, w)
			default:
				return res, fmt.Errorf("metadata from broker %d: the client reported no end-to-end time", n.ID)
			}
		}
	}
	res.Metadata = Summarize(samples)
	res.MetadataWire = Summarize(wireSamples)
	return res, nil
}

// metadataWireHook sends the end-to-end time of each Metadata request
// (kgo.BrokerE2E: written, answered and read, before decoding) to wire.
// The hook runs before Request returns the response, and requests are
// issued one at a time, so wire holds at most one value.
type metadataWireHook chan<- time.Duration

func (h metadataWireHook) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key != kmsg.Metadata.Int16() || e2e.Err() != nil {
		return
	}
	select {
	case h <- e2e.DurationE2E():
	default:
	}
}

// waitReplicaLogs polls DescribeLogDirs on each of brokers until every
// one lists a log for all partitions of topic (each holds a replica of
// every partition), or ctx ends.
func waitReplicaLogs(ctx context.Context, seeds []string, brokers []int32, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last string
	for _, id := range brokers {
		for {
			dirs, err := adm.DescribeBrokerLogDirs(ctx, id, nil)
			n := 0
			dirs.EachPartition(func(d kadm.DescribedLogDirPartition) {
				if d.Topic == topic {
					n++
				}
			})
			if err == nil && n >= int(partitions) {
				break
			}
			last = fmt.Sprintf("broker %d holds logs for %d of %d partitions (err %v)", id, n, partitions, err)
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return fmt.Errorf("waiting for every broker to open the logs of %s (last: %s): %w", topic, last, err)
			}
		}
	}
	return nil
}

func countPartitions(md *kmsg.MetadataResponse, topic string) int {
	for _, t := range md.Topics {
		if t.Topic != nil && *t.Topic == topic {
			return len(t.Partitions)
		}
	}
	return 0
}

// PIDs are the processes of the cluster's running brokers.
func PIDs(c *chaos.Cluster) []int {
	var out []int
	for _, n := range c.Nodes() {
		if pid, ok := c.PID(n.ID); ok {
			out = append(out, pid)
		}
	}
	return out
}
