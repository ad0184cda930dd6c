package txn

import (
	"context"
	"errors"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// txnMeta is what the coordinator knows of one transactional id (Kafka's
// TransactionMetadata).
type txnMeta struct {
	id         string
	producerID int64
	// lastProducerID is the producer id before an epoch exhaustion gave
	// the id a new one (-1 if none): a KIP-360 retry may still name it.
	lastProducerID int64
	epoch          int16
	// lastEpoch is the epoch before the last bump (-1 if unknown), so a
	// producer retrying an InitProducerId whose answer it lost gets the
	// current epoch instead of being fenced. Kept in memory only, as
	// Kafka does.
	lastEpoch  int16
	timeoutMs  int32
	state      State
	partitions map[TopicPartition]struct{}
	startTime  int64 // ms; when the ongoing transaction began, -1 if none
	lastUpdate int64 // ms
	// pending is the state a change in flight moves to (noState if none):
	// its log write, or for PrepareCommit/PrepareAbort the whole marker
	// round until the Complete record is written.
	pending State
	// queued holds the partitions of adds waiting while another add of
	// this transaction is written, or while the last transaction's
	// markers are: the next write takes them too (the next add's, or the
	// Complete record's, which then starts the next transaction), so that
	// a producer's brokers adding at once cost one write, not one each.
	// In memory only; each waiter still finds its partitions in the
	// written set before it is answered.
	queued map[TopicPartition]struct{}
}

func (m *txnMeta) clone() *txnMeta {
	c := *m
	c.queued = nil
	c.partitions = maps.Clone(m.partitions)
	if c.partitions == nil {
		c.partitions = map[TopicPartition]struct{}{}
	}
	return &c
}

// apply copies a written change into m, keeping m's identity (requests
// hold the pointer).
func (m *txnMeta) apply(next *txnMeta) {
	pending, queued := m.pending, m.queued
	*m = *next.clone()
	m.pending, m.queued = pending, queued
}

// epochExhausted: Kafka moves to a new producer id rather than use the
// last epoch, which a timeout abort may need to bump to.
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// shard is the coordinator of one partition of __transaction_state.
type shard struct {
	c         *Coordinator
	partition int32
	epoch     int32 // coordinator epoch: the partition's leader epoch
	log       Log

	ctx    context.Context // ends when the shard stops
	cancel context.CancelFunc
	wg     sync.WaitGroup // load and marker rounds
	state  atomic.Int32   // ShardState

	mu   sync.Mutex
	txns map[string]*txnMeta
	// settled is closed, and replaced, each time a transaction's change
	// in flight ends: requests waiting for one wake and look again.
	settled chan struct{}
}

func newShard(c *Coordinator, partition, epoch int32, log Log) *shard {
	sh := &shard{c: c, partition: partition, epoch: epoch, log: log, txns: map[string]*txnMeta{}, settled: make(chan struct{})}
	sh.ctx, sh.cancel = context.WithCancel(c.ctx)
	sh.state.Store(int32(ShardLoading))
	return sh
}

func (sh *shard) status() ShardState { return ShardState(sh.state.Load()) }

// settle ends m's change in flight and wakes the requests waiting for
// one. The caller holds sh.mu.
func (sh *shard) settle(m *txnMeta) {
	m.pending = noState
	close(sh.settled)
	sh.settled = make(chan struct{})
}

// awaitSettled waits, without sh.mu (held on entry and on return), until
// some change in flight ends, the deadline passes, ctx ends or the shard
// stops; it reports whether a change ended.
func (sh *shard) awaitSettled(ctx context.Context, deadline time.Time) bool {
	ch := sh.settled
	sh.mu.Unlock()
	defer sh.mu.Lock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-ch:
		if f := sh.c.afterSettledWake; f != nil {
			f()
		}
		return true
	case <-timer.C:
	case <-ctx.Done():
	case <-sh.ctx.Done():
	}
	return false
}

// stop ends the shard and waits for its goroutines.
func (sh *shard) stop() {
	sh.state.Store(int32(ShardStopped))
	sh.cancel()
	sh.wg.Wait()
}

// fail stops a shard whose log write failed after it may have appended:
// memory and log could differ, so the shard must be loaded again.
func (sh *shard) fail(err error) {
	if errors.Is(err, ErrNotAppended) || sh.ctx.Err() != nil {
		return
	}
	if !sh.state.CompareAndSwap(int32(ShardReady), int32(ShardStopped)) {
		return
	}
	sh.c.log.Warn("transaction log write failed; the partition's coordinator reloads from its log", "partition", sh.partition, "epoch", sh.epoch, "err", err)
	sh.cancel()
	if f := sh.c.cfg.OnShardStopped; f != nil {
		go f(sh.partition)
	}
}

