package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// AppendOptions qualify one Append.
type AppendOptions struct {
	// LeaderEpoch is written into each batch's partitionLeaderEpoch and
	// recorded in the leader-epoch checkpoint when it is new.
	LeaderEpoch int32
	// VerificationGuard is the guard StartTxnVerification returned for the
	// producer of a transactional batch that starts a transaction on this
	// partition, once the coordinator confirmed the partition is in the
	// transaction (KIP-890). Zero when there is none.
	VerificationGuard VerificationGuard
	// FromCoordinator marks batches a coordinator of this broker writes
	// for a producer (the group coordinator's TxnOffsetCommit records):
	// they carry no sequence numbers (-1), so only the producer epoch and
	// the transaction rules are checked, as Kafka does for
	// AppendOrigin.COORDINATOR.
	FromCoordinator bool
}

// AppendResult tells where the batches went.
type AppendResult struct {
	BaseOffset int64 // offset of the first record
	LastOffset int64 // offset of the last record
	// LogAppendTime is the broker timestamp given to the batches when the
	// topic uses LogAppendTime, else -1.
	LogAppendTime  int64
	LogStartOffset int64
	// Duplicate: an idempotent producer resent batches already in the log;
	// the offsets are the original ones and nothing was written.
	Duplicate bool
}

// Partition is the durable log of one topic partition: an append-only
// sequence of Kafka RecordBatch v2 bytes in segment files. It is safe for
// concurrent use.
//
// Lock order: Store.mu, then cleanMu, then cpMu, then mu, then notifyMu;
// fsync on the append path runs with none held (the store's sync round,
// syncround.go), and a checkpoint's with cpMu alone.
type Partition struct {
	store     *Store
	topic     string
	partition int32
	dir       string
	// codec is cfg's compression.type as a codec
	// (recordbatch.CodecProducer for producer), read without mu by every
	// produce: mu is held through each append's write, and reading cfg
	// under it there took a single broker from 375 to 310 MiB/s
	// (docs/benchmarks.md, "compression.type").
	codec atomic.Int32
	// published is cfg as SetConfig last set it, an immutable copy that
	// Config reads without mu: every WriteVec reads max.message.bytes
	// and cleanup.policy from it before the append, and taking mu's read
	// side there queued each produce behind the append in progress, as
	// reading compression.type under mu did.
	published atomic.Pointer[TopicConfig]

	mu        sync.RWMutex
	cfg       TopicConfig
	topicID   TopicID    // zero: unknown (see partitionMeta)
	segments  []*segment // by base offset; the last is the active one
	logStart  int64
	leo       int64 // log end offset: the next offset to assign
	producers producerStates
	// snapOffset is the offset of the producer-state snapshot on disk (-1:
	// none). Invariant: the snapshot describes the current log below it;
	// a truncation below it deletes it.
	snapOffset int64
	epochs     epochCache
	// hw is the high watermark the replication layer set (hwSet); it is
	// saved with checkpoints (hwWritten: the value in the file).
	hw        int64
	hwSet     bool
	hwWritten int64
	unsynced  []*segment    // rolled segments whose data awaits fsync
	recovery  recoveryPoint // last recovery point written
	// epochsDirty: the leader-epoch checkpoint file is behind the cache.
	epochsDirty bool
	// fencedBelow refuses leader appends at an older epoch
	// (FenceLeaderEpoch); 0, the zero value, fences nothing.
	fencedBelow int32
	// cutAtEpoch refuses leader appends at this leader epoch and older
	// (-1: none): a failed fsync cut off records a reader had read
	// (discardUnsynced), so their offsets may be used again only under a
	// newer epoch.
	cutAtEpoch int32
	closed     bool
	// cleanedTo: offsets below it were compacted by a cleaner pass;
	// nextHorizon: when the earliest kept tombstone may go (ms, 0 = none).
	cleanedTo, nextHorizon int64

	// durable is the offset below which all data is fsynced.
	durable atomic.Int64
	// readTo is the end of the data a reader may have been handed, when
	// that is past the durable end (a follower's fetch, served up to the
	// log end while the fsync runs); set under mu's read lock, so a cut
	// under the write lock sees every read that could have reached it.
	readTo atomic.Int64
	// onCut is told of a failed fsync's cut (SetCutObserver).
	onCut atomic.Pointer[func(Cut)]
	// writeGen changes when written-but-unsynced data is discarded after a
	// failed fsync, so appends waiting on it learn they failed.
	writeGen atomic.Uint64

	// syncFailure is the error of the last sync round that had data to
	// sync, nil after a good one.
	syncFailure atomic.Pointer[syncFailure]
	// synced is closed (and replaced) each time a sync round has synced
	// this partition; waitDurable waits on it.
	syncMu sync.Mutex
	synced chan struct{}
	// observer is told of appends and sync rounds (SetObserver).
	observer atomic.Pointer[func(logEnd, ackEnd int64)]

	// cleanMu keeps cleaner passes of this partition one at a time.
	cleanMu sync.Mutex
	// cpMu keeps a checkpoint (which writes its files without mu) and the
	// truncations that rewrite or invalidate those files apart.
	cpMu sync.Mutex

	notifyMu sync.Mutex
	notify   chan struct{} // closed when the high watermark moves
}

func newPartition(st *Store, topic string, partition int32, dir string, cfg TopicConfig) *Partition {
	p := &Partition{
		store: st, topic: topic, partition: partition, dir: dir, cfg: cfg,
		producers:  newProducerStates(),
		snapOffset: -1,
		cutAtEpoch: -1,
		recovery:   recoveryPoint{offset: -1},
		hwWritten:  -1,
		notify:     make(chan struct{}),
		synced:     make(chan struct{}),
	}
	p.codec.Store(int32(storedCodec(cfg)))
	p.published.Store(&cfg)
	return p
}

// storedCodec is the codec cfg's compression.type stores batches in;
// a value Validate would refuse counts as producer.
func storedCodec(cfg TopicConfig) int {
	c, err := recordbatch.CodecForCompressionType(cfg.CompressionType)
	if err != nil {
		return recordbatch.CodecProducer
	}
	return c
}

