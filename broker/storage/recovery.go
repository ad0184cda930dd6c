package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// partitionMeta is the partition.metadata file: which topic partition the
// directory holds and its topic settings, so a restart needs nobody else.
// TopicID is the id of the topic the log was created for (Kafka keeps it
// in its own partition.metadata): directories are named by topic name, so
// a topic deleted and created again under the same name while this broker
// was down finds the old topic's directory, and only the id tells them
// apart. It is absent (unknown) in files written before it was stored and
// in partitions created without one.
type partitionMeta struct {
	Version   int         `json:"version"`
	Topic     string      `json:"topic"`
	TopicID   *TopicID    `json:"topic_id,omitempty"`
	Partition int32       `json:"partition"`
	Config    TopicConfig `json:"config"`
}

func writePartitionMeta(dir, topic string, partition int32, id TopicID, cfg TopicConfig) error {
	m := partitionMeta{Topic: topic, Partition: partition, Config: cfg}
	if !id.IsZero() {
		m.TopicID = &id
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding partition metadata: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, partitionMetaFile), append(b, '\n'))
}

func readPartitionMeta(dir string) (partitionMeta, error) {
	var m partitionMeta
	b, err := os.ReadFile(filepath.Join(dir, partitionMetaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decoding %s: %w", filepath.Join(dir, partitionMetaFile), err)
	}
	return m, nil
}

// recoverPartition opens a partition directory and brings it to a
// consistent state:
//
//   - segments below the recovery point are trusted (they were fsynced with
//     their indexes before the point was written); only their index files
//     are loaded, or rebuilt from batch headers when missing or implausible;
//   - from the recovery point on (the whole tail when there is no point and
//     the last shutdown was not clean), every batch's lengths, magic, CRC
//     and offsets are checked, and the log is cut at the first bad one with
//     a warning, deleting any later segment;
//   - leader epochs and producer state are rebuilt for the checked tail.
//
// So the work after a crash is proportional to what was written since the
// last checkpoint, not to the size of the log.
func (st *Store) recoverPartition(dir, topic string, partition int32, clean bool) (*Partition, error) {
	cfg := TopicConfig{}
	var id TopicID
	if m, err := readPartitionMeta(dir); err == nil {
		cfg = m.Config
		if m.TopicID != nil {
			id = *m.TopicID
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		st.log.Warn("ignoring unreadable partition metadata; using default topic settings", "partition", dir, "err", err)
	}
	p := newPartition(st, topic, partition, dir, cfg.WithDefaults())
	p.topicID = id

	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, tmpSuffix) || strings.HasSuffix(name, cleanedSuffix):
			// Half-written checkpoint or compaction output: the originals stand.
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("removing leftover %s: %w", name, err)
			}
		case strings.HasSuffix(name, deletedFileSuffix):
			// A segment out of the log, waiting for file.delete.delay.ms
			// when the broker stopped without closing the store.
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("removing %s, deleted before a crash: %w", name, err)
			}
		default:
			if base, ok := parseSegmentName(name); ok {
				bases = append(bases, base)
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	// A snapshot whose segment is gone (deleted with a crash in between)
	// describes a log that may not exist any more.
	for _, e := range entries {
		stem, ok := strings.CutSuffix(e.Name(), snapshotSuffix)
		if !ok {
			continue
		}
		base, ok := parseSegmentName(stem + logSuffix)
		if i := sort.Search(len(bases), func(i int) bool { return bases[i] >= base }); ok && i < len(bases) && bases[i] == base {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return nil, fmt.Errorf("removing stray snapshot %s: %w", e.Name(), err)
		}
	}

	logStart, lsErr := readLogStartOffset(dir)
	if lsErr != nil {
		logStart = 0
	}
	if len(bases) == 0 {
		s, err := createSegment(dir, logStart, st.opts.Now())
		if err != nil {
			return nil, err
		}
		p.segments = []*segment{s}
	}
	for _, base := range bases {
		s, err := openSegment(dir, base)
		if err != nil {
			p.closeFiles()
			return nil, err
		}
		p.segments = append(p.segments, s)
	}
	p.logStart = max(logStart, p.segments[0].base)

	if ep, err := readEpochCache(dir); err == nil {
		p.epochs = ep
	} else if !errors.Is(err, os.ErrNotExist) {
		st.log.Warn("leader-epoch checkpoint unreadable; rebuilding from the checked tail", "partition", dir, "err", err)
	}

	// Where checking starts: the recovery point if it names a segment we
	// have and a position inside it; else the start of the log.
	rp, rpErr := readRecoveryPoint(dir)
	checkSeg, checkPos := 0, int64(0)
	rpValid := false
	if rpErr == nil {
		for i, s := range p.segments {
			if s.base == rp.segment && rp.position <= s.size {
				checkSeg, checkPos, rpValid = i, rp.position, true
			}
		}
		if !rpValid && rp.segment < p.segments[0].base {
			// Retention removed the recovery point's segment: everything
			// left came after it.
			rpValid = true
		}
	}
	verify := !clean || !rpValid
	if clean && !rpValid {
		// A clean shutdown wrote everything; the recovery point is merely
		// missing. Trust the log, only walking the last segment's tail.
		verify = false
		checkSeg, checkPos = len(p.segments)-1, 0
	}
	if !rpValid && !clean {
		checkSeg, checkPos = 0, 0
	}
	if rpValid && rpErr == nil {
		p.recovery = rp
	}
	if err := p.loadSegments(checkSeg, checkPos, verify); err != nil {
		p.closeFiles()
		return nil, err
	}
	p.leo = p.active().next
	if a := p.active(); a.size > 0 {
		// segment.ms counts from the first batch's timestamp, as in Kafka,
		// when it is plausible; else from the file's modification time.
		if h, err := a.readHeaderAt(0); err == nil && h.MaxTimestamp > 0 && h.MaxTimestamp <= st.opts.Now().UnixMilli() {
			a.created = time.UnixMilli(h.MaxTimestamp)
		}
	}
	if p.logStart > p.leo {
		// DeleteRecords moved the start past what survived: start there.
		p.logStart = p.leo
	}
	if p.epochs.truncateFromEnd(p.leo) || p.epochs.truncateFromStart(p.logStart) {
		p.epochsDirty = true
	}

	if hw, err := readSingleOffset(filepath.Join(dir, highWatermarkFile)); err == nil {
		p.hw, p.hwSet, p.hwWritten = min(hw, p.leo), true, hw
	} else if !errors.Is(err, os.ErrNotExist) {
		st.log.Warn("high-watermark checkpoint unreadable; the replication layer must set it again", "partition", dir, "err", err)
	}

	// Aborted-transaction indexes: trusted below the producer-state
	// snapshot's offset, rebuilt from the log after it (or wholly, when one
	// is damaged).
	indexesOK := true
	for i, s := range p.segments {
		ix, err := loadTxnIndex(s.txnIndexPath(), s.base, s.next, i == len(p.segments)-1)
		if err != nil {
			st.log.Warn("transaction index unusable; rebuilding every index from the log", "partition", dir, "err", err)
			indexesOK = false
			continue
		}
		s.txn = ix
	}
	if err := p.recoverProducerStateLocked(indexesOK); err != nil {
		p.closeFiles()
		return nil, err
	}
	// What survived recovery is what this broker will serve: make it durable
	// (the checked segments may hold bytes that reached only the page cache
	// before the crash) and record a new recovery point so the next start
	// does not check them again.
	if checkSeg < len(p.segments)-1 {
		p.unsynced = append(p.unsynced, p.segments[checkSeg:len(p.segments)-1]...)
	}
	if err := p.checkpointLocked(); err != nil {
		p.closeFiles()
		return nil, err
	}
	p.durable.Store(p.leo)
	if !clean && rpErr != nil && !errors.Is(rpErr, os.ErrNotExist) {
		st.log.Warn("recovery point unreadable; checked the whole log", "partition", dir, "err", rpErr)
	}
	return p, nil
}

