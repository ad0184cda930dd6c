package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The transactional workload: producers run transactions of a few unique
// values on random partitions of the transactional topic, committing a
// group offset (the transaction's number) in each, and commit or abort
// them; they start a new incarnation of their transactional id now and
// then and after any unclear outcome, fencing the previous one.
// read_committed consumers read the topic, an observer reads the groups'
// offsets, and the final drain reads the topic in read_committed once
// every transaction is decided.

// txnProcessBase and friends number the transactional workload's processes.
const (
	txnProducerBase = 200
	txnConsumerBase = 300
	offsetObserver  = 400
	txnDrainProcess = 998
)

func (c *WorkloadConfig) txnDefaults() {
	if c.TxnTopic == "" {
		c.TxnTopic = "chaos-txn"
	}
	if c.TxnTimeout <= 0 {
		c.TxnTimeout = 10 * time.Second
	}
	if c.AbortRatio <= 0 {
		c.AbortRatio = 0.25
	}
	if c.TxnRate <= 0 {
		c.TxnRate = 20
	}
}

// createTxnTopic creates the transactional topic as CreateTopic does the
// plain one, with its configs: with retention, the transactional checker
// excuses what retention removed as the plain one does.
func createTxnTopic(ctx context.Context, cfg WorkloadConfig) error {
	tc := cfg
	tc.Topic = cfg.TxnTopic
	return CreateTopic(ctx, tc)
}

// RunTxnProducer runs transactions until ctx ends. Values are
// process*1e9 + n, unique across the run.
func RunTxnProducer(ctx context.Context, cfg WorkloadConfig, process int, rec *Recorder) error {
	cfg.defaults()
	cfg.txnDefaults()
	rnd := rand.New(rand.NewPCG(uint64(process), uint64(time.Now().UnixNano())))
	var pace *time.Ticker
	if cfg.TxnRate > 0 {
		pace = time.NewTicker(time.Duration(float64(time.Second) / cfg.TxnRate))
		defer pace.Stop()
	}
	var seq, n int64
	for ctx.Err() == nil {
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(cfg.Brokers...),
			kgo.TransactionalID(fmt.Sprintf("chaos-txn-producer-%d", process)),
			kgo.TransactionTimeout(cfg.TxnTimeout),
			kgo.DefaultProduceTopic(cfg.TxnTopic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(0),
			kgo.RecordDeliveryTimeout(cfg.OpTimeout),
		}, cfg.ClientOpts...)...)
		if err != nil {
			return err
		}
		rec.Add(Event{Process: process, Status: OK, Func: Fence})
		// An incarnation runs a few dozen transactions, or until an
		// outcome it cannot be sure of.
		for i := 0; i < 40 && ctx.Err() == nil; i++ {
			if pace != nil {
				select {
				case <-pace.C:
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					break
				}
			}
			n++
			writes := make([]Write, 1+rnd.IntN(3))
			for j := range writes {
				seq++
				writes[j] = Write{Key: key(cfg.TxnTopic, rnd.Int32N(cfg.Partitions)), Value: int64(process)*1_000_000_000 + seq}
			}
			commit := rnd.Float64() >= cfg.AbortRatio
			if !runTxn(cl, cfg, process, n, writes, commit, rec) {
				break
			}
		}
		cl.Close()
	}
	return nil
}