// StoredCodec is the codec the topic's compression.type stores produced
// batches in, recordbatch.CodecProducer to keep the producer's. It takes
// no lock.
func (p *Partition) StoredCodec() int { return int(p.codec.Load()) }

// Topic is the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// PartitionIndex is the partition number within the topic.
func (p *Partition) PartitionIndex() int32 { return p.partition }

// Dir is the partition's directory.
func (p *Partition) Dir() string { return p.dir }

// Closed reports whether the partition was closed or deleted: a view that
// kept it must look the log up again (a partition deleted and then
// assigned back to this broker has a new one).
func (p *Partition) Closed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// Config returns the partition's topic settings, defaults applied.
func (p *Partition) Config() TopicConfig {
	return *p.published.Load()
}

// SetConfig changes the topic settings; they apply to the next append,
// roll and cleaner pass. The settings are saved in partition.metadata.
func (p *Partition) SetConfig(cfg TopicConfig) {
	cfg = cfg.WithDefaults()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg == cfg || p.closed {
		return
	}
	p.cfg = cfg
	p.codec.Store(int32(storedCodec(cfg)))
	p.published.Store(&cfg)
	if err := writePartitionMeta(p.dir, p.topic, p.partition, p.topicID, cfg); err != nil {
		p.store.log.Warn("saving topic config", "partition", p.dir, "err", err)
	}
}

// LogStartOffset is the first offset still readable.
func (p *Partition) LogStartOffset() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.logStart
}

// LogEndOffset is the offset the next appended record will get.
func (p *Partition) LogEndOffset() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.leo
}

// HighWatermark is the end of the data consumers may read. Until the
// replication layer calls SetHighWatermark it is, under the group flush
// policy, the durable end of the log (data that has been fsynced); under
// the interval and none policies, the log end offset (data is acknowledged
// once written).
func (p *Partition) HighWatermark() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.highWatermarkLocked()
}

// KnownHighWatermark is the high watermark the replication layer set, in
// this process or (restored from its checkpoint) in an earlier one,
// clamped to the log end; ok is false when none was ever set or restored,
// and HighWatermark then reports storage's own default (the durable end),
// which may include records that were never replicated.
func (p *Partition) KnownHighWatermark() (hw int64, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.hwSet {
		return 0, false
	}
	return min(p.hw, p.leo), true
}

func (p *Partition) highWatermarkLocked() int64 {
	if p.hwSet {
		return min(p.hw, p.leo)
	}
	if p.store.opts.FlushPolicy == FlushGroup {
		return min(p.durable.Load(), p.leo)
	}
	return p.leo
}

// SetHighWatermark is for the replication layer: from the first call on,
// the high watermark is the value it sets (never above the log end). It is
// saved with the next checkpoint and restored at start-up (Kafka's
// replication-offset-checkpoint), so a restarted replica knows it.
func (p *Partition) SetHighWatermark(hw int64) {
	p.mu.Lock()
	p.hw, p.hwSet = hw, true
	p.mu.Unlock()
	p.wake()
}

// Size is the bytes of all segments.
func (p *Partition) Size() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var n int64
	for _, s := range p.segments {
		n += s.size
	}
	return n
}

// Wait returns a channel that is closed when the high watermark moves past
// afterOffset, or at its next move, or when the partition closes: a
// Fetch long-poll selects on it and its deadline, then re-reads. The channel
// is closed at once if the high watermark is already past afterOffset or
// ctx is done. No goroutine is started, so abandoning the channel is free.
func (p *Partition) Wait(ctx context.Context, afterOffset int64) <-chan struct{} {
	p.notifyMu.Lock()
	ch := p.notify
	p.notifyMu.Unlock()
	// Read the watermark after taking the channel: a move in between closes
	// the channel we hold, so no wake-up is lost.
	if p.HighWatermark() > afterOffset || ctx.Err() != nil || p.isClosed() {
		c := make(chan struct{})
		close(c)
		return c
	}
	return ch
}

func (p *Partition) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// wake closes the current notify channel and installs a fresh one.
func (p *Partition) wake() {
	p.notifyMu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.notifyMu.Unlock()
}

func (p *Partition) active() *segment { return p.segments[len(p.segments)-1] }

// parsedBatch is one batch of an Append, checked, with its place in the input.
type parsedBatch struct {
	h     recordbatch.Header
	start int
	data  []byte
	// marker is set for the control batch of AppendTxnMarker.
	marker *recordbatch.EndTxnMarker
}

// parseProduced splits and validates the batches of a produce request.
// A producer's batch must carry a sequence number, except one a coordinator
// writes for it (fromCoordinator).
func parseProduced(b []byte, cfg TopicConfig, fromCoordinator bool) ([]parsedBatch, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: no record batches", ErrInvalidRecord)
	}
	var out []parsedBatch
	for pos := 0; pos < len(b); {
		rest := b[pos:]
		if len(rest) > recordbatch.MagicOffset && rest[recordbatch.MagicOffset] != 2 {
			return nil, fmt.Errorf("%w: batch at byte %d has magic %d", ErrUnsupportedMessageFormat, pos, int8(rest[recordbatch.MagicOffset]))
		}
		h, err := recordbatch.ParseHeader(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: batch at byte %d: %w", ErrCorruptMessage, pos, err)
		}
		size := h.Size()
		if size > len(rest) {
			return nil, fmt.Errorf("%w: batch at byte %d claims %d bytes, %d remain", ErrCorruptMessage, pos, size, len(rest))
		}
		if size > int(cfg.MaxMessageBytes) {
			return nil, fmt.Errorf("%w: batch of %d bytes, max.message.bytes is %d", ErrRecordTooLarge, size, cfg.MaxMessageBytes)
		}
		data := rest[:size]
		if err := recordbatch.Check(&h, data); err != nil {
			return nil, fmt.Errorf("%w: batch at byte %d: %w", ErrCorruptMessage, pos, err)
		}
		if err := recordbatch.ValidateProduced(&h, data); err != nil {
			return nil, fmt.Errorf("%w: batch at byte %d: %w", ErrInvalidRecord, pos, err)
		}
		if h.ProducerID >= 0 && h.BaseSequence < 0 && !fromCoordinator {
			return nil, fmt.Errorf("%w: batch at byte %d: producer id %d with sequence %d", ErrInvalidRecord, pos, h.ProducerID, h.BaseSequence)
		}
		if h.IsTransactional() && h.ProducerID < 0 {
			return nil, fmt.Errorf("%w: batch at byte %d is transactional without a producer id", ErrInvalidRecord, pos)
		}
		if cfg.compact() || h.Codec() != recordbatch.CodecNone {
			if err := checkRecords(&h, data, cfg.compact()); err != nil {
				return nil, err
			}
		}
		out = append(out, parsedBatch{h: h, start: pos, data: data})
		pos += size
	}
	return out, nil
}

