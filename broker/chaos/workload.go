package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// WorkloadConfig shapes the clients of a run.
type WorkloadConfig struct {
	Brokers []string
	// ClientOpts go to every client (TLS to the brokers' listeners).
	ClientOpts        []kgo.Opt
	Topic             string
	Partitions        int32
	ReplicationFactor int16
	// Producers are idempotent acks=all producers, each sending unique
	// values one at a time to the partitions in turn.
	Producers int
	// Consumers read every partition from the start, continuously.
	Consumers int
	// RereadEvery makes the consumers start over from the log start this
	// often (0: only when what they read is gone): with retention, reads
	// then begin where segments are being deleted.
	RereadEvery time.Duration
	// OpTimeout bounds one send; a send that runs out is indeterminate.
	OpTimeout time.Duration
	// Rate caps each producer's sends per second (0: as fast as acks
	// come), which keeps long runs' histories to a reasonable size.
	Rate float64
	// TopicConfigs are the topic's configs at creation (e.g. retention.ms
	// and segment.bytes: Retention).
	TopicConfigs map[string]*string

	// The transactional workload (txn_workload.go), on its own topic
	// with Partitions partitions, runs when TxnProducers > 0.
	TxnProducers int
	// TxnConsumers read the transactional topic in read_committed.
	TxnConsumers int
	TxnTopic     string        // default chaos-txn
	TxnTimeout   time.Duration // transaction.timeout.ms, default 10 s
	AbortRatio   float64       // share of transactions aborted on purpose, default 0.25
	TxnRate      float64       // transactions per second per producer, default 20

	Logger *slog.Logger
}

