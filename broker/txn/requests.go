package txn

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// InitRequest is a transactional InitProducerId.
type InitRequest struct {
	TransactionalID string
	TimeoutMs       int32
	// ProducerID and ProducerEpoch are the producer's current ones when
	// it asks for an epoch bump to recover (KIP-360, v3+); -1 otherwise.
	ProducerID    int64
	ProducerEpoch int16
}

// InitProducerID gives a transactional id its producer id and a new epoch,
// fencing the previous epoch (Kafka's handleInitProducerId): a new id gets
// a fresh producer id at epoch 0; an id with a transaction in progress has
// it aborted at a fenced epoch and answers CONCURRENT_TRANSACTIONS (the
// producer retries); otherwise the epoch is bumped, or a new producer id
// given when the epoch is exhausted. A KIP-360 request naming a producer id
// or epoch that is not the id's current one answers PRODUCER_FENCED (the
// server turns it into INVALID_PRODUCER_EPOCH for clients before v4).
func (c *Coordinator) InitProducerID(ctx context.Context, partition int32, req InitRequest) (int64, int16, int16) {
	if req.TransactionalID == "" {
		return -1, -1, kerr.InvalidRequest.Code
	}
	if req.TimeoutMs <= 0 || int64(req.TimeoutMs) > c.cfg.MaxTimeout.Milliseconds() {
		return -1, -1, kerr.InvalidTransactionTimeout.Code
	}
	sh, code := c.shardFor(partition)
	if code != 0 {
		return -1, -1, code
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.txns[req.TransactionalID]
	if m == nil {
		pid, err := c.cfg.AllocateProducerID()
		if err != nil {
			c.log.Error("allocating a producer id", "err", err)
			return -1, -1, kerr.CoordinatorNotAvailable.Code
		}
		now := c.now()
		m = &txnMeta{id: req.TransactionalID, producerID: pid, lastProducerID: -1, epoch: -1, lastEpoch: -1,
			timeoutMs: req.TimeoutMs, state: Empty, partitions: map[TopicPartition]struct{}{},
			startTime: -1, lastUpdate: now, pending: noState}
		sh.txns[m.id] = m
		next := m.clone()
		next.epoch = 0
		if code := sh.commitChange(ctx, m, next); code != 0 {
			if sh.txns[m.id] == m && m.epoch < 0 {
				delete(sh.txns, m.id)
			}
			return -1, -1, code
		}
		return m.producerID, m.epoch, 0
	}
	if m.pending != noState {
		return -1, -1, kerr.ConcurrentTransactions.Code
	}
	bumpAsked := req.ProducerID >= 0
	if bumpAsked && !(req.ProducerID == m.producerID || (req.ProducerID == m.lastProducerID && epochExhausted(req.ProducerEpoch))) {
		return -1, -1, kerr.ProducerFenced.Code
	}
	switch m.state {
	case PrepareCommit, PrepareAbort, Dead, PrepareEpochFence:
		return -1, -1, kerr.ConcurrentTransactions.Code
	case Ongoing:
		// The producer's previous incarnation left a transaction open:
		// abort it at a fenced epoch, and let the producer retry.
		if code := sh.prepareAbort(ctx, m); code != 0 {
			return -1, -1, code
		}
		return -1, -1, kerr.ConcurrentTransactions.Code
	}
	if bumpAsked {
		switch {
		case req.ProducerID == m.producerID && req.ProducerEpoch == m.epoch:
		case req.ProducerID == m.producerID && req.ProducerEpoch == m.lastEpoch,
			req.ProducerID == m.lastProducerID:
			// A retry of a bump whose answer was lost.
			return m.producerID, m.epoch, 0
		default:
			return -1, -1, kerr.ProducerFenced.Code
		}
	}
	next := m.clone()
	if epochExhausted(m.epoch) {
		pid, err := c.cfg.AllocateProducerID()
		if err != nil {
			c.log.Error("allocating a producer id", "err", err)
			return -1, -1, kerr.CoordinatorNotAvailable.Code
		}
		next.lastProducerID, next.producerID, next.epoch, next.lastEpoch = m.producerID, pid, 0, -1
	} else {
		next.epoch, next.lastEpoch = m.epoch+1, m.epoch
	}
	next.state = Empty
	next.timeoutMs = req.TimeoutMs
	next.partitions = map[TopicPartition]struct{}{}
	next.startTime = -1
	next.lastUpdate = c.now()
	if code := sh.commitChange(ctx, m, next); code != 0 {
		return -1, -1, code
	}
	return m.producerID, m.epoch, 0
}

// checkProducer applies the checks every request of a transaction's
// producer goes through: the id exists with that producer id
// (INVALID_PRODUCER_ID_MAPPING) at that epoch (PRODUCER_FENCED).
func checkProducer(m *txnMeta, producerID int64, epoch int16) int16 {
	switch {
	case m == nil || m.producerID != producerID:
		return kerr.InvalidProducerIDMapping.Code
	case m.epoch != epoch:
		return kerr.ProducerFenced.Code
	}
	return 0
}

// AddPartitions adds partitions to the producer's transaction, starting it
// if none is open (AddPartitionsToTxn, and AddOffsetsToTxn with the group's
// offsets partition). Partitions already in an ongoing transaction are
// answered at once; otherwise the new set is written first.
func (c *Coordinator) AddPartitions(ctx context.Context, partition int32, id string, producerID int64, epoch int16, tps []TopicPartition) int16 {
	if id == "" {
		return kerr.InvalidRequest.Code
	}
	sh, code := c.shardFor(partition)
	if code != 0 {
		return code
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// However it is answered, this add's partitions leave the queue: the
	// answer says whether they are in the transaction. One left there
	// (queued again behind a write that then took it, or by an add of a
	// fenced epoch) would ride into the producer's next transaction, which
	// the Complete record would start with partitions never added to it.
	defer func() {
		if m := sh.txns[id]; m != nil {
			for _, tp := range tps {
				delete(m.queued, tp)
			}
		}
	}()
	// A change of the transaction in flight (another broker's partitions
	// being added, the last transaction's markers) is waited for, up to
	// ConcurrentWait, rather than answered CONCURRENT_TRANSACTIONS at
	// once: the client's backoff on that answer is longer than the wait.
	deadline := time.Now().Add(c.cfg.ConcurrentWait)
	var m *txnMeta
	for {
		m = sh.txns[id]
		if code := checkProducer(m, producerID, epoch); code != 0 {
			return code
		}
		if m.pending == noState && m.state != PrepareCommit && m.state != PrepareAbort {
			break
		}
		// Another add's write, or the last transaction's markers (its
		// Complete record then starts the next transaction).
		if m.pending == Ongoing || m.pending == CompleteCommit || m.pending == CompleteAbort {
			if m.queued == nil {
				m.queued = map[TopicPartition]struct{}{}
			}
			for _, tp := range tps {
				m.queued[tp] = struct{}{}
			}
		}
		if !sh.awaitSettled(ctx, deadline) {
			return kerr.ConcurrentTransactions.Code
		}
	}
	switch m.state {
	case Dead, PrepareEpochFence:
		return kerr.InvalidTxnState.Code
	case Ongoing:
		missing := false
		for _, tp := range tps {
			if _, ok := m.partitions[tp]; !ok {
				missing = true
				break
			}
		}
		if !missing {
			return 0
		}
	}
	next := m.clone()
	if m.state != Ongoing {
		next.partitions = map[TopicPartition]struct{}{}
		next.startTime = c.now()
	}
	for _, tp := range tps {
		next.partitions[tp] = struct{}{}
	}
	for tp := range m.queued {
		next.partitions[tp] = struct{}{}
	}
	m.queued = nil
	next.state = Ongoing
	next.lastUpdate = c.now()
	return sh.commitChange(ctx, m, next)
}

// VerifyPartitions answers a partition leader's KIP-890 check (an
// AddPartitionsToTxn v4 with verify_only): is each partition in the
// producer's ongoing transaction at this epoch? It writes nothing. A
// partition being added by a write still in flight is not in it yet.
func (c *Coordinator) VerifyPartitions(partition int32, id string, producerID int64, epoch int16, tps []TopicPartition) map[TopicPartition]int16 {
	out := make(map[TopicPartition]int16, len(tps))
	all := func(code int16) map[TopicPartition]int16 {
		for _, tp := range tps {
			out[tp] = code
		}
		return out
	}
	sh, code := c.shardFor(partition)
	if code != 0 {
		return all(code)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.txns[id]
	if code := checkProducer(m, producerID, epoch); code != 0 {
		return all(code)
	}
	switch {
	case m.state == PrepareCommit || m.state == PrepareAbort || (m.state == Ongoing && m.pending != noState && m.pending != Ongoing):
		// Being decided: the producer will learn the outcome at EndTxn.
		return all(kerr.ConcurrentTransactions.Code)
	case m.state != Ongoing:
		return all(kerr.InvalidTxnState.Code)
	}
	for _, tp := range tps {
		if _, ok := m.partitions[tp]; ok {
			out[tp] = 0
		} else {
			out[tp] = kerr.InvalidTxnState.Code
		}
	}
	return out
}

// EndTxn commits or aborts the producer's transaction (Kafka's
// handleEndTransaction): the decision (PrepareCommit or PrepareAbort) is
// written before the answer, the markers are sent after it, and the
// Complete state written once every partition has its marker. A retry of
// an EndTxn already completed with the same decision succeeds; one with
// the other decision, or with no transaction open, is INVALID_TXN_STATE;
// one while the markers are still being written is CONCURRENT_TRANSACTIONS.
func (c *Coordinator) EndTxn(ctx context.Context, partition int32, id string, producerID int64, epoch int16, commit bool) int16 {
	if id == "" {
		return kerr.InvalidRequest.Code
	}
	sh, code := c.shardFor(partition)
	if code != 0 {
		return code
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.txns[id]
	if code := checkProducer(m, producerID, epoch); code != 0 {
		return code
	}
	if m.pending != noState && m.state != PrepareCommit && m.state != PrepareAbort {
		return kerr.ConcurrentTransactions.Code
	}
	switch m.state {
	case Ongoing:
	case CompleteCommit:
		if commit {
			return 0
		}
		return kerr.InvalidTxnState.Code
	case CompleteAbort:
		if !commit {
			return 0
		}
		return kerr.InvalidTxnState.Code
	case PrepareCommit:
		if commit {
			return kerr.ConcurrentTransactions.Code
		}
		return kerr.InvalidTxnState.Code
	case PrepareAbort:
		if !commit {
			return kerr.ConcurrentTransactions.Code
		}
		return kerr.InvalidTxnState.Code
	default: // Empty, Dead, PrepareEpochFence
		return kerr.InvalidTxnState.Code
	}
	next := m.clone()
	next.state = PrepareAbort
	if commit {
		next.state = PrepareCommit
	}
	next.lastUpdate = c.now()
	if code := sh.commitChange(ctx, m, next); code != 0 {
		return code
	}
	m.pending = completeOf(m.state)
	sh.startMarkers(m)
	return 0
}

// Description is one transactional id as DescribeTransactions shows it.
type Description struct {
	TransactionalID string
	State           State
	TimeoutMs       int32
	StartTime       int64 // ms, -1 when no transaction is open
	ProducerID      int64
	ProducerEpoch   int16
	Partitions      []TopicPartition
}

func describe(m *txnMeta) Description {
	return Description{
		TransactionalID: m.id, State: m.state, TimeoutMs: m.timeoutMs, StartTime: m.startTime,
		ProducerID: m.producerID, ProducerEpoch: m.epoch, Partitions: sortedPartitions(m.partitions),
	}
}

// Describe returns a transactional id's state; TRANSACTIONAL_ID_NOT_FOUND
// when the shard does not know it.
func (c *Coordinator) Describe(partition int32, id string) (Description, int16) {
	sh, code := c.shardFor(partition)
	if code != 0 {
		return Description{TransactionalID: id}, code
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.txns[id]
	if m == nil {
		return Description{TransactionalID: id}, kerr.TransactionalIDNotFound.Code
	}
	return describe(m), 0
}

// ListFilter selects transactions for List; empty fields match all.
type ListFilter struct {
	States      []State
	ProducerIDs []int64
	// MinDurationMs, when >= 0, keeps transactions open at least that long.
	MinDurationMs int64
}

// List returns the transactions of every shard loaded here that match,
// by transactional id, and whether some shard is still loading
// (COORDINATOR_LOAD_IN_PROGRESS).
func (c *Coordinator) List(f ListFilter) ([]Description, bool) {
	now := c.now()
	var out []Description
	loading := false
	c.mu.Lock()
	shards := slices.Collect(maps.Values(c.shards))
	c.mu.Unlock()
	for _, sh := range shards {
		if sh.status() != ShardReady {
			loading = true
			continue
		}
		sh.mu.Lock()
		for _, m := range sh.txns {
			if len(f.States) > 0 && !slices.Contains(f.States, m.state) {
				continue
			}
			if len(f.ProducerIDs) > 0 && !slices.Contains(f.ProducerIDs, m.producerID) {
				continue
			}
			if f.MinDurationMs >= 0 && (m.state != Ongoing || m.startTime < 0 || now-m.startTime < f.MinDurationMs) {
				continue
			}
			out = append(out, describe(m))
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Description) int { return strings.Compare(a.TransactionalID, b.TransactionalID) })
	return out, loading
}