// checkRecords reads the records of a compressed batch, or of any batch
// for a compacted topic (needKeys), before the log takes it. A compressed
// batch must inflate, its records must parse, count what the header says
// and carry offset deltas 0, 1, 2 ...: as Kafka's LogValidator, which
// inflates every compressed batch a producer sends. Stored as sent
// unread, a batch whose CRC is right but whose records are not (a broken
// or hostile client) made every consumer of the partition fail on it, for
// as long as retention kept it. A compacted topic takes only keyed
// records, as Kafka: a record without a key could never be compacted
// away. The records are streamed from the batch's decoder (ScanRecords),
// never held inflated: a few KB of a compressed batch can inflate to
// 256 MiB.
func checkRecords(h *recordbatch.Header, data []byte, needKeys bool) error {
	n := int32(0)
	err := recordbatch.ScanRecords(h, data, func(r *recordbatch.RecordInfo) error {
		if r.OffsetDelta != n {
			return fmt.Errorf("%w: record %d has offset delta %d", ErrInvalidRecord, n, r.OffsetDelta)
		}
		n++
		if needKeys && r.NullKey {
			return fmt.Errorf("%w: compacted topic cannot accept a record without a key", ErrInvalidRecord)
		}
		return nil
	})
	switch {
	case err == nil || errors.Is(err, ErrInvalidRecord):
		return err
	case errors.Is(err, recordbatch.ErrCorrupt):
		return fmt.Errorf("%w: %w", ErrCorruptMessage, err)
	default:
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
}

// Append writes one or more RecordBatch v2 (the records field of a Produce
// partition) to the log. It validates them, assigns offsets by rewriting
// baseOffset and partitionLeaderEpoch in place (and maxTimestamp for
// LogAppendTime topics), checks idempotent-producer sequences, writes them
// in one write and returns when they are durable per the flush policy.
// Append takes ownership of batches and modifies it.
func (p *Partition) Append(ctx context.Context, batches []byte, opts AppendOptions) (AppendResult, error) {
	res, wait, err := p.Write(batches, opts)
	if err != nil || res.Duplicate {
		return res, err
	}
	if err := wait(ctx); err != nil {
		return AppendResult{}, err
	}
	return res, nil
}

// Write is Append in two steps: it checks and writes the batches, and
// returns wait, which returns once they are durable per the flush policy
// (at once for a duplicate). The write starts a sync round (group) at
// once. A connection's pipelined produce requests are written one after
// another, each without waiting for the previous one's fsync and
// replication (server.answers).
func (p *Partition) Write(batches []byte, opts AppendOptions) (res AppendResult, wait func(context.Context) error, err error) {
	return p.WriteVec([][]byte{batches}, opts)
}

// WriteVec is Write for batches held in several buffers, appended as if
// they were one: the batches of a connection's pipelined produce requests
// to one partition are checked together, get consecutive offsets and go to
// the segment in one pwritev, without first being copied into one buffer.
// Each buffer holds whole batches; offsets and epochs are stamped in
// place in the buffers, whose ownership WriteVec takes.
func (p *Partition) WriteVec(bufs [][]byte, opts AppendOptions) (res AppendResult, wait func(context.Context) error, err error) {
	cfg := p.Config()
	var parsed []parsedBatch
	total := 0
	for _, b := range bufs {
		pb, err := parseProduced(b, cfg, opts.FromCoordinator)
		if err != nil {
			return AppendResult{}, nil, err
		}
		for i := range pb {
			pb[i].start += total // the position as if the buffers were one
		}
		parsed = append(parsed, pb...)
		total += len(b)
	}
	end, gen, res, err := p.appendLocked(bufs, total, parsed, opts)
	if err != nil {
		return res, nil, err
	}
	if res.Duplicate {
		return res, func(context.Context) error { return nil }, nil
	}
	p.observe(end)
	if p.store.opts.FlushPolicy == FlushGroup {
		p.store.sync.enrol(p)
		return res, func(ctx context.Context) error { return p.waitDurable(ctx, end, gen) }, nil
	}
	p.wake()
	return res, func(context.Context) error { return nil }, nil
}

// acknowledge returns res once the append that ended at end is durable per
// the flush policy.
func (p *Partition) acknowledge(ctx context.Context, end int64, gen uint64, res AppendResult) (AppendResult, error) {
	p.observe(end)
	if p.store.opts.FlushPolicy == FlushGroup {
		if err := p.waitDurable(ctx, end, gen); err != nil {
			return AppendResult{}, err
		}
	} else {
		p.wake()
	}
	return res, nil
}

func (p *Partition) appendLocked(bufs [][]byte, total int, parsed []parsedBatch, opts AppendOptions) (end int64, gen uint64, res AppendResult, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, 0, AppendResult{}, ErrClosed
	}
	if p.fencedBelow > 0 && opts.LeaderEpoch < p.fencedBelow {
		return 0, 0, AppendResult{}, fmt.Errorf("%w: append at leader epoch %d, this replica has moved on to epoch %d", ErrFencedLeaderEpoch, opts.LeaderEpoch, p.fencedBelow)
	}
	if opts.LeaderEpoch <= p.cutAtEpoch {
		return 0, 0, AppendResult{}, fmt.Errorf("%w: append at leader epoch %d: a failed fsync cut off records a follower had read at epoch %d; this replica may write again only as leader at a newer epoch", ErrStorage, opts.LeaderEpoch, p.cutAtEpoch)
	}
	now := p.store.opts.Now()
	nowMs := now.UnixMilli()
	res = AppendResult{BaseOffset: p.leo, LogAppendTime: -1, LogStartOffset: p.logStart}
	pc := p.producers.begin()
	next := p.leo
	for i := range parsed {
		pb := &parsed[i]
		switch {
		case pb.marker != nil:
			if err := pc.checkMarker(&pb.h, *pb.marker); err != nil {
				return 0, 0, AppendResult{}, err
			}
		case pb.h.ProducerID >= 0:
			dup, err := pc.check(&pb.h, opts.VerificationGuard, opts.FromCoordinator)
			if err != nil {
				return 0, 0, AppendResult{}, err
			}
			if dup != nil {
				return 0, 0, AppendResult{BaseOffset: dup.firstOffset, LastOffset: dup.lastOffset, LogAppendTime: -1, LogStartOffset: p.logStart, Duplicate: true}, nil
			}
		}
		pb.h.BaseOffset = next
		pb.h.PartitionLeaderEpoch = opts.LeaderEpoch
		recordbatch.SetBaseOffset(pb.data, next)
		recordbatch.SetPartitionLeaderEpoch(pb.data, opts.LeaderEpoch)
		if p.cfg.MessageTimestampType == LogAppendTime {
			recordbatch.SetLogAppendTime(pb.data, nowMs)
			pb.h.MaxTimestamp = nowMs
			pb.h.Attributes |= recordbatch.TimestampTypeBit
			res.LogAppendTime = nowMs
		}
		switch {
		case pb.marker != nil:
			pc.stageMarker(&pb.h, *pb.marker, nowMs)
		case pb.h.ProducerID >= 0:
			pc.stage(&pb.h, nowMs)
		}
		next = pb.h.LastOffset() + 1
	}
	last := next - 1
	if err := p.maybeRollLocked(int64(total), last, now); err != nil {
		return 0, 0, AppendResult{}, err
	}
	s := p.active()
	pos := s.size
	if err := s.writev(bufs, total); err != nil {
		p.store.del.noteWriteError(err)
		p.store.log.Error("append failed; log left at its previous end", "partition", p.dir, "segment", s.logPath(), "err", err)
		return 0, 0, AppendResult{}, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	for i := range parsed {
		s.track(&parsed[i].h, pos+int64(parsed[i].start), p.cfg.IndexIntervalBytes)
	}
	p.leo = next
	p.commitProducersLocked(pc, s)
	if p.epochs.assign(opts.LeaderEpoch, res.BaseOffset) {
		p.epochsDirty = true
		if err := p.epochs.write(p.dir); err != nil {
			// The next checkpoint writes it again; the data itself is fine.
			p.store.del.noteWriteError(err)
			p.store.log.Warn("writing leader-epoch checkpoint", "partition", p.dir, "err", err)
		} else {
			p.epochsDirty = false
		}
	}
	res.LastOffset = last
	return next, p.writeGen.Load(), res, nil
}

// maybeRollLocked starts a new segment when the active one would grow past
// segment.bytes, is older than segment.ms, or cannot index lastOffset.
func (p *Partition) maybeRollLocked(incoming, lastOffset int64, now time.Time) error {
	s := p.active()
	if s.size == 0 {
		return nil
	}
	if s.size+incoming <= p.cfg.SegmentBytes && now.Sub(s.created) < p.cfg.SegmentMs && s.fitsOffset(lastOffset) {
		return nil
	}
	return p.rollLocked(now, p.leo)
}

// rollLocked closes the active segment for writing and starts a new one at
// base (the log end offset, or past it for a follower's batches after a
// gap). The old segment's indexes are made durable now; its data by the
// next fsync round.
func (p *Partition) rollLocked(now time.Time, base int64) (err error) {
	// Every write of a roll can meet a full disk, not only the new
	// segment's: the old segment's index files, written here for the
	// first time when no checkpoint wrote them yet, need new blocks too.
	// An unnoted ENOSPC would leave the deletions waiting for their delay
	// while every append fails at the same roll.
	defer func() {
		if err != nil {
			p.store.del.noteWriteError(err)
		}
	}()
	old := p.active()
	if err := old.writeIndexes(true); err != nil {
		return fmt.Errorf("%w: rolling %s: %w", ErrStorage, old.logPath(), err)
	}
	if err := old.writeTxnIndex(true); err != nil {
		return fmt.Errorf("%w: rolling %s: %w", ErrStorage, old.logPath(), err)
	}
	s, err := createSegment(p.dir, base, now)
	if err != nil {
		return fmt.Errorf("%w: rolling: %w", ErrStorage, err)
	}
	if err := syncDir(p.dir); err != nil {
		_ = s.remove()
		return fmt.Errorf("%w: rolling: %w", ErrStorage, err)
	}
	p.segments = append(p.segments, s)
	p.unsynced = append(p.unsynced, old)
	// The producer state at the new segment's start, as Kafka snapshots it
	// at every roll: a truncation into this segment replays from here, not
	// from the start of the log. It needs no fsync: a torn one fails its
	// CRC and an older one is used; the index entries it vouches for were
	// fsynced above (with those of earlier segments at their rolls).
	if err := os.WriteFile(s.snapshotPath(), p.producers.encode(base), 0o644); err != nil {
		p.store.log.Warn("writing producer-state snapshot at roll", "segment", s.snapshotPath(), "err", err)
	}
	return nil
}

// syncJob is one partition's part of a sync round: what to fsync and the
// log end it makes durable.
type syncJob struct {
	p      *Partition
	target int64
	segs   []*segment
	files  []*os.File
	txns   []pendingTxnIndex
	gen    uint64
	err    error
}

// syncFailure is the error of a partition's last sync round.
type syncFailure struct{ err error }

// prepareSync lists what a sync round must fsync for this partition: the
// segments rolled since the last round and the active one, up to the
// current log end.
func (p *Partition) prepareSync() syncJob {
	p.mu.RLock()
	defer p.mu.RUnlock()
	j := syncJob{p: p, target: p.leo, gen: p.writeGen.Load()}
	if p.durable.Load() >= p.leo && len(p.unsynced) == 0 {
		return j // nothing new: a round enrolled twice, or synced by a checkpoint
	}
	j.segs = make([]*segment, 0, len(p.unsynced)+1)
	j.segs = append(j.segs, p.unsynced...)
	if !p.closed {
		j.segs = append(j.segs, p.active())
	}
	// The *os.File values are taken under the lock: a segment deleted
	// meanwhile has its file closed, and syncing it then reports
	// os.ErrClosed, which means there is nothing left to sync.
	j.files = make([]*os.File, len(j.segs))
	for i, s := range j.segs {
		j.files[i] = s.file
	}
	j.txns = pendingTxnIndexes(j.segs)
	return j
}

// finishSync applies the outcome of a sync round to the partition.
func (p *Partition) finishSync(j *syncJob) {
	if j.err == nil {
		if j.segs != nil {
			// A round with nothing to sync (the log was cut back to its
			// durable end) proves nothing, and clearing the failure would
			// leave the appends it discarded without their cause.
			p.syncFailure.Store(nil)
		}
		p.mu.Lock()
		if p.writeGen.Load() == j.gen {
			// A truncation since the round was prepared (a replica cut
			// back to a new leader's log while a round ran) may have
			// rewritten offsets below the target after the fsyncs: the
			// durable end then moves with a later round, which the new
			// data enrols for.
			advanceTo(&p.durable, j.target)
		}
		p.unsynced = dropSynced(p.unsynced, j.segs)
		if p.writeGen.Load() == j.gen {
			for _, t := range j.txns {
				t.seg.txn.synced = max(t.seg.txn.synced, min(t.written, t.seg.txn.onDisk))
			}
		}
		p.mu.Unlock()
		if j.segs != nil {
			p.observe(j.target)
		}
	} else {
		p.syncFailure.Store(&syncFailure{err: j.err})
		if p.store.opts.FlushPolicy == FlushGroup {
			// Nobody has been answered for the data past the durable end;
			// a follower may have read it (see discardUnsynced).
			p.discardUnsynced(j.gen, j.err)
		} else {
			// Under interval and none the data was acknowledged and may have
			// been read: cutting it would hand its offsets out twice. Keep it
			// and report; the next round tries again.
			p.store.log.Error("fsync failed; acknowledged data may not be on disk", "partition", p.dir, "err", j.err)
		}
	}
	p.syncMu.Lock()
	close(p.synced)
	p.synced = make(chan struct{})
	p.syncMu.Unlock()
	p.wake()
}

// pendingTxnIndex is a segment whose aborted-transaction index has
// entries written to its file but not fsynced: written is how many.
type pendingTxnIndex struct {
	seg     *segment
	path    string
	written int
}

// pendingTxnIndexes lists them among segs (under the partition lock).
// Aborts are rare, so this is usually empty and costs nothing.
func pendingTxnIndexes(segs []*segment) []pendingTxnIndex {
	var out []pendingTxnIndex
	for _, s := range segs {
		if s.txn.synced < s.txn.onDisk {
			out = append(out, pendingTxnIndex{seg: s, path: s.txnIndexPath(), written: s.txn.onDisk})
		}
	}
	return out
}

// syncTxnIndexes fsyncs the aborted-transaction index files with the log
// data, so an acknowledged ABORT marker has its index entry on disk too. A
// file removed meanwhile (truncation, retention) needs nothing.
func syncTxnIndexes(pending []pendingTxnIndex) error {
	for _, t := range pending {
		f, err := os.OpenFile(t.path, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = f.Sync()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("fsync %s: %w", t.path, err)
		}
	}
	return nil
}

func dropSynced(pending, synced []*segment) []*segment {
	out := pending[:0]
	for _, s := range pending {
		found := false
		for _, t := range synced {
			found = found || s == t
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

func advanceTo(v *atomic.Int64, to int64) {
	for {
		cur := v.Load()
		if cur >= to || v.CompareAndSwap(cur, to) {
			return
		}
	}
}

// Cut describes a failed fsync's cut of the log (group policy).
type Cut struct {
	// From is the durable end the log was cut back to; To its end before.
	From, To int64
	// Read: a reader had been handed records past From (a follower's
	// fetch); then leader appends at leader epoch Epoch and older are
	// refused from now on, and this replica may lead again only at a newer
	// epoch.
	Read  bool
	Epoch int32
	Err   error
}

// SetCutObserver installs fn, or removes it when fn is nil. fn is called,
// without the partition's locks, each time a failed fsync cut the log back
// (discardUnsynced). The replication layer's leader uses it to give up the
// leadership: a follower that copied the cut records holds them at offsets
// this log no longer has.
func (p *Partition) SetCutObserver(fn func(Cut)) {
	if fn == nil {
		p.onCut.Store(nil)
		return
	}
	p.onCut.Store(&fn)
}

// discardUnsynced handles a failed fsync. After a failed fsync the kernel
// may have dropped the dirty pages, so what was written since the last good
// fsync cannot be trusted: it is cut off, and the appends waiting on it fail
// with ErrStorage. Later appends start from the durable end again.
//
// Followers are woken at the write, before its fsync, and may have copied
// the records cut. Were the leader to give their offsets to new records at
// the same leader epoch, a follower would hold different records at the
// same offsets and epoch, a divergence no epoch check finds, and its fetch
// offset past the new records would count them as replicated. So when a
// reader had been handed records past the durable end, leader appends at
// the epochs written so far are refused from now on (ErrStorage): the
// offsets are given again only under a newer epoch, whose start the
// followers' epoch check (KIP-101) truncates them to. When nobody read
// past the durable end (a partition without followers), nobody holds the
// cut records and appends go on at the same epoch once fsync works.
func (p *Partition) discardUnsynced(gen uint64, cause error) {
	cut, ok := p.cutUnsynced(gen, cause)
	if !ok {
		return
	}
	if fn := p.onCut.Load(); fn != nil {
		(*fn)(cut)
	}
}

func (p *Partition) cutUnsynced(gen uint64, cause error) (Cut, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.writeGen.Load() != gen || p.closed {
		return Cut{}, false
	}
	durable := p.durable.Load()
	cut := Cut{From: durable, To: p.leo, Read: p.readTo.Load() > durable, Epoch: -1, Err: cause}
	if cut.Read {
		cut.Epoch = 0
		if e, ok := p.epochs.latest(); ok {
			cut.Epoch = e.epoch
		}
		p.cutAtEpoch = max(p.cutAtEpoch, cut.Epoch)
	}
	p.store.log.Error("fsync failed; discarding unacknowledged writes", "partition", p.dir, "from_offset", durable, "to_offset", p.leo, "read_by_followers", cut.Read, "err", cause)
	if err := p.truncateLocked(durable); err != nil {
		p.store.log.Error("cutting the log back after a failed fsync", "partition", p.dir, "err", err)
	}
	p.readTo.Store(p.leo)
	p.writeGen.Add(1)
	return cut, true
}

// Read returns whole batches starting with the one that holds offset,
// stopping before any batch that ends at or past upTo (exclusive; pass the
// high watermark) and after maxBytes, except that the first batch is
// returned whole even when larger (KIP-74). An offset at the log end or at
// or past upTo gives no bytes. Offsets below the log start or past the log
// end are ErrOffsetOutOfRange.
func (p *Partition) Read(offset int64, maxBytes int32, upTo int64) ([]byte, error) {
	return p.read(offset, maxBytes, upTo, true, nil)
}

// ReadInto is Read into rb's memory (nil: memory of its own), valid until
// rb.Release: a leader's reads for a follower whose response is written
// through crypto/tls, which cannot send the batches from the file.
func (p *Partition) ReadInto(offset int64, maxBytes int32, upTo int64, rb *ReadBuffers) ([]byte, error) {
	return p.read(offset, maxBytes, upTo, true, rb)
}

// read is Read into rb's memory (nil: memory of its own). Without
// firstWhole, the first batch too must fit maxBytes: one that does not
// gives no bytes, and is not read.
func (p *Partition) read(offset int64, maxBytes int32, upTo int64, firstWhole bool, rb *ReadBuffers) ([]byte, error) {
	var out []byte
	for {
		budget := int64(maxBytes) - int64(len(out))
		chunk, next, more, err := p.readChunk(offset, budget, upTo, len(out) == 0, firstWhole, rb)
		if err != nil {
			return nil, err
		}
		switch {
		case len(out) == 0:
			out = chunk
		case len(chunk) == 0:
		case rb != nil:
			// The chunks of a read across segments are joined in
			// rb's memory too, so that the budget counts them.
			joined := rb.alloc(len(out)+len(chunk), 0)
			if len(joined) < len(out)+len(chunk) {
				return out, nil // the budget has no room: what we have
			}
			copy(joined[copy(joined, out):], chunk)
			out = joined
		default:
			out = append(out, chunk...)
		}
		if !more {
			return out, nil
		}
		offset = next
	}
}

// readChunk reads whole batches from the segment holding offset. The file
// is read without the partition lock (so appends are not held up by disk
// reads) but under the segment's read lock, which retention, compaction and
// truncation take before they close or cut the file. more says the chunk
// ended at the segment's end with budget left, so the next segment follows
// from next. The first chunk of a read (first) returns its first batch
// whole past budget when firstWhole (KIP-74), and nothing otherwise.
func (p *Partition) readChunk(offset, budget, upTo int64, first, firstWhole bool, rb *ReadBuffers) (chunk []byte, next int64, more bool, err error) {
	p.mu.RLock()
	limit, done, err := p.readLimitFor(offset, upTo, first)
	if done {
		p.mu.RUnlock()
		return nil, 0, false, err // err nil: the log moved on meanwhile; return what we have
	}
	if limit > p.durable.Load() {
		advanceTo(&p.readTo, limit)
	}
	// The first batch's size is known from its header before it is read:
	// a read that may not return it past budget reads nothing, and
	// charges nothing to rb's budget, when it does not fit.
	s, pos, h, budget, err := p.locateFirstBatch(offset, budget, limit, first && firstWhole)
	if s == nil {
		p.mu.RUnlock()
		return nil, 0, false, err
	}
	size, file, path := s.size, s.file, s.logPath()
	s.io.RLock()
	p.mu.RUnlock()
	// The first chunk of a read returns its first batch whole (KIP-74),
	// budget or not; a later chunk may return nothing.
	need := 0
	if first {
		need = h.Size()
	}
	chunk = rb.alloc(int(min(budget, size-pos)), need)
	if chunk == nil {
		s.io.RUnlock()
		return nil, 0, false, nil // rb's budget is spent
	}
	_, err = file.ReadAt(chunk, pos)
	s.io.RUnlock()
	if err != nil {
		return nil, 0, false, fmt.Errorf("%w: reading %s at %d: %w", ErrStorage, path, pos, err)
	}
	n, lastOffset, complete := wholeBatches(chunk, limit)
	return chunk[:n:n], lastOffset + 1, complete && pos+int64(n) == size && n > 0, nil
}

// readLimitFor is where a chunk read from offset must stop (upTo, or the
// log end), under p.mu. done, with err, ends the read first: the
// partition is closed, or offset is outside the log, which is
// ErrOffsetOutOfRange for the first chunk of a read and, for a later one,
// the log having moved on meanwhile (err nil: the read returns what it
// has).
func (p *Partition) readLimitFor(offset, upTo int64, first bool) (limit int64, done bool, err error) {
	if p.closed {
		return 0, true, ErrClosed
	}
	if start, end := p.logStart, p.leo; offset < start || offset > end {
		if first {
			return 0, true, fmt.Errorf("%w: offset %d, log is [%d, %d)", ErrOffsetOutOfRange, offset, start, end)
		}
		return 0, true, nil
	}
	return min(upTo, p.leo), false, nil
}

// locateFirstBatch finds, under p.mu, the batch a chunk read from offset
// starts with: its segment, position and header, and the budget the chunk has,
// raised to that batch's size for the first chunk of a read (KIP-74: the
// first batch whole). s is nil when the chunk is empty: offset is at
// limit, the batch reaches limit or passes the budget, or (with err) its
// position could not be read.
func (p *Partition) locateFirstBatch(offset, budget, limit int64, first bool) (s *segment, pos int64, h recordbatch.Header, budgetOut int64, err error) {
	for i := p.segmentFor(offset); i < len(p.segments) && offset < limit; i++ {
		s := p.segments[i]
		pos, h, err := s.findPosition(offset)
		if err != nil {
			return nil, 0, recordbatch.Header{}, 0, fmt.Errorf("%w: reading %s: %w", ErrStorage, p.dir, err)
		}
		if pos >= s.size {
			continue // offset fell in a gap left by compaction at the segment end
		}
		if h.LastOffset() >= limit {
			break
		}
		if first {
			budget = max(budget, int64(h.Size()))
		}
		if budget < int64(h.Size()) {
			break
		}
		return s, pos, h, budget, nil
	}
	return nil, 0, recordbatch.Header{}, 0, nil
}

// wholeBatches returns the length of the prefix of b made of complete
// batches ending below limit, the last offset in it, and whether it reached
// the end of b.
func wholeBatches(b []byte, limit int64) (n int, lastOffset int64, complete bool) {
	for n < len(b) {
		h, err := recordbatch.ParseHeader(b[n:])
		if err != nil || n+h.Size() > len(b) || h.LastOffset() >= limit {
			return n, lastOffset, false
		}
		lastOffset = h.LastOffset()
		n += h.Size()
	}
	return n, lastOffset, true
}

// segmentFor returns the index of the segment that may hold offset.
func (p *Partition) segmentFor(offset int64) int {
	i := sort.Search(len(p.segments), func(i int) bool { return p.segments[i].base > offset })
	return max(i-1, 0)
}

// OffsetForTimestamp answers ListOffsets by time: the first offset whose
// record timestamp is >= ts, and that timestamp; (-1, -1) when no record is
// that new. ts -2 gives the log start offset and -1 the high watermark
// (Kafka's EARLIEST and LATEST), each with timestamp -1.
func (p *Partition) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, err error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return -1, -1, ErrClosed
	}
	switch {
	case ts == -2:
		return p.logStart, -1, nil
	case ts == -1:
		return p.highWatermarkLocked(), -1, nil
	case ts < 0:
		return -1, -1, fmt.Errorf("%w: timestamp %d", ErrInvalidRecord, ts)
	}
	for _, s := range p.segments {
		if s.maxTimestamp < ts || s.size == 0 {
			continue
		}
		pos := int64(0)
		if rel, ok := s.index.lookupTime(ts); ok {
			pos = s.index.lookup(rel)
		}
		for pos < s.size {
			h, err := s.readHeaderAt(pos)
			if err != nil {
				return -1, -1, fmt.Errorf("%w: %w", ErrStorage, err)
			}
			if h.MaxTimestamp >= ts && h.LastOffset() >= p.logStart {
				off, rts, err := firstRecordAtOrAfter(s, pos, &h, ts, p.logStart)
				if err != nil {
					return -1, -1, err
				}
				if off >= 0 {
					return off, rts, nil
				}
			}
			pos += int64(h.Size())
		}
	}
	return -1, -1, nil
}

// firstRecordAtOrAfter looks inside a batch for the first record at or
// after ts (and not below logStart). When the records cannot be decoded it
// falls back to the batch as a whole, as a scan by batch timestamps would.
// The records are streamed from the batch's decoder: a batch of a topic
// that keeps the producer's codec is stored as sent, and a few KB of it
// can inflate to 256 MiB. A zstd frame over tributary.zstd.max.window.bytes
// is read all the same (up to 128 MiB, ScanStoredRecords): it was stored
// under a higher bound, or never decoded.
func firstRecordAtOrAfter(s *segment, pos int64, h *recordbatch.Header, ts, logStart int64) (int64, int64, error) {
	if h.IsLogAppendTime() {
		return max(h.BaseOffset, logStart), h.MaxTimestamp, nil
	}
	b := make([]byte, h.Size())
	if _, err := s.file.ReadAt(b, pos); err != nil {
		return -1, -1, fmt.Errorf("%w: reading %s at %d: %w", ErrStorage, s.logPath(), pos, err)
	}
	found, foundTs := int64(-1), int64(-1)
	errFound := errors.New("found")
	err := recordbatch.ScanStoredRecords(h, b, func(r *recordbatch.RecordInfo) error {
		off := h.BaseOffset + int64(r.OffsetDelta)
		rts := h.BaseTimestamp + r.TimestampDelta
		if rts >= ts && off >= logStart {
			found, foundTs = off, rts
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return max(h.BaseOffset, logStart), h.MaxTimestamp, nil
	}
	return found, foundTs, nil
}

// FenceLeaderEpoch refuses, from now on, every leader append (Append,
// AppendTxnMarker) at a leader epoch below epoch with ErrFencedLeaderEpoch;
// a lower epoch than already fenced changes nothing. The replication layer
// calls it before this replica follows or leads at epoch: a produce that
// looked up the old leadership just before it ended, and reaches the log
// only after this replica started copying the new leader's log, would
// otherwise land on top of the copied records, at offsets where the new
// leader holds other records, and the new leader would count them as
// replicated here when this replica fetches past them (Kafka holds the
// partition's leader lock across the append for the same reason).
func (p *Partition) FenceLeaderEpoch(epoch int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fencedBelow = max(p.fencedBelow, epoch)
}

// AssignLeaderEpochStart records that leader epoch epoch starts at the log
// end offset, before its first append; an epoch not newer than the latest
// changes nothing. The replication layer calls it when this replica
// becomes leader, as Kafka does: until the leader's own epoch is in its
// cache, a follower whose latest epoch is newer than every epoch the
// leader wrote (records of the old leader the new one never got) is
// answered UNDEFINED_EPOCH and falls back to truncating at its high
// watermark, which may cut records the cluster acknowledged while that
// follower stays in the ISR, electable without them. The next checkpoint
// writes the entry (no fsync on the path that takes a leadership); a
// replica that restarts before then follows first and learns the epochs
// again from the leader.
func (p *Partition) AssignLeaderEpochStart(epoch int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.epochs.assign(epoch, p.leo) {
		p.epochsDirty = true
	}
}

// EndOffsetForLeaderEpoch answers OffsetForLeaderEpoch (KIP-101): the
// largest epoch <= epoch known here and the offset where the epoch after it
// starts (the log end offset for the latest epoch); (-1, -1) when unknown.
func (p *Partition) EndOffsetForLeaderEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.epochs.endOffsetFor(epoch, p.leo)
}

// LatestEpoch returns the newest leader epoch in the log, -1 if none.
func (p *Partition) LatestEpoch() int32 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if e, ok := p.epochs.latest(); ok {
		return e.epoch
	}
	return -1
}

// FetchState is LogEndOffset, LatestEpoch and LogStartOffset read under one
// lock acquisition, as a follower names them in each fetch: with thousands
// of followed partitions three acquisitions (three cache misses on the
// lock) per partition per round were most of an idle follower's fetch
// loop. The three are also consistent with each other, which the separate
// reads were not across a concurrent append or truncation.
func (p *Partition) FetchState() (logEnd int64, latestEpoch int32, logStart int64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	latestEpoch = -1
	if e, ok := p.epochs.latest(); ok {
		latestEpoch = e.epoch
	}
	return p.leo, latestEpoch, p.logStart
}

// DeleteRecordsBefore moves the log start offset up to offset (DeleteRecords):
// records below it are no longer readable, whole segments below it are
// deleted, and the new start survives restarts. offset -1 means the high
// watermark. Offsets past the high watermark are ErrOffsetOutOfRange.
func (p *Partition) DeleteRecordsBefore(offset int64) (newLogStart int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return -1, ErrClosed
	}
	hw := p.highWatermarkLocked()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return -1, fmt.Errorf("%w: delete before %d, high watermark is %d", ErrOffsetOutOfRange, offset, hw)
	}
	if offset <= p.logStart {
		return p.logStart, nil
	}
	if err := writeLogStartOffset(p.dir, offset); err != nil {
		return -1, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	p.logStart = offset
	if p.epochs.truncateFromStart(offset) {
		p.epochsDirty = true
	}
	p.deleteSegmentsBelowStartLocked()
	return p.logStart, nil
}

// deleteSegmentsBelowStartLocked removes segments that end at or before the
// log start offset (never the active one).
func (p *Partition) deleteSegmentsBelowStartLocked() {
	for len(p.segments) > 1 && p.segments[1].base <= p.logStart {
		p.removeFirstSegmentLocked("below log start offset")
	}
}

func (p *Partition) removeFirstSegmentLocked(reason string) {
	s := p.segments[0]
	p.segments = p.segments[1:]
	p.deleteSegmentLocked(s, reason)
	p.logStart = max(p.logStart, p.segments[0].base)
}

// TruncateTo removes the batches at and after offset (the whole batch that
// holds offset goes), for the replication layer to cut a diverged suffix.
// Offsets at or past the log end change nothing.
func (p *Partition) TruncateTo(offset int64) error {
	p.cpMu.Lock()
	defer p.cpMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if offset >= p.leo {
		// No record to cut, but a leader epoch recorded at or past offset
		// (one this replica took a leadership in and wrote nothing:
		// AssignLeaderEpochStart) is dropped, as Kafka's truncateTo does.
		// Kept, it stays the follower's last fetched epoch, which the new
		// leader answers with a diverging epoch ending at this same offset:
		// the follower would fetch, be told to truncate here, and never
		// advance.
		if p.epochs.truncateFromEnd(offset) {
			p.epochsDirty = true
		}
		return nil
	}
	if err := p.truncateLocked(offset); err != nil {
		return err
	}
	p.writeGen.Add(1)
	return nil
}

// truncateLocked cuts the log so that its end offset is at most offset.
func (p *Partition) truncateLocked(offset int64) error {
	if offset < p.logStart {
		offset = p.logStart
	}
	for len(p.segments) > 1 && p.active().base >= offset {
		s := p.active()
		p.segments = p.segments[:len(p.segments)-1]
		p.unsynced = dropSynced(p.unsynced, []*segment{s})
		if err := s.remove(); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	s := p.active()
	pos, h, err := s.findPosition(offset)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if pos < s.size {
		if err := s.truncate(pos); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		newNext := h.BaseOffset
		if pos == 0 {
			newNext = s.base
		}
		s.index.truncateAt(pos, uint32(newNext-s.base))
		s.size = pos
		s.next = max(newNext, s.base)
		s.bytesSinceIndex = 0
		s.maxTimestamp = -1
		if len(s.index.times) > 0 {
			s.maxTimestamp = s.index.times[len(s.index.times)-1].timestamp
		}
		if err := s.writeIndexes(false); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	p.leo = s.next
	if p.durable.Load() > p.leo {
		p.durable.Store(p.leo)
	}
	if p.hw > p.leo {
		p.hw = p.leo
	}
	if p.recovery.offset > p.leo {
		// The recovery point must not claim data that is gone.
		rp := recoveryPoint{offset: p.leo, segment: s.base, position: s.size}
		if err := writeRecoveryPoint(p.dir, rp); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		p.recovery = rp
	}
	if p.epochs.truncateFromEnd(p.leo) {
		p.epochsDirty = true
		if err := p.epochs.write(p.dir); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		p.epochsDirty = false
	}
	return p.rebuildProducerStateLocked()
}