// loadSegments fills in sizes, offsets and indexes of all segments.
// Segments before checkSeg are trusted; checkSeg is trusted up to checkPos
// and checked (if verify) after it, and later segments are checked whole.
func (p *Partition) loadSegments(checkSeg int, checkPos int64, verify bool) error {
	for i := 0; i < len(p.segments); i++ {
		s := p.segments[i]
		fileSize := s.size
		ix, ok := loadIndexFiles(s.indexPath(), s.timeIndexPath(), fileSize)
		switch {
		case i < checkSeg && i < len(p.segments)-1:
			// Trusted, not the last: the index files give all we need.
			if !ok {
				if err := p.rebuildIndex(s, fileSize); err != nil {
					return err
				}
			} else {
				s.index = ix
				if n := len(ix.times); n > 0 {
					s.maxTimestamp = ix.times[n-1].timestamp
				}
			}
			s.next = p.segments[i+1].base
			continue
		case i > checkSeg:
			ok, checkPos = false, 0
		}
		trustedTo := checkPos
		if !verify {
			trustedTo = fileSize
		}
		walkFrom := int64(0)
		s.resetTracking()
		if ok {
			walkFrom = s.resumeIndex(ix, trustedTo)
		}
		stop, err := s.scan(walkFrom, trustedTo, false, func(h *recordbatch.Header, pos int64, _ []byte) {
			s.track(h, pos, p.cfg.IndexIntervalBytes)
		})
		if err != nil {
			return err
		}
		// A trusted region that does not end on a batch boundary (it
		// should) is not cut: checking simply starts earlier.
		if verify || stop.reason != nil {
			stop, err = s.scan(stop.end, fileSize, true, func(h *recordbatch.Header, pos int64, _ []byte) {
				s.track(h, pos, p.cfg.IndexIntervalBytes)
				if p.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) {
					p.epochsDirty = true
				}
			})
			if err != nil {
				return err
			}
		}
		if stop.reason != nil {
			return p.cutTail(i, stop, fileSize)
		}
		s.size = stop.end
	}
	return nil
}