func (c *WorkloadConfig) defaults() {
	if c.Topic == "" {
		c.Topic = "chaos"
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.Producers <= 0 {
		c.Producers = 2
	}
	if c.Consumers <= 0 {
		c.Consumers = 1
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.txnDefaults()
}

func key(topic string, p int32) string { return fmt.Sprintf("%s-%d", topic, p) }

// WaitCluster waits until a broker's Metadata lists want brokers: the
// processes formed one cluster (a broker that ignores the controller
// settings lists only itself).
func WaitCluster(ctx context.Context, cfg WorkloadConfig, want int) error {
	var last int
	for {
		// A new client each time: a client keeps the broker list it
		// learnt and may answer from it instead of asking again.
		n, err := brokerCount(ctx, cfg.Brokers, cfg.ClientOpts)
		if err == nil {
			last = n
			if last == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the brokers do not form one cluster: Metadata lists %d of %d brokers (%v)", last, want, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func brokerCount(ctx context.Context, seeds []string, opts []kgo.Opt) (int, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return 0, err
	}
	return len(md.Brokers), nil
}

// CreateTopic creates the workload's topic, retrying while the cluster
// comes up.
func CreateTopic(ctx context.Context, cfg WorkloadConfig) error {
	cfg.defaults()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		resp, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, cfg.TopicConfigs, cfg.Topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("creating topic %s: %w (last error: %v)", cfg.Topic, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// definiteFailures are produce errors that mean the batch was refused
// before it was written; any other error leaves the send indeterminate.
var definiteFailures = []error{kerr.MessageTooLarge, kerr.InvalidRecord, kerr.CorruptMessage, kerr.RecordListTooLarge, kerr.InvalidTopicException}

func classify(err error) Status {
	if err == nil {
		return OK
	}
	for _, d := range definiteFailures {
		if errors.Is(err, d) {
			return Fail
		}
	}
	return Info
}

// RunProducer sends until ctx ends. Process ids must be unique in a run;
// values are process*1e9 + n, unique as long as a producer sends fewer
// than a billion.
func RunProducer(ctx context.Context, cfg WorkloadConfig, process int, rec *Recorder) error {
	cfg.defaults()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(cfg.OpTimeout),
	}, cfg.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var pace *time.Ticker
	if cfg.Rate > 0 {
		pace = time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer pace.Stop()
	}
	for n := int64(0); ctx.Err() == nil; n++ {
		if pace != nil {
			select {
			case <-pace.C:
			case <-ctx.Done():
				return nil
			}
		}
		v := int64(process)*1_000_000_000 + n
		p := int32(n % int64(cfg.Partitions))
		k := key(cfg.Topic, p)
		rec.Add(Event{Process: process, Status: Invoke, Func: Send, Key: k, Value: v})
		r := &kgo.Record{Partition: p, Value: []byte(strconv.FormatInt(v, 10))}
		err := produceWithin(ctx, cl, r, cfg.OpTimeout)
		e := Event{Process: process, Status: classify(err), Func: Send, Key: k, Value: v}
		if err == nil {
			e.Offset = r.Offset
		} else {
			e.Error = err.Error()
		}
		rec.Add(e)
	}
	return nil
}

// produceWithin sends one record with timeout as its delivery timeout
// and waits for its answer until the answer comes, three timeouts pass,
// or ctx ends. franz-go's ProduceSync waits for a buffered record's
// promise whatever its context says, and a record whose brokers are all
// gone (one that did not come back) is retried without end: the run must
// not wait for it. A record given up on is indeterminate (it may still be
// written), and the client's Close fails it at the latest.
func produceWithin(ctx context.Context, cl *kgo.Client, r *kgo.Record, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	cl.Produce(rctx, r, func(_ *kgo.Record, err error) { done <- err })
	giveUp := time.NewTimer(3 * timeout)
	defer giveUp.Stop()
	select {
	case err := <-done:
		return err
	case <-giveUp.C:
		return fmt.Errorf("no answer to the produce within %v", 3*timeout)
	case <-ctx.Done():
		return fmt.Errorf("stopped waiting for the produce's answer: %w", ctx.Err())
	}
}

// RunConsumer reads every partition from the start until ctx ends. When
// the client cannot continue a partition (offset out of range: what it read
// is gone), it starts over from the start and records seeks.
func RunConsumer(ctx context.Context, cfg WorkloadConfig, process int, rec *Recorder) error {
	cfg.defaults()
	consumeUntilDone(ctx, cfg, process, rec, false)
	return nil
}

// consumeUntilDone runs consumeOnce until ctx ends, starting over when it
// cannot continue and every RereadEvery.
func consumeUntilDone(ctx context.Context, cfg WorkloadConfig, process int, rec *Recorder, readCommitted bool) {
	for ctx.Err() == nil {
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if cfg.RereadEvery > 0 {
			cctx, cancel = context.WithTimeout(ctx, cfg.RereadEvery)
		}
		err := consumeOnce(cctx, cfg, process, rec, nil, readCommitted)
		cancel()
		if err != nil && cctx.Err() == nil {
			cfg.Logger.Warn("consumer restarting", "process", process, "read_committed", readCommitted, "err", err)
		}
	}
}

// consumeOnce reads from the start of every partition; with ends set it
// stops once it reached them (the final drain), marking its polls final.
// With readCommitted it reads at read_committed and keeps the markers (not
// reported) so that the drain knows when it passed the end.
func consumeOnce(ctx context.Context, cfg WorkloadConfig, process int, rec *Recorder, ends map[int32]int64, readCommitted bool) error {
	offsets := map[int32]kgo.Offset{}
	for p := range cfg.Partitions {
		offsets[p] = kgo.NewOffset().AtStart()
		rec.Add(Event{Process: process, Func: Seek, Key: key(cfg.Topic, p)})
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: offsets}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}
	if readCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	}
	cl, err := kgo.NewClient(append(opts, cfg.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Where the log starts now: what retention removed before this read
	// began is not missing from it (Options.Retention); the checkers
	// excuse what retention removed below it.
	starts, startsAt := recordLogStarts(ctx, cl, cfg, process, rec), time.Now()
	next := map[int32]int64{}
	var lastErr string
	for ctx.Err() == nil {
		if ends != nil {
			// A partition retention emptied up to its end (or past
			// what is left to read of it) has nothing more to give: the
			// drain would wait for it for ever.
			for p, s := range starts {
				if s >= ends[p] && next[p] < s {
					next[p] = s
				}
			}
			if reached(next, ends) {
				return nil
			}
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("%s-%d: %w", t, p, err)
			}
		})
		var reads []Read
		fetches.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return // kept only at read_committed, for next
			}
			v, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil {
				v = -1 // a value nobody sent: reported as a phantom read
			}
			reads = append(reads, Read{Key: key(r.Topic, r.Partition), Offset: r.Offset, Value: v})
		})
		if len(reads) > 0 {
			rec.Add(Event{Process: process, Status: Invoke, Func: Poll})
			rec.Add(Event{Process: process, Status: OK, Func: Poll, Reads: reads, Final: ends != nil, ReadCommitted: readCommitted})
		}
		if ends != nil && fetchErr != nil && fetchErr.Error() != lastErr {
			// The drain must reach every end: say what holds it up.
			cfg.Logger.Warn("drain fetch failed", "process", process, "err", fetchErr)
			lastErr = fetchErr.Error()
		}
		if errors.Is(fetchErr, kerr.OffsetOutOfRange) {
			return fetchErr
		}
		if ends != nil && time.Since(startsAt) > 2*time.Second {
			starts, startsAt = recordLogStarts(ctx, cl, cfg, process, rec), time.Now()
		}
	}
	if ends != nil {
		return fmt.Errorf("read up to %v: %w", next, ctx.Err())
	}
	return ctx.Err()
}