// runTxn runs one transaction and records it; false means the client's
// state is unclear and a new incarnation should take over.
func runTxn(cl *kgo.Client, cfg WorkloadConfig, process int, n int64, writes []Write, commit bool, rec *Recorder) bool {
	rec.Add(Event{Process: process, Status: Invoke, Func: Txn, Txn: n, Writes: writes, Commit: commit})
	// sent are the writes with the offsets their sends were acknowledged
	// at, nil unless every send was: the completion carries them.
	var sent []Write
	done := func(st Status, err error) {
		e := Event{Process: process, Status: st, Func: Txn, Txn: n, Writes: sent}
		if err != nil {
			e.Error = err.Error()
		}
		rec.Add(e)
	}
	// Transactions finish even when the run stops: their outcome must
	// be known for the history.
	ctx, cancel := context.WithTimeout(context.Background(), 3*cfg.OpTimeout)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		done(Fail, err)
		return false
	}
	var produceErr error
	acked := make([]Write, 0, len(writes))
	for _, w := range writes {
		p, _ := strconv.ParseInt(w.Key[len(cfg.TxnTopic)+1:], 10, 32)
		r := &kgo.Record{Partition: int32(p), Value: []byte(strconv.FormatInt(w.Value, 10))}
		if err := produceWithin(ctx, cl, r, cfg.OpTimeout); err != nil {
			if produceErr == nil {
				produceErr = err
			}
			continue
		}
		w.Offset = r.Offset
		acked = append(acked, w)
	}
	if produceErr == nil {
		sent = acked
	}
	if commit && produceErr == nil {
		produceErr = commitTxnOffset(ctx, cl, cfg, process, n)
	}
	if !commit || produceErr != nil {
		// The commit is never asked for: whatever happens to the abort,
		// the transaction cannot have committed.
		err := cl.EndTransaction(ctx, kgo.TryAbort)
		done(Fail, errors.Join(produceErr, err))
		return err == nil && produceErr == nil
	}
	rec.Add(Event{Process: process, Status: Invoke, Func: TxnEnd, Txn: n})
	err := cl.EndTransaction(ctx, kgo.TryCommit)
	switch {
	case err == nil:
		done(OK, nil)
		return true
	case definitelyNotCommitted(err):
		done(Fail, err)
	default:
		done(Info, err)
	}
	return false
}

// definitelyNotCommitted are EndTxn answers that refuse the commit: the
// coordinator decided nothing, or decided to abort.
func definitelyNotCommitted(err error) bool {
	for _, e := range []error{kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.InvalidTxnState, kerr.InvalidProducerIDMapping, kerr.TransactionalIDAuthorizationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// commitTxnOffset commits the transaction's number as the offset of the
// process's group on partition 0 of the transactional topic, inside the
// transaction (AddOffsetsToTxn, then TxnOffsetCommit).
func commitTxnOffset(ctx context.Context, cl *kgo.Client, cfg WorkloadConfig, process int, n int64) error {
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("producer id: %w", err)
	}
	id := fmt.Sprintf("chaos-txn-producer-%d", process)
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, groupOf(process)
	resp, err := add.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("AddOffsetsToTxn: %w", err)
	}
	oc := kmsg.NewPtrTxnOffsetCommitRequest()
	oc.TransactionalID, oc.Group, oc.ProducerID, oc.ProducerEpoch, oc.Generation = id, groupOf(process), pid, epoch, -1
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = cfg.TxnTopic
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset, p.LeaderEpoch = 0, n, -1
	t.Partitions = append(t.Partitions, p)
	oc.Topics = append(oc.Topics, t)
	ocResp, err := oc.RequestWith(ctx, cl)
	if err == nil && len(ocResp.Topics) == 1 && len(ocResp.Topics[0].Partitions) == 1 {
		err = kerr.ErrorForCode(ocResp.Topics[0].Partitions[0].ErrorCode)
	} else if err == nil {
		err = errors.New("TxnOffsetCommit: malformed response")
	}
	if err != nil {
		return fmt.Errorf("TxnOffsetCommit: %w", err)
	}
	return nil
}

// RunTxnConsumer reads the transactional topic in read_committed until
// ctx ends, starting over when it cannot continue, and every RereadEvery
// as RunConsumer does: with retention, its reads then begin where
// segments, and the aborted transactions they held, are being deleted.
func RunTxnConsumer(ctx context.Context, cfg WorkloadConfig, process int, rec *Recorder) error {
	cfg.defaults()
	cfg.txnDefaults()
	tc := cfg
	tc.Topic = cfg.TxnTopic
	consumeUntilDone(ctx, tc, process, rec, true)
	return nil
}

