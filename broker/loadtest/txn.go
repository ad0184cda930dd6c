package loadtest

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TxnOptions shape one transactional produce phase.
type TxnOptions struct {
	Topic       string
	RecordBytes int
	// TxnRecords is the number of records in each transaction.
	TxnRecords int
	// Producers is the number of transactional producers, each with its
	// own transactional id, running transactions one after another.
	Producers int
	// Duration bounds the phase: no transaction begins after it; MaxTxns
	// (if > 0) ends it early, counted over every producer.
	Duration time.Duration
	MaxTxns  int
}

// TxnResult is what one transactional produce phase reached.
type TxnResult struct {
	// Committed transactions and the records and bytes in them.
	Txns    int64
	Records int64
	Bytes   int64
	// MiBps is committed MiB (2^20 bytes) per second, from the first
	// transaction's start to the last commit.
	MiBps float64
	// Commit latency: from EndTransaction (every record of the transaction
	// acknowledged) until the commit returned, which is the EndTxn round
	// trip with the coordinator writing its decision to the transaction
	// log. Txn latency: from BeginTransaction to the commit's return.
	CommitP50, CommitP99 time.Duration
	TxnP50, TxnP99       time.Duration
}

// TxnClientSettings says how ProduceTxn's producers are configured, for
// the printed tables.
const TxnClientSettings = "franz-go, acks=all, idempotent, uncompressed, round robin over the partitions, linger 0, up to 5 requests in flight per broker, transaction.timeout.ms 60000, Flush before each commit"

// ProduceTxn runs o.Producers franz-go transactional producers against an
// existing topic for o.Duration. Each begins a transaction, produces
// o.TxnRecords random values of o.RecordBytes, waits for every record to
// be acknowledged (Flush), and commits; any failure ends the phase with
// an error, since a benchmark of transactions that abort measures
// nothing. Only committed transactions are counted. Before the clock
// starts, each producer commits one transaction of one record (not
// counted): it gets its producer id and finds its coordinator, and the
// first one creates __transaction_state, which is set-up, not the cost
// of a transaction.
func ProduceTxn(ctx context.Context, seeds []string, o TxnOptions) (TxnResult, error) {
	var res TxnResult
	if o.TxnRecords <= 0 || o.Producers <= 0 {
		return res, fmt.Errorf("transactional phase: %d records per transaction, %d producers: both must be positive", o.TxnRecords, o.Producers)
	}
	value := make([]byte, o.RecordBytes)
	_, _ = rand.Read(value)
	// A unique id prefix per phase: a second phase against the same
	// cluster must not fence the first one's ids (and is not slowed by
	// their epoch bumps).
	run := time.Now().UnixNano()

	var (
		mu            sync.Mutex
		commits, txns []time.Duration
		lastCommit    time.Time
		firstErr      error
		started       int
		wg            sync.WaitGroup
		producers     = make([]*kgo.Client, o.Producers)
		start, end    time.Time // set when the producers start
	)
	for i := range producers {
		cl, err := newProducer(seeds, o.Topic, 0, kgo.TransactionalID(fmt.Sprintf("bench-%d-%d", run, i)),
			kgo.TransactionTimeout(60*time.Second))
		if err != nil {
			for _, p := range producers[:i] {
				p.Close()
			}
			return res, err
		}
		producers[i] = cl
	}
	defer func() {
		for _, p := range producers {
			p.Close()
		}
	}()
	// take reserves the next transaction, false when the phase is over.
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || !time.Now().Before(end) || (o.MaxTxns > 0 && started >= o.MaxTxns) {
			return false
		}
		started++
		return true
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	warm := make(chan error, len(producers))
	for _, cl := range producers {
		go func() { warm <- warmUp(ctx, cl, value) }()
	}
	for range producers {
		if err := <-warm; err != nil {
			return res, fmt.Errorf("warm-up transaction: %w", err)
		}
	}
	start = time.Now()
	end = start.Add(o.Duration)
	for _, cl := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && take() {
				begin := time.Now()
				if err := cl.BeginTransaction(); err != nil {
					fail(fmt.Errorf("beginning a transaction: %w", err))
					return
				}
				var produceErr error
				var pmu sync.Mutex
				for range o.TxnRecords {
					cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
						if err != nil {
							pmu.Lock()
							produceErr = cmp.Or(produceErr, err)
							pmu.Unlock()
						}
					})
				}
				if err := cl.Flush(ctx); err != nil {
					fail(fmt.Errorf("flushing a transaction: %w", err))
					return
				}
				if produceErr != nil {
					fail(fmt.Errorf("producing in a transaction: %w", produceErr))
					return
				}
				commitStart := time.Now()
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					fail(fmt.Errorf("committing: %w", err))
					return
				}
				now := time.Now()
				mu.Lock()
				commits = append(commits, now.Sub(commitStart))
				txns = append(txns, now.Sub(begin))
				lastCommit = now
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("transactional produce: %w", err)
	}
	if firstErr != nil {
		return res, fmt.Errorf("transactional produce: %w", firstErr)
	}
	res.Txns = int64(len(commits))
	res.Records = res.Txns * int64(o.TxnRecords)
	res.Bytes = res.Records * int64(o.RecordBytes)
	if res.Txns > 0 {
		res.MiBps = mib(res.Bytes) / lastCommit.Sub(start).Seconds()
	}
	slices.Sort(commits)
	slices.Sort(txns)
	res.CommitP50, res.CommitP99 = percentile(commits, 0.50), percentile(commits, 0.99)
	res.TxnP50, res.TxnP99 = percentile(txns, 0.50), percentile(txns, 0.99)
	return res, nil
}

// warmUp commits one transaction of one record.
func warmUp(ctx context.Context, cl *kgo.Client, value []byte) error {
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		return err
	}
	return cl.EndTransaction(ctx, kgo.TryCommit)
}