// load replays the log, then resumes the marker rounds of decided
// transactions.
func (sh *shard) load() {
	defer sh.wg.Done()
	start := time.Now()
	txns := map[string]*txnMeta{}
	var undecodable int
	err := sh.log.Replay(sh.ctx, func(r Record) error {
		id, m, err := decodeRecord(r)
		if err != nil {
			undecodable++
			sh.c.log.Warn("skipping an undecodable transaction log record", "partition", sh.partition, "err", err)
			return nil
		}
		if m == nil {
			delete(txns, id)
			return nil
		}
		if old := txns[id]; old != nil && old.producerID == m.producerID {
			m.lastEpoch = old.epoch
			if m.lastEpoch == m.epoch {
				m.lastEpoch = old.lastEpoch
			}
		}
		txns[id] = m
		return nil
	})
	if err != nil {
		if sh.ctx.Err() == nil {
			sh.c.log.Error("loading the transaction log failed", "partition", sh.partition, "epoch", sh.epoch, "err", err)
			sh.state.Store(int32(ShardStopped))
			if f := sh.c.cfg.OnShardStopped; f != nil {
				go f(sh.partition)
			}
		}
		return
	}
	sh.mu.Lock()
	sh.txns = txns
	var resume []*txnMeta
	for _, m := range txns {
		if m.state == PrepareCommit || m.state == PrepareAbort {
			m.pending = completeOf(m.state)
			resume = append(resume, m)
		}
	}
	if !sh.state.CompareAndSwap(int32(ShardLoading), int32(ShardReady)) {
		sh.mu.Unlock()
		return // stopped meanwhile
	}
	for _, m := range resume {
		sh.startMarkers(m)
	}
	loaded := len(txns)
	sh.mu.Unlock()
	sh.c.log.Info("transaction coordinator loaded a partition", "partition", sh.partition, "epoch", sh.epoch,
		"transactional_ids", loaded, "resumed_markers", len(resume), "undecodable_records", undecodable,
		"took", time.Since(start).Round(time.Millisecond))
}

func completeOf(s State) State {
	if s == PrepareCommit {
		return CompleteCommit
	}
	return CompleteAbort
}

// write appends a transaction's next state. The caller holds no lock and
// has marked the transaction pending. A failure that may have left the
// record in the log stops the shard.
func (sh *shard) write(ctx context.Context, next *txnMeta) error {
	return sh.writeRecords(ctx, []Record{{Key: txnKey(next.id), Value: txnValue(next)}})
}

// writeRecords appends records in one write, as write does.
func (sh *shard) writeRecords(ctx context.Context, records []Record) error {
	if sh.ctx.Err() != nil {
		return errStopped
	}
	err := sh.log.Append(context.WithoutCancel(ctx), records)
	if err != nil {
		sh.fail(err)
	}
	return err
}

// commitChange writes next for m (marked pending by the caller, which
// holds sh.mu and keeps holding it on return) and applies it when the
// write succeeds. It returns the write's error code.
func (sh *shard) commitChange(ctx context.Context, m *txnMeta, next *txnMeta) int16 {
	m.pending = next.state
	sh.mu.Unlock()
	err := sh.write(ctx, next)
	sh.mu.Lock()
	sh.settle(m)
	if err != nil {
		sh.c.log.Warn("transaction state change not written", "partition", sh.partition, "transactional_id", m.id, "to", next.state.String(), "err", err)
		return writeErrorCode(err)
	}
	m.apply(next)
	return 0
}

// startMarkers sends a decided transaction's markers and then writes its
// Complete state, on a goroutine of the shard. The caller holds sh.mu; m
// is in PrepareCommit or PrepareAbort with pending set to the Complete
// state.
func (sh *shard) startMarkers(m *txnMeta) {
	mk := Markers{
		ProducerID: m.producerID, ProducerEpoch: m.epoch, CoordinatorEpoch: sh.epoch,
		Commit: m.state == PrepareCommit, Partitions: sortedPartitions(m.partitions),
	}
	sh.wg.Add(1)
	go func() {
		defer sh.wg.Done()
		sh.runMarkers(m, mk)
	}()
}

// markerBackoff bounds the wait between marker retries.
const (
	markerBackoffMin = 50 * time.Millisecond
	markerBackoffMax = time.Second
	// markerRequestTimeout bounds one round of WriteTxnMarkers requests.
	markerRequestTimeout = 30 * time.Second
)