// rebuildIndex recreates a trusted segment's indexes from its batch headers.
func (p *Partition) rebuildIndex(s *segment, fileSize int64) error {
	s.resetTracking()
	stop, err := s.scan(0, fileSize, false, func(h *recordbatch.Header, pos int64, _ []byte) {
		s.track(h, pos, p.cfg.IndexIntervalBytes)
	})
	if err != nil {
		return err
	}
	if stop.reason != nil {
		p.store.log.Warn("segment below the recovery point is damaged; it will be cut there",
			"segment", s.logPath(), "position", stop.end, "reason", stop.reason)
		return fmt.Errorf("%w: %s damaged at byte %d below the recovery point: %w", ErrStorage, s.logPath(), stop.end, stop.reason)
	}
	s.size = stop.end
	return s.writeIndexes(true)
}

// resumeIndex installs loaded index entries that lie before pos and returns
// the position of the last of them, from which tracking resumes.
func (s *segment) resumeIndex(ix segmentIndex, pos int64) int64 {
	start, rel := int64(0), uint32(0)
	keep := 0
	for keep < len(ix.offsets) && int64(ix.offsets[keep].position) <= pos {
		start, rel = int64(ix.offsets[keep].position), ix.offsets[keep].relOffset
		keep++
	}
	ix.offsets = ix.offsets[:keep]
	t := 0
	for t < len(ix.times) && ix.times[t].relOffset < rel {
		t++
	}
	ix.times = ix.times[:t]
	ix.offsetsOnDisk = min(ix.offsetsOnDisk, keep)
	ix.timesOnDisk = min(ix.timesOnDisk, t)
	s.index = ix
	if t > 0 {
		s.maxTimestamp = ix.times[t-1].timestamp
	}
	s.size = start
	return start
}

// cutTail truncates segment i at the scan's stop and removes later segments.
func (p *Partition) cutTail(i int, stop scanResult, fileSize int64) error {
	s := p.segments[i]
	cut := fileSize - stop.end
	for _, later := range p.segments[i+1:] {
		cut += later.size
	}
	p.store.log.Warn("truncating torn or corrupt log tail",
		"file", s.logPath(), "position", stop.end, "offset", s.next, "bytes_cut", cut, "reason", stop.reason)
	if err := s.truncate(stop.end); err != nil {
		return err
	}
	s.size = stop.end
	if err := s.writeIndexes(false); err != nil {
		return err
	}
	for _, later := range p.segments[i+1:] {
		if err := later.remove(); err != nil {
			return err
		}
	}
	p.segments = p.segments[:i+1]
	return syncDir(p.dir)
}