// RunOffsetObserver reads the transactional producers' group offsets
// until ctx ends; final marks the last round, after the faults.
//
// The final round asks for stable offsets (KIP-447 require_stable) and
// asks again while a group has offsets of an undecided transaction
// pending: EndTxn answers once the decision is durable and the markers
// follow, so a plain read just after a commit may rightly still show the
// group's previous offset (seen after a kill -9 of the leader of
// __consumer_offsets: the final read came 41 ms after the commit's
// answer, while the coordinator was still retrying that marker). The
// check holds the final read to the last committed transaction, which
// only a stable read must show. A group still pending when ctx ends
// fails the run.
func RunOffsetObserver(ctx context.Context, cfg WorkloadConfig, producers []int, rec *Recorder, final bool) error {
	cfg.defaults()
	cfg.txnDefaults()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		for _, p := range producers {
			for {
				rctx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
				if final {
					rctx = kadm.RequireStable(rctx)
				}
				rec.Add(Event{Process: offsetObserver, Status: Invoke, Func: OffsetRead, Key: groupOf(p), Txn: int64(p)})
				offs, err := adm.FetchOffsets(rctx, groupOf(p))
				cancel()
				e := Event{Process: offsetObserver, Func: OffsetRead, Key: groupOf(p), Txn: int64(p), Final: final}
				o, ok := offs.Lookup(cfg.TxnTopic, 0)
				pending := err == nil && ok && errors.Is(o.Err, kerr.UnstableOffsetCommit)
				switch {
				case err != nil:
					e.Status, e.Error = Info, err.Error()
				case pending:
					e.Status, e.Error = Info, o.Err.Error()
				case !ok || o.Err != nil || o.At < 0:
					e.Status, e.Error = Fail, "no committed offset"
				default:
					e.Status, e.Value = OK, o.At
				}
				rec.Add(e)
				if !final || !pending {
					break
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("group %s still has offsets of an undecided transaction: %w", groupOf(p), ctx.Err())
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		if final {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// DrainTxn waits until no transaction of the transactional topic is open
// (every one committed or aborted, by its producer or its timeout), then
// reads the topic in read_committed from the start to its end, and the
// groups' offsets once more.
func DrainTxn(ctx context.Context, cfg WorkloadConfig, producers []int, rec *Recorder) error {
	cfg.defaults()
	cfg.txnDefaults()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	ends := map[int32]int64{}
	for {
		hw, err := adm.ListEndOffsets(ctx, cfg.TxnTopic)
		if err == nil {
			err = hw.Error()
		}
		var lso kadm.ListedOffsets
		if err == nil {
			lso, err = adm.ListCommittedOffsets(ctx, cfg.TxnTopic)
		}
		if err == nil {
			err = lso.Error()
		}
		stable := err == nil
		for p := range cfg.Partitions {
			if !stable {
				break
			}
			h, ok1 := hw.Lookup(cfg.TxnTopic, p)
			l, ok2 := lso.Lookup(cfg.TxnTopic, p)
			if !ok1 || !ok2 || h.Offset != l.Offset {
				stable = false
				break
			}
			ends[p] = h.Offset
		}
		if stable {
			break
		}
		select {
		case <-ctx.Done():
			cl.Close()
			return fmt.Errorf("waiting for every transaction of %s to be decided: %w (last error: %v)", cfg.TxnTopic, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	tc := cfg
	tc.Topic = cfg.TxnTopic
	// Retention can move a partition's log start past the drain's
	// position (OFFSET_OUT_OF_RANGE): it starts over from the log start,
	// as Drain does.
	for try := 1; ; try++ {
		err := consumeOnce(ctx, tc, txnDrainProcess, rec, ends, true)
		if err == nil {
			break
		}
		if try == 3 || !errors.Is(err, kerr.OffsetOutOfRange) {
			cl.Close()
			return fmt.Errorf("draining %s to %v: %w", cfg.TxnTopic, ends, err)
		}
		cfg.Logger.Warn("the transactional drain starts over", "err", err)
	}
	// A record retention removed under the drain's feet is excused by
	// the log start after it.
	recordLogStarts(ctx, cl, tc, txnDrainProcess, rec)
	cl.Close()
	return RunOffsetObserver(ctx, cfg, producers, rec, true)
}