func reached(next, ends map[int32]int64) bool {
	for p, end := range ends {
		if next[p] < end {
			return false
		}
	}
	return true
}

// recordLogStarts records the log start offset of every partition of the
// topic (ListOffsets earliest), trying for up to 5 s; partitions it cannot
// learn it for get no event (so nothing missing from them is excused).
func recordLogStarts(ctx context.Context, cl *kgo.Client, cfg WorkloadConfig, process int, rec *Recorder) map[int32]int64 {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	starts := map[int32]int64{}
	todo := map[int32]bool{}
	for p := range cfg.Partitions {
		todo[p] = true
	}
	for len(todo) > 0 {
		listed, err := kadm.NewClient(cl).ListStartOffsets(lctx, cfg.Topic)
		if err == nil {
			for p := range todo {
				if o, ok := listed.Lookup(cfg.Topic, p); ok && o.Err == nil {
					rec.Add(Event{Process: process, Status: OK, Func: LogStart, Key: key(cfg.Topic, p), Offset: o.Offset})
					starts[p] = o.Offset
					delete(todo, p)
				}
			}
		}
		if len(todo) == 0 {
			return starts
		}
		select {
		case <-lctx.Done():
			return starts
		case <-time.After(200 * time.Millisecond):
		}
	}
	return starts
}

// Drain reads every partition from its start to its current end after the
// faults stopped: the final reads the checker compares everything with.
func Drain(ctx context.Context, cfg WorkloadConfig, process int, rec *Recorder) error {
	cfg.defaults()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return err
	}
	ends := map[int32]int64{}
	for {
		listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, cfg.Topic)
		if err == nil {
			err = listed.Error()
		}
		if err == nil {
			for p := range cfg.Partitions {
				o, ok := listed.Lookup(cfg.Topic, p)
				if !ok {
					err = fmt.Errorf("no end offset for partition %d", p)
					break
				}
				ends[p] = o.Offset
			}
		}
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			cl.Close()
			return fmt.Errorf("listing end offsets for the drain: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Retention can move a partition's log start past the drain's
	// position (OFFSET_OUT_OF_RANGE): it starts over from the log start.
	for try := 1; ; try++ {
		err := consumeOnce(ctx, cfg, process, rec, ends, false)
		if err == nil {
			break
		}
		if try == 3 || !errors.Is(err, kerr.OffsetOutOfRange) {
			cl.Close()
			return fmt.Errorf("draining to %v: %w", ends, err)
		}
		cfg.Logger.Warn("the drain starts over", "err", err)
	}
	// Retention goes on during the drain: a record it removed under the
	// drain's feet is excused by the log start after it.
	recordLogStarts(ctx, cl, cfg, process, rec)
	cl.Close()
	return nil
}

// runClients starts the producers and consumers; wait stops nothing, it
// waits for them to end with ctx.
func runClients(ctx context.Context, cfg WorkloadConfig, rec *Recorder) (wait func()) {
	var wg sync.WaitGroup
	for i := range cfg.Producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := RunProducer(ctx, cfg, 1+i, rec); err != nil {
				cfg.Logger.Error("producer", "process", 1+i, "err", err)
			}
		}()
	}
	for i := range cfg.Consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := RunConsumer(ctx, cfg, 100+i, rec); err != nil {
				cfg.Logger.Error("consumer", "process", 100+i, "err", err)
			}
		}()
	}
	if cfg.TxnProducers == 0 {
		return wg.Wait
	}
	for _, p := range txnProducers(cfg) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := RunTxnProducer(ctx, cfg, p, rec); err != nil {
				cfg.Logger.Error("transactional producer", "process", p, "err", err)
			}
		}()
	}
	for i := range cfg.TxnConsumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := RunTxnConsumer(ctx, cfg, txnConsumerBase+i, rec); err != nil {
				cfg.Logger.Error("read_committed consumer", "process", txnConsumerBase+i, "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := RunOffsetObserver(ctx, cfg, txnProducers(cfg), rec, false); err != nil {
			cfg.Logger.Error("offset observer", "err", err)
		}
	}()
	return wg.Wait
}

// txnProducers lists the transactional producers' process ids.
func txnProducers(cfg WorkloadConfig) []int {
	out := make([]int, cfg.TxnProducers)
	for i := range out {
		out[i] = txnProducerBase + i
	}
	return out
}