// recoverProducerStateLocked rebuilds the producer and transaction state
// at start-up: from the producer-state snapshot, replaying the batches after
// it and rebuilding the aborted-transaction index entries of the markers
// there (the index files hold the entries below the snapshot, which were
// fsynced before it was written). Without a usable snapshot, or with an
// index that failed its checks, the whole log is replayed and every index
// rebuilt.
func (p *Partition) recoverProducerStateLocked(indexesOK bool) error {
	ps, from, err := readProducerStates(p.dir)
	if err == nil {
		// The end-of-recovery checkpoint replaces it unless it is at the log end.
		p.snapOffset = from
	}
	full := !indexesOK
	if err != nil || from > p.leo || from < p.segments[0].base {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			p.store.log.Warn("producer-state snapshot unusable; replaying from the last segment snapshot", "partition", p.dir, "err", err)
		}
		var found bool
		ps, from, found = p.newestSegmentSnapshotLocked(p.leo)
		full = full || !found
	}
	if full {
		ps, from = newProducerStates(), p.segments[0].base
	}
	for _, s := range p.segments {
		var err error
		if full {
			err = s.resetTxnIndex()
		} else {
			err = s.truncateTxnIndex(from)
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	hw := p.leo
	if p.hwSet {
		hw = min(p.hw, p.leo)
	}
	return p.replayFromLocked(ps, from, hw, from)
}

// rebuildProducerStateLocked rebuilds the producer and transaction state
// after the log was cut at p.leo (TruncateTo, a failed fsync): from the
// snapshot if it lies at or below the cut, else from the first segment.
// The aborted-transaction entries below the cut stand; those at or past it
// go.
func (p *Partition) rebuildProducerStateLocked() error {
	if p.snapOffset > p.leo {
		// The snapshot describes data that is gone. Remove it before the
		// log grows past it again, so that neither a later truncation nor a
		// restart can take it for the state of different data.
		if err := os.Remove(filepath.Join(p.dir, producerStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: removing stale producer-state snapshot: %w", ErrStorage, err)
		}
		if err := syncDir(p.dir); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		p.snapOffset = -1
	}
	for _, s := range p.segments {
		if err := s.truncateTxnIndex(p.leo); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	ps, from, _ := p.newestSegmentSnapshotLocked(p.leo)
	if p.snapOffset >= from {
		loaded, off, err := readProducerStates(p.dir)
		if err == nil && off == p.snapOffset {
			ps, from = loaded, off
		} else {
			p.store.log.Warn("producer-state snapshot unreadable; replaying from an earlier one", "partition", p.dir, "err", err)
		}
	}
	// Verifications in flight are about the producers, not the log: they stay.
	ps.verifying = p.producers.verifying
	return p.replayFromLocked(ps, from, p.highWatermarkLocked(), p.leo)
}

// newestSegmentSnapshotLocked returns the newest readable snapshot taken
// at a segment roll at or below limit, and its offset; without one, an
// empty state at the first segment's base.
func (p *Partition) newestSegmentSnapshotLocked(limit int64) (producerStates, int64, bool) {
	for i := len(p.segments) - 1; i >= 0; i-- {
		s := p.segments[i]
		if s.base > limit {
			continue
		}
		b, err := os.ReadFile(s.snapshotPath())
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		var ps producerStates
		var off int64
		if err == nil {
			ps, off, err = decodeProducerStates(b)
		}
		if err == nil && off == s.base {
			return ps, off, true
		}
		p.store.log.Warn("segment's producer-state snapshot unusable; trying an earlier one", "snapshot", s.snapshotPath(), "err", err)
	}
	return newProducerStates(), p.segments[0].base, false
}

// replayFromLocked installs ps (the state for the log below from) and
// replays the batches from there to the log end, indexing the aborts at or
// past indexFrom.
func (p *Partition) replayFromLocked(ps producerStates, from, hw, indexFrom int64) error {
	p.producers = ps
	now := p.store.opts.Now().UnixMilli()
	err := p.walkHeaders(from, func(s *segment, h *recordbatch.Header, data []byte) {
		if h.ProducerID >= 0 {
			p.replayLocked(h, data, now, hw, indexFrom, s)
		}
	})
	if len(p.producers.unreplicated) > 0 {
		p.producers.pruneReplicated(hw)
	}
	return err
}

// walkHeaders calls fn for each batch whose last offset is >= from, with
// its segment (data is nil except for control batches).
func (p *Partition) walkHeaders(from int64, fn func(s *segment, h *recordbatch.Header, data []byte)) error {
	if from >= p.leo {
		return nil
	}
	for i := p.segmentFor(from); i < len(p.segments); i++ {
		s := p.segments[i]
		pos, _, err := s.findPosition(from)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		stop, err := s.scan(pos, s.size, false, func(h *recordbatch.Header, _ int64, data []byte) { fn(s, h, data) })
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
		if stop.reason != nil {
			return fmt.Errorf("%w: %s at byte %d: %w", ErrStorage, s.logPath(), stop.end, stop.reason)
		}
	}
	return nil
}

// closeFiles closes every segment file (error paths and shutdown).
func (p *Partition) closeFiles() {
	for _, s := range p.segments {
		_ = s.close()
	}
	for _, s := range p.unsynced {
		_ = s.close()
	}
}