// runMarkers retries each partition's marker until it is written, the
// partition is gone, or the shard stops; then writes the Complete state
// (retried too: a decided transaction must end).
func (sh *shard) runMarkers(m *txnMeta, mk Markers) {
	left := mk.Partitions
	backoff := markerBackoffMin
	for len(left) > 0 {
		ctx, cancel := context.WithTimeout(sh.ctx, markerRequestTimeout)
		round := mk
		round.Partitions = left
		codes := sh.c.cfg.Markers.WriteTxnMarkers(ctx, round)
		cancel()
		var retry []TopicPartition
		for _, tp := range left {
			code, ok := codes[tp]
			switch {
			case !ok:
				retry = append(retry, tp)
			case code == 0:
			case code == kerr.UnknownTopicOrPartition.Code:
				sh.c.log.Info("transaction marker skipped: the partition no longer exists", "transactional_id", m.id, "topic", tp.Topic, "partition", tp.Partition)
			case code == kerr.InvalidProducerEpoch.Code || code == kerr.TransactionCoordinatorFenced.Code:
				// The partition has seen a newer epoch of the producer
				// or of the coordinator: a newer coordinator decided
				// this partition, and this one is stale.
				sh.c.log.Warn("transaction marker refused; a newer coordinator or producer epoch has the partition", "transactional_id", m.id, "topic", tp.Topic, "partition", tp.Partition, "error", codeName(code))
			default:
				retry = append(retry, tp)
			}
		}
		left = retry
		if len(left) == 0 {
			break
		}
		select {
		case <-sh.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, markerBackoffMax)
	}
	backoff = markerBackoffMin
	for {
		sh.mu.Lock()
		next := m.clone()
		next.state = completeOf(m.state)
		next.partitions = map[TopicPartition]struct{}{}
		next.startTime = -1
		next.lastUpdate = sh.c.now()
		records := []Record{{Key: txnKey(next.id), Value: txnValue(next)}}
		// The producer's next transaction, when its first adds are
		// waiting already, starts in the same write: one replicated
		// write less between two transactions.
		var started *txnMeta
		if len(m.queued) > 0 {
			started = next.clone()
			started.state = Ongoing
			started.startTime = next.lastUpdate
			started.partitions = maps.Clone(m.queued)
			records = append(records, Record{Key: txnKey(started.id), Value: txnValue(started)})
		}
		sh.mu.Unlock()
		err := sh.writeRecords(sh.ctx, records)
		sh.mu.Lock()
		if err == nil {
			if started == nil {
				m.apply(next)
			} else {
				m.apply(started) // next, with the new transaction begun
				for tp := range started.partitions {
					delete(m.queued, tp)
				}
			}
			sh.settle(m)
			sh.mu.Unlock()
			return
		}
		sh.mu.Unlock()
		if !errors.Is(err, ErrNotAppended) {
			return // the shard stopped; its reload resumes the round
		}
		select {
		case <-sh.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, markerBackoffMax)
	}
}

// prepareAbort fences the producer's current epoch (when not exhausted)
// and aborts its ongoing transaction: Kafka's prepareAbortOrFenceProducer
// for a timed-out transaction or an InitProducerId during one. The caller
// holds sh.mu; m is Ongoing and not pending. It returns the write's code.
func (sh *shard) prepareAbort(ctx context.Context, m *txnMeta) int16 {
	next := m.clone()
	if !epochExhausted(m.epoch) {
		next.epoch = m.epoch + 1
		next.lastEpoch = m.epoch
	}
	next.state = PrepareAbort
	next.lastUpdate = sh.c.now()
	if code := sh.commitChange(ctx, m, next); code != 0 {
		return code
	}
	// Partitions queued by adds still waiting belong to the transaction
	// just aborted: left there, the Complete record would start a new
	// transaction with them, at an epoch the producer may not hold (after
	// the bump its adds are fenced), that it never began. A waiter whose
	// epoch is still current finds PrepareAbort when it wakes (the write
	// above woke it) and queues its partitions again itself.
	m.queued = nil
	m.pending = CompleteAbort
	sh.startMarkers(m)
	return 0
}

// abortTimedOut aborts the transactions open past their timeout.
func (sh *shard) abortTimedOut() {
	now := sh.c.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var due []*txnMeta
	for _, m := range sh.txns {
		if m.state == Ongoing && m.pending == noState && m.startTime >= 0 && now-m.startTime > int64(m.timeoutMs) {
			due = append(due, m)
		}
	}
	for _, m := range due {
		if sh.ctx.Err() != nil {
			return
		}
		// Checked again: the lock was released by earlier writes.
		if m.state != Ongoing || m.pending != noState || sh.txns[m.id] != m {
			continue
		}
		sh.c.log.Info("aborting a transaction past its timeout", "transactional_id", m.id, "producer_id", m.producerID,
			"epoch", m.epoch, "timeout_ms", m.timeoutMs, "open_ms", now-m.startTime)
		sh.prepareAbort(sh.ctx, m)
	}
}

// expireIDs forgets ids with no transaction open and no change for
// IDExpiration: a tombstone is written and the id is dropped.
func (sh *shard) expireIDs() {
	now := sh.c.now()
	limit := sh.c.cfg.IDExpiration.Milliseconds()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var due []*txnMeta
	for _, m := range sh.txns {
		switch m.state {
		case Empty, CompleteCommit, CompleteAbort:
			if m.pending == noState && now-m.lastUpdate >= limit {
				due = append(due, m)
			}
		}
	}
	for _, m := range due {
		if sh.ctx.Err() != nil {
			return
		}
		if m.pending != noState || sh.txns[m.id] != m || now-m.lastUpdate < limit {
			continue
		}
		m.pending = Dead
		sh.mu.Unlock()
		err := sh.writeRecords(sh.ctx, []Record{{Key: txnKey(m.id)}})
		sh.mu.Lock()
		sh.settle(m)
		if err != nil {
			sh.c.log.Warn("expiring a transactional id failed", "transactional_id", m.id, "err", err)
			return
		}
		m.state = Dead
		delete(sh.txns, m.id)
		sh.c.log.Info("transactional id expired", "transactional_id", m.id, "producer_id", m.producerID, "idle_ms", now-m.lastUpdate)
	}
}
