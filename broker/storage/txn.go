package storage

import (
	"context"
	"fmt"
	"sort"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// The partition side of Kafka transactions (KIP-98, KIP-447, KIP-890 part
// 1): transactional batches start a transaction of their producer on this
// partition; a COMMIT or ABORT marker, written at the coordinator's request
// (WriteTxnMarkers), ends it. The last stable offset is where read_committed
// consumers stop: before the first transaction still undecided, or decided
// by a marker the high watermark has not yet passed. Aborts are indexed per
// segment so read_committed fetches can list them.

// Isolation is a Fetch or ListOffsets isolation level.
type Isolation int8

const (
	// ReadUncommitted reads up to the high watermark.
	ReadUncommitted Isolation = 0
	// ReadCommitted reads up to the last stable offset.
	ReadCommitted Isolation = 1
)

// TxnMarker is one transaction's outcome for this partition, as a
// WriteTxnMarkers request carries it.
type TxnMarker struct {
	ProducerID    int64
	ProducerEpoch int16
	// CoordinatorEpoch is the epoch of the coordinator's partition of the
	// transaction log; a marker from an older one is refused.
	CoordinatorEpoch int32
	Commit           bool // false: abort
}

// AppendTxnMarker writes the COMMIT or ABORT control batch that ends the
// producer's transaction on this partition, as the leader does for
// WriteTxnMarkers, and returns when it is durable per the flush policy.
// AppendResult.BaseOffset is the marker's offset. A producer epoch older
// than the partition's is ErrInvalidProducerEpoch; a coordinator epoch older
// than the last marker's is ErrTransactionCoordinatorFenced. A marker for a
// producer with no ongoing transaction here is written all the same (a
// coordinator retrying, or a partition added to a transaction but never
// written to) and changes only the producer's epochs. The marker clears the
// producer's pending verification, so a produce verified before the marker
// cannot start a transaction after it.
func (p *Partition) AppendTxnMarker(ctx context.Context, m TxnMarker, opts AppendOptions) (AppendResult, error) {
	if m.ProducerID < 0 || m.ProducerEpoch < 0 {
		return AppendResult{}, fmt.Errorf("%w: transaction marker for producer %d epoch %d", ErrInvalidRecord, m.ProducerID, m.ProducerEpoch)
	}
	marker := recordbatch.EndTxnMarker{Commit: m.Commit, CoordinatorEpoch: m.CoordinatorEpoch}
	batch, err := recordbatch.EncodeEndTxnMarker(m.ProducerID, m.ProducerEpoch, marker, p.store.opts.Now().UnixMilli())
	if err != nil {
		return AppendResult{}, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	h, err := recordbatch.ParseHeader(batch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	parsed := []parsedBatch{{h: h, data: batch, marker: &marker}}
	end, gen, res, err := p.appendLocked([][]byte{batch}, len(batch), parsed, opts)
	if err != nil {
		return res, err
	}
	return p.acknowledge(ctx, end, gen, res)
}

// StartTxnVerification is called by the leader before it asks the
// transaction coordinator whether this partition is in the producer's
// transaction (AddPartitionsToTxn verification, KIP-890 part 1). It returns
// zero when the producer already has a transaction ongoing here at this
// epoch (no verification needed); otherwise the guard to pass in
// AppendOptions.VerificationGuard once the coordinator confirms. The guard
// stays valid until the producer's next transactional append or marker, or
// producer.id.expiration.ms; concurrent verifications of one producer share
// it. baseSequence is the first sequence of the batch being verified: a
// later batch may not start the transaction before it.
func (p *Partition) StartTxnVerification(producerID int64, producerEpoch int16, baseSequence int32) VerificationGuard {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.producers.m[producerID]; e != nil && e.txnFirstOffset >= 0 && e.epoch == producerEpoch {
		return 0
	}
	return p.producers.startVerification(producerID, producerEpoch, baseSequence, p.store.opts.Now().UnixMilli())
}

// commitProducersLocked makes a leader append's producer changes the state
// and indexes the aborts it wrote into s.
func (p *Partition) commitProducersLocked(pc *producerCheck, s *segment) {
	if pc.staged == nil {
		return // no producer id in the request: nothing to do
	}
	hw := p.highWatermarkLocked()
	ended, lsos := pc.commit(hw)
	for i, c := range ended {
		p.indexEndedLocked(c, lsos[i], s)
	}
	if len(p.producers.unreplicated) > 0 {
		p.producers.pruneReplicated(hw)
	}
}

// indexEndedLocked records an aborted transaction in the index of s, the
// segment holding its marker.
func (p *Partition) indexEndedLocked(c completedTxn, lso int64, s *segment) {
	if !c.aborted {
		return
	}
	t := AbortedTxn{ProducerID: c.producerID, FirstOffset: c.firstOffset, LastOffset: c.lastOffset, LastStableOffset: lso}
	if err := s.addAborted(t); err != nil {
		// The entry is in memory, which reads use; the next flush of the
		// index writes it, and recovery rebuilds it from the log.
		p.store.log.Warn("writing transaction index", "segment", s.txnIndexPath(), "err", err)
	}
}

// replayLocked applies a batch found in the log (follower append,
// recovery, truncation) to the producer state. A marker that ends a
// transaction is indexed in s when it lies at or past indexFrom (earlier
// ones are indexed already).
func (p *Partition) replayLocked(h *recordbatch.Header, data []byte, now, hw, indexFrom int64, s *segment) {
	c, ended, err := p.producers.replay(h, data, now)
	if err != nil {
		p.store.log.Warn("skipping an unreadable control batch", "partition", p.dir, "offset", h.BaseOffset, "err", err)
		return
	}
	if !ended {
		return
	}
	lso := p.producers.complete(c, hw)
	if c.lastOffset >= indexFrom {
		p.indexEndedLocked(c, lso, s)
	}
}

// LastStableOffset is the offset read_committed consumers read up to
// (exclusive): the high watermark, or before it the first offset of the
// earliest transaction not yet decided, or decided by a marker at or past
// the high watermark (Kafka keeps those too, so a marker a failover takes
// back never exposed data). Never below the log start.
func (p *Partition) LastStableOffset() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.lastStableOffsetLocked()
}

func (p *Partition) lastStableOffsetLocked() int64 {
	return max(p.producers.firstUnstable(p.highWatermarkLocked()), p.logStart)
}

// readLimitLocked is where reads at an isolation level stop.
func (p *Partition) readLimitLocked(isolation Isolation) int64 {
	if isolation == ReadCommitted {
		return p.lastStableOffsetLocked()
	}
	return p.highWatermarkLocked()
}

// ReadResult is what a consumer Fetch of one partition needs.
type ReadResult struct {
	// Records are whole batches, control batches included (read_committed
	// consumers need the markers to end the aborted ranges).
	Records          []byte
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	// AbortedTransactions (read_committed only) are the aborted
	// transactions with data in the returned records, for
	// FetchResponse.AbortedTransactions; nil for read_uncommitted.
	AbortedTransactions []AbortedTxn
}

// ReadIsolated reads as Read does, up to the high watermark for
// ReadUncommitted and up to the last stable offset for ReadCommitted, and
// for ReadCommitted lists the aborted transactions overlapping the records
// returned. The watermarks are the ones the read was bounded by.
func (p *Partition) ReadIsolated(offset int64, maxBytes int32, isolation Isolation) (ReadResult, error) {
	return p.ReadIsolatedInto(offset, maxBytes, isolation, nil)
}

// ReadIsolatedInto is ReadIsolated with the records read into rb's
// memory: they stay valid until rb.Release.
func (p *Partition) ReadIsolatedInto(offset int64, maxBytes int32, isolation Isolation, rb *ReadBuffers) (ReadResult, error) {
	return p.readIsolated(offset, maxBytes, isolation, true, rb)
}

// ReadIsolatedIntoWithin is ReadIsolatedInto for a read that is not the
// first data of its response, whose batches must all fit maxBytes (KIP-74
// lets only a response's first batch pass the limits): a first batch
// larger than maxBytes gives no records, and is neither read nor charged
// to rb's budget. Reading it only for the caller to drop it took memory
// from the fetch memory bound until the response was written, which could
// cut the response's later partitions short.
func (p *Partition) ReadIsolatedIntoWithin(offset int64, maxBytes int32, isolation Isolation, rb *ReadBuffers) (ReadResult, error) {
	return p.readIsolated(offset, maxBytes, isolation, false, rb)
}

func (p *Partition) readIsolated(offset int64, maxBytes int32, isolation Isolation, firstWhole bool, rb *ReadBuffers) (ReadResult, error) {
	var res ReadResult
	var upTo int64
	res.HighWatermark, res.LastStableOffset, res.LogStartOffset, upTo = p.isolatedBounds(isolation)
	data, err := p.read(offset, maxBytes, upTo, firstWhole, rb)
	if err != nil {
		return ReadResult{}, err
	}
	res.Records = data
	if isolation != ReadCommitted || len(data) == 0 {
		return res, nil
	}
	_, last, _ := wholeBatches(data, upTo)
	res.AbortedTransactions = p.AbortedTransactions(offset, last+1)
	return res, nil
}

// isolatedBounds returns the watermarks a read at isolation is bounded by,
// taken together, and where it stops: the high watermark, or the last
// stable offset for read_committed.
func (p *Partition) isolatedBounds(isolation Isolation) (hw, lso, logStart, upTo int64) {
	p.mu.RLock()
	hw, lso, logStart = p.highWatermarkLocked(), p.lastStableOffsetLocked(), p.logStart
	p.mu.RUnlock()
	if isolation == ReadCommitted {
		return hw, lso, logStart, lso
	}
	return hw, lso, logStart, hw
}

// AbortedTransactions lists the aborted transactions with data in [from,
// to): begun before to, aborted at or after from. A Fetch passes its fetch
// offset and the offset after the last record it returns.
func (p *Partition) AbortedTransactions(from, to int64) []AbortedTxn {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed || from >= to {
		return nil
	}
	return collectAborted(nil, p.segments[p.segmentFor(from):], from, to)
}

// ListOffset answers ListOffsets at an isolation level, as Kafka's
// Partition.fetchOffsetForTimestamp does: ts -1 (LATEST) is the high
// watermark or the last stable offset, -2 (EARLIEST) the log start; a
// timestamp finds the first record at or after it, but only below that
// limit, else (-1, -1).
func (p *Partition) ListOffset(ts int64, isolation Isolation) (offset, timestamp int64, err error) {
	p.mu.RLock()
	limit := p.readLimitLocked(isolation)
	p.mu.RUnlock()
	if ts == -1 {
		return limit, -1, nil
	}
	offset, timestamp, err = p.OffsetForTimestamp(ts)
	if err != nil || ts < 0 || offset < limit {
		return offset, timestamp, err
	}
	return -1, -1, nil
}

// WaitIsolated is Wait for a reader at an isolation level: the channel is
// closed at once when the high watermark (ReadUncommitted) or the last
// stable offset (ReadCommitted) is already past afterOffset, and otherwise
// at the next move of the high watermark, which is when the last stable
// offset can move too.
func (p *Partition) WaitIsolated(ctx context.Context, afterOffset int64, isolation Isolation) <-chan struct{} {
	p.notifyMu.Lock()
	ch := p.notify
	p.notifyMu.Unlock()
	p.mu.RLock()
	limit, closed := p.readLimitLocked(isolation), p.closed
	p.mu.RUnlock()
	if limit > afterOffset || ctx.Err() != nil || closed {
		c := make(chan struct{})
		close(c)
		return c
	}
	return ch
}

// ProducerState describes one producer of the partition, as
// DescribeProducers reports it.
type ProducerState struct {
	ProducerID    int64
	ProducerEpoch int16
	// LastSequence is the last sequence number written, -1 if none at this
	// epoch.
	LastSequence int32
	// LastTimestamp is the maxTimestamp of its last batch or marker (-1
	// when unknown).
	LastTimestamp int64
	// CoordinatorEpoch is the epoch of the coordinator that wrote its last
	// marker, -1 if none.
	CoordinatorEpoch int32
	// CurrentTxnStartOffset is the first offset of its ongoing
	// transaction, -1 if none.
	CurrentTxnStartOffset int64
}

// Producers lists the producers the partition keeps state for, by id.
func (p *Partition) Producers() []ProducerState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]ProducerState, 0, len(p.producers.m))
	for pid, e := range p.producers.m {
		last := int32(-1)
		if n := len(e.batches); n > 0 {
			last = e.batches[n-1].lastSeq
		}
		out = append(out, ProducerState{
			ProducerID: pid, ProducerEpoch: e.epoch, LastSequence: last, LastTimestamp: e.lastTimestamp,
			CoordinatorEpoch: e.coordinatorEpoch, CurrentTxnStartOffset: e.txnFirstOffset,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}

// OngoingTxn is a transaction with data in the partition and no marker yet.
type OngoingTxn struct {
	ProducerID    int64
	ProducerEpoch int16
	FirstOffset   int64
	// StartTime is when its first batch was appended here, in ms of the
	// broker's clock (at recovery from the log, of the restart), for
	// finding transactions left hanging past transaction.timeout.ms.
	StartTime int64
}

// OngoingTransactions lists the ongoing transactions by first offset.
func (p *Partition) OngoingTransactions() []OngoingTxn {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]OngoingTxn, 0, len(p.producers.ongoing))
	for _, t := range p.producers.ongoing {
		o := OngoingTxn{ProducerID: t.producerID, ProducerEpoch: -1, FirstOffset: t.firstOffset, StartTime: t.start}
		if e := p.producers.m[t.producerID]; e != nil {
			o.ProducerEpoch = e.epoch
		}
		out = append(out, o)
	}
	return out
}
