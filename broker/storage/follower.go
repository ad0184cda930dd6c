package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// Replication support: the follower side of Kafka's log (what
// replica.StorageLog needs, docs/broker-cluster.md "Storage changes").

// AppendAsFollower appends record batches exactly as the leader has them:
// base offsets, partitionLeaderEpoch, timestamps and attributes are kept
// (nothing is rewritten), CRCs and lengths are checked, the first base
// offset must be at or past the log end and offsets must increase (gaps,
// as compaction leaves, are allowed). The leader-epoch cache learns each
// batch's epoch and the producer state each batch's sequence, without
// refusing anything, so this replica can lead later. It returns when the
// data is durable per the flush policy.
func (p *Partition) AppendAsFollower(ctx context.Context, batches []byte) error {
	wait, err := p.WriteAsFollower(batches)
	if err != nil {
		return err
	}
	return wait(ctx)
}

// WriteAsFollower is AppendAsFollower in two steps: it checks and writes
// the batches, and returns wait, which returns once they are durable per
// the flush policy. A follower writes every partition of a fetch response
// first and then waits for them all: the write enrols its partition in the
// next sync round without starting it, and the first wait starts it, so
// one round covers them all. Neither keeps a reference to batches once
// it returns (TestWriteAsFollowerKeepsNoReferenceToBatches): a follower
// reads its next fetch response into the same memory.
func (p *Partition) WriteAsFollower(batches []byte) (wait func(context.Context) error, err error) {
	var headers []recordbatch.Header
	prevEnd := int64(-1)
	for pos := 0; pos < len(batches); {
		h, err := recordbatch.ParseHeader(batches[pos:])
		if err != nil {
			return nil, fmt.Errorf("%w: leader batch at byte %d: %w", ErrCorruptMessage, pos, err)
		}
		if pos+h.Size() > len(batches) {
			return nil, fmt.Errorf("%w: leader batch at byte %d claims %d bytes, %d remain", ErrCorruptMessage, pos, h.Size(), len(batches)-pos)
		}
		if err := recordbatch.Check(&h, batches[pos:pos+h.Size()]); err != nil {
			return nil, fmt.Errorf("%w: leader batch at offset %d: %w", ErrCorruptMessage, h.BaseOffset, err)
		}
		if h.LastOffsetDelta < 0 || h.BaseOffset < 0 || h.BaseOffset <= prevEnd {
			return nil, fmt.Errorf("%w: leader batch at offset %d (delta %d) after offset %d", ErrInvalidRecord, h.BaseOffset, h.LastOffsetDelta, prevEnd)
		}
		if h.IsControl() && h.ProducerID >= 0 {
			// The producer state reads markers; one it cannot read would
			// leave this replica's transactions different from the leader's.
			if _, _, _, err := recordbatch.ParseControl(&h, batches[pos:pos+h.Size()]); err != nil {
				return nil, fmt.Errorf("%w: leader control batch at offset %d: %w", ErrCorruptMessage, h.BaseOffset, err)
			}
		}
		prevEnd = h.LastOffset()
		headers = append(headers, h)
		pos += h.Size()
	}
	if len(headers) == 0 {
		return func(context.Context) error { return nil }, nil
	}
	end, gen, err := p.appendFollowerLocked(batches, headers)
	if err != nil {
		return nil, err
	}
	p.observe(end)
	if p.store.opts.FlushPolicy == FlushGroup {
		p.store.sync.enrolQuietly(p)
		return func(ctx context.Context) error { return p.waitDurable(ctx, end, gen) }, nil
	}
	p.wake()
	return func(context.Context) error { return nil }, nil
}

func (p *Partition) appendFollowerLocked(batches []byte, headers []recordbatch.Header) (end int64, gen uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, 0, ErrClosed
	}
	first, last := headers[0].BaseOffset, headers[len(headers)-1].LastOffset()
	if first < p.leo {
		return 0, 0, fmt.Errorf("%w: leader batches start at %d, before the log end %d", ErrOffsetOutOfRange, first, p.leo)
	}
	now := p.store.opts.Now()
	s := p.active()
	if s.size > 0 && (s.size+int64(len(batches)) > p.cfg.SegmentBytes || now.Sub(s.created) >= p.cfg.SegmentMs || !s.fitsOffset(last)) {
		if err := p.rollLocked(now, first); err != nil {
			return 0, 0, err
		}
	} else if s.size == 0 && first > s.base {
		// An empty active segment before a gap: start it at the first
		// offset, so its index stays relative to data it holds.
		if err := p.replaceEmptyActiveLocked(first, now); err != nil {
			return 0, 0, err
		}
	}
	s = p.active()
	if !s.fitsOffset(last) {
		return 0, 0, fmt.Errorf("%w: leader batches %d-%d span more offsets than one segment can index", ErrInvalidRecord, first, last)
	}
	pos := s.size
	if err := s.write(batches); err != nil {
		p.store.del.noteWriteError(err)
		p.store.log.Error("follower append failed; log left at its previous end", "partition", p.dir, "segment", s.logPath(), "err", err)
		return 0, 0, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	nowMs := now.UnixMilli()
	epochsChanged := false
	hw := p.highWatermarkLocked()
	for i, off := 0, 0; i < len(headers); i++ {
		h := &headers[i]
		s.track(h, pos, p.cfg.IndexIntervalBytes)
		if h.ProducerID >= 0 {
			// Markers are replicated as bytes; the state they carry is
			// rebuilt here exactly as on the leader.
			p.replayLocked(h, batches[off:off+h.Size()], nowMs, hw, h.BaseOffset, s)
		}
		off += h.Size()
		pos += int64(h.Size())
		if p.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) {
			epochsChanged = true
		}
	}
	p.leo = last + 1
	if len(p.producers.unreplicated) > 0 {
		p.producers.pruneReplicated(p.highWatermarkLocked())
	}
	if epochsChanged {
		p.epochsDirty = true
		if err := p.epochs.write(p.dir); err != nil {
			p.store.del.noteWriteError(err)
			p.store.log.Warn("writing leader-epoch checkpoint", "partition", p.dir, "err", err)
		} else {
			p.epochsDirty = false
		}
	}
	return p.leo, p.writeGen.Load(), nil
}

// replaceEmptyActiveLocked swaps the empty active segment for one based at
// base (> its base), so that offsets after a gap stay indexable.
func (p *Partition) replaceEmptyActiveLocked(base int64, now time.Time) error {
	old := p.active()
	s, err := createSegment(p.dir, base, now)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	p.segments[len(p.segments)-1] = s
	if err := old.remove(); err != nil {
		p.store.log.Warn("removing empty segment", "segment", old.logPath(), "err", err)
	}
	if err := syncDir(p.dir); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return nil
}

// TruncateFullyAndStartAt empties the log and makes offset both its start
// and its end: the leader's log start has passed this replica's end, so
// nothing here is worth keeping. Leader epochs and producer state are
// cleared with it; the new start survives restarts.
func (p *Partition) TruncateFullyAndStartAt(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: cannot start the log at %d", ErrOffsetOutOfRange, offset)
	}
	p.cpMu.Lock()
	defer p.cpMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	s, err := createSegment(p.dir, offset, p.store.opts.Now())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	var errs []error
	for _, old := range p.segments {
		if old.base == offset {
			// createSegment truncated this very file; only close it.
			errs = append(errs, old.close())
			continue
		}
		errs = append(errs, old.remove())
	}
	if err := errors.Join(errs...); err != nil {
		p.store.log.Warn("removing segments", "partition", p.dir, "err", err)
	}
	p.segments = []*segment{s}
	p.unsynced = nil
	p.logStart, p.leo = offset, offset
	p.durable.Store(offset)
	if p.hwSet {
		p.hw = offset
	}
	p.epochs = epochCache{}
	p.epochsDirty = true
	p.producers = newProducerStates()
	if err := os.Remove(filepath.Join(p.dir, producerStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.store.log.Warn("removing producer-state snapshot", "partition", p.dir, "err", err)
	}
	p.snapOffset = -1
	p.writeGen.Add(1)
	if err := syncDir(p.dir); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if err := writeLogStartOffset(p.dir, offset); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	// A fresh recovery point: the old one names segments that are gone.
	p.recovery = recoveryPoint{offset: -1}
	return p.checkpointLocked()
}
