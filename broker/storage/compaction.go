package storage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// maxCleanerKeys bounds the key map of one cleaner pass (memory); a pass
// that meets more keys cleans only the segments whose keys all fit, and the
// next pass goes on from there.
const maxCleanerKeys = 1 << 20

// cleanerCandidate is a segment the cleaner may rewrite, as it was when
// the pass started.
type cleanerCandidate struct {
	seg      *segment
	base     int64
	size     int64
	nextBase int64
	// aborted is the segment's aborted-transaction index at the start.
	aborted []AbortedTxn
}

// compact runs one log-cleaner pass over a cleanup.policy=compact partition:
// for every key only the record with the highest offset survives; a
// tombstone (null value) survives delete.retention.ms after the pass that
// first saw it (Kafka's KIP-534 delete horizon, kept in the batch header),
// then goes too. Offsets never change: surviving records keep theirs, and
// rewritten batches keep their base offset and lastOffsetDelta. The active
// segment, the segment holding the recovery point and everything after it
// are left alone, and so is everything from the last stable offset on.
//
// Transactions follow Kafka's cleaner: records of aborted transactions are
// removed (and never map a key); a COMMIT or ABORT marker stays while any
// batch of its transaction is left, then, like a tombstone, for
// delete.retention.ms more; an ABORT marker's index entry stays with it.
//
// Segments are read and rewritten without holding the partition lock; the
// lock is taken only to swap each rewritten file in, after checking that the
// segment did not change meanwhile (retention, truncation).
func (p *Partition) compact(ctx context.Context) error {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil
	}
	var cands []cleanerCandidate
	lso := p.lastStableOffsetLocked()
	for i := 0; i+1 < len(p.segments); i++ {
		s, next := p.segments[i], p.segments[i+1]
		// Only segments wholly before the recovery point's segment: that
		// one must keep its byte positions, which the recovery point
		// names, and everything after it may still be unsynced. And only
		// below the last stable offset, where every transaction is decided.
		if next.base > p.recovery.offset || s.base >= p.recovery.segment || next.base > lso {
			break
		}
		cands = append(cands, cleanerCandidate{seg: s, base: s.base, size: s.size, nextBase: next.base,
			aborted: append([]AbortedTxn(nil), s.txn.entries...)})
	}
	var aborted []AbortedTxn
	if len(cands) > 0 {
		aborted = collectAborted(nil, p.segments, cands[0].base, cands[len(cands)-1].nextBase)
	}
	cleanedTo, horizon := p.cleanedTo, p.nextHorizon
	deleteRetention := p.cfg.DeleteRetentionMs.Milliseconds()
	dirtyRatio := p.cfg.MinCleanableDirtyRatio
	p.mu.RUnlock()
	now := p.store.opts.Now().UnixMilli()
	if len(cands) == 0 {
		return nil
	}
	// As Kafka's min.cleanable.dirty.ratio: a pass rewrites the whole
	// cleanable log, so it runs when enough of it is new since the last
	// pass, or when kept tombstones are due to go.
	var total, dirty int64
	for _, c := range cands {
		total += c.size
		if c.nextBase > cleanedTo {
			dirty += c.size
		}
	}
	horizonDue := horizon > 0 && now >= horizon
	if !horizonDue && (dirty == 0 || float64(dirty) < dirtyRatio*float64(total)) {
		return nil
	}

	// Pass 1: the latest offset of every key written since the last pass
	// (older keys were already reduced to their latest record), and each
	// producer's last data batch and last marker in the whole cleanable
	// range.
	latest := make(map[keyHash]int64)
	keys := p.store.takeKeyHasher()
	defer p.store.putKeyHasher(keys)
	last := lastBatches{data: make(map[int64]int64), marker: make(map[int64]int64)}
	txns := newTxnCleaner(aborted)
	mapped := 0
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return err
		}
		isDirty := c.nextBase > cleanedTo
		err := p.forEachCandidateBatch(c, isDirty, func(h *recordbatch.Header, data []byte) error {
			last.note(h)
			if h.IsControl() {
				txns.onControl(h, data)
				return nil
			}
			if _, aborted := txns.onData(h); aborted || !isDirty {
				return nil // aborted records map no key
			}
			return keys.scan(h, data, false, func(r *recordbatch.RecordInfo, key keyHash) {
				if !r.NullKey {
					latest[key] = h.BaseOffset + int64(r.OffsetDelta)
				}
			})
		})
		if err != nil {
			return err
		}
		mapped++
		if len(latest) > maxCleanerKeys {
			// The segments mapped so far can be cleaned correctly (every key
			// they hold is in the map); the rest wait for the next pass.
			break
		}
	}
	cands = cands[:mapped]

	// Pass 2: rewrite each segment with its surviving records.
	nextHorizon := int64(0)
	txns = newTxnCleaner(aborted)
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return err
		}
		hz, err := p.cleanSegment(c, cleanerRules{latest: latest, keys: keys, last: last, txns: txns, now: now, deleteRetention: deleteRetention})
		if err != nil {
			return err
		}
		if hz > 0 && (nextHorizon == 0 || hz < nextHorizon) {
			nextHorizon = hz
		}
	}
	p.mu.Lock()
	p.cleanedTo = max(p.cleanedTo, cands[len(cands)-1].nextBase)
	p.nextHorizon = nextHorizon
	p.mu.Unlock()
	return nil
}

// forEachCandidateBatch reads a candidate segment through its own file
// handle (the segment's may be closed by retention meanwhile; an unlinked
// file stays readable).
// With withData false only headers are read (data is nil).
func (p *Partition) forEachCandidateBatch(c cleanerCandidate, withData bool, fn func(h *recordbatch.Header, data []byte) error) error {
	f, err := os.Open(c.seg.logPath())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // deleted by retention since the pass began
		}
		return fmt.Errorf("cleaner opening %s: %w", c.seg.logPath(), err)
	}
	defer f.Close()
	reader := &segment{dir: c.seg.dir, base: c.base, file: f}
	var ferr error
	stop, err := reader.scan(0, c.size, withData, func(h *recordbatch.Header, _ int64, data []byte) {
		if ferr == nil {
			ferr = fn(h, data)
		}
	})
	if err != nil {
		return err
	}
	if ferr != nil {
		return ferr
	}
	if stop.reason != nil {
		return fmt.Errorf("cleaner reading %s at byte %d: %w", c.seg.logPath(), stop.end, stop.reason)
	}
	return nil
}

func forEachRecordOf(h *recordbatch.Header, data []byte, fn func(r *recordbatch.Record) error) error {
	records, err := recordbatch.Decompress(h.Codec(), data[recordbatch.HeaderSize:])
	if err != nil {
		return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
	}
	if err := recordbatch.ForEachRecord(records, fn); err != nil {
		return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
	}
	return nil
}

// keyHash identifies a record key in a pass's key map: the first 16 bytes
// of the key's SHA-256, as Kafka's cleaner keys its offset map by a digest
// (MD5). The key itself is streamed through the hash, never held, so a
// record whose key inflates to MiBs costs the map 16 bytes; two keys
// sharing a hash (one pair expected per 2^64 keys) would lose the older
// one's record.
type keyHash [16]byte

// keyHasher hashes the keys of a batch's streamed records.
type keyHasher struct {
	h   hash.Hash
	sum [sha256.Size]byte
	// inflated keeps a compressed batch's records as the cleaner's first
	// read of it inflates them, up to cleanerKeptInflated bytes, so that
	// rewriting a small batch does not inflate it again.
	inflated cappedBuffer
}

// cleanerKeptInflated bounds the inflated records a cleaner pass keeps of
// one batch to rewrite it: a producer's batch (batch.size, 16 KiB by
// default; max.message.bytes, 1 MiB, as sent) is rewritten from memory,
// a larger one (up to MaxDecompressedBytes inflated from a few KB) is
// inflated again instead. Inflating again cost gzip 25-30 % more CPU per
// GiB cleaned (docs/benchmarks.md).
const cleanerKeptInflated = 1 << 20

func newKeyHasher() *keyHasher {
	return &keyHasher{h: sha256.New(), inflated: cappedBuffer{max: cleanerKeptInflated}}
}

// takeKeyHasher returns the key hasher a finished pass left, else a new
// one. Passes run one partition at a time (RunCleaner), so one is kept:
// its keep-buffer, grown to cleanerKeptInflated once, is not grown again
// from empty on every pass of a compressed batch (5 MB of the 7.3 MB a
// bomb's pass allocated, docs/benchmarks.md). A pass running beside
// another (tests, admin tools) makes its own.
func (st *Store) takeKeyHasher() *keyHasher {
	select {
	case k := <-st.cleanerKeys:
		return k
	default:
		return newKeyHasher()
	}
}

// putKeyHasher keeps k for the next pass, or drops it when one is kept.
func (st *Store) putKeyHasher(k *keyHasher) {
	k.inflated.reset()
	select {
	case st.cleanerKeys <- k:
	default:
	}
}

// cappedBuffer collects what is written to it until it would pass max,
// then drops it all and reports overflow; writes never fail.
type cappedBuffer struct {
	b        []byte
	max      int
	overflow bool
}

func (c *cappedBuffer) reset() { c.b, c.overflow = c.b[:0], false }

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if !c.overflow && len(c.b)+len(p) <= c.max {
		if c.b == nil {
			// All of max at once: appending from empty allocated each
			// doubling up to it (about twice max) and often ended short of
			// it, to grow again on the next pass's larger batch.
			c.b = make([]byte, 0, c.max)
		}
		c.b = append(c.b, p...)
	} else {
		c.b, c.overflow = c.b[:0], true
	}
	return len(p), nil
}

// kept returns the inflated records the last scan kept, nil if none.
func (c *cappedBuffer) kept() []byte {
	if c.overflow || c.b == nil {
		return nil
	}
	return c.b
}

// scan streams data's records (recordbatch.ScanKeys), calling fn with each
// record's framing and its key's hash (zero for a null key). With keep, a
// compressed batch's inflated records are kept in k.inflated if they fit.
func (k *keyHasher) scan(h *recordbatch.Header, data []byte, keep bool, fn func(r *recordbatch.RecordInfo, key keyHash)) error {
	k.h.Reset()
	var tee io.Writer
	k.inflated.reset()
	if keep {
		tee = &k.inflated
	}
	err := recordbatch.ScanKeys(h, data, k.h, tee, func(r *recordbatch.RecordInfo) error {
		var key keyHash
		if !r.NullKey {
			copy(key[:], k.h.Sum(k.sum[:0]))
		}
		k.h.Reset()
		fn(r, key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
	}
	return nil
}

// cleanerRules is what a pass decides batches by.
type cleanerRules struct {
	latest          map[keyHash]int64
	keys            *keyHasher
	last            lastBatches
	txns            *txnCleaner
	now             int64
	deleteRetention int64
}

// cleanSegment rewrites one segment. It returns the earliest delete horizon
// of the tombstones and markers it kept (0 if none).
func (p *Partition) cleanSegment(c cleanerCandidate, rules cleanerRules) (horizon int64, err error) {
	out, err := p.newCleanedSegment(c)
	if err != nil {
		return 0, err
	}
	keepHorizon := func(hz int64) {
		if hz > 0 && (horizon == 0 || hz < horizon) {
			horizon = hz
		}
	}
	changed := false
	keptMarkers := make(map[int64]bool)
	err = p.forEachCandidateBatch(c, true, func(h *recordbatch.Header, data []byte) error {
		if h.IsControl() {
			nb, hz, err := cleanMarker(h, data, rules)
			if err != nil {
				return err
			}
			keepHorizon(hz)
			if nb == nil {
				changed = true
				return nil
			}
			keptMarkers[h.BaseOffset] = true
			if len(nb) != len(data) || &nb[0] != &data[0] {
				changed = true
				nh, err := recordbatch.ParseHeader(nb)
				if err != nil {
					return fmt.Errorf("re-encoded marker at offset %d: %w", h.BaseOffset, err)
				}
				return out.add(&nh, nb)
			}
			return out.add(h, data)
		}
		run, aborted := rules.txns.onData(h)
		nb, hz, err := cleanBatch(h, data, rules, rules.last.isLastData(h), aborted)
		if err != nil {
			return err
		}
		keepHorizon(hz)
		if nb == nil {
			changed = true
			return nil
		}
		if run != nil {
			run.kept = true
		}
		if len(nb) == len(data) && &nb[0] == &data[0] {
			return out.add(h, data)
		}
		changed = true
		nh, err := recordbatch.ParseHeader(nb)
		if err != nil {
			return fmt.Errorf("re-encoded batch at offset %d: %w", h.BaseOffset, err)
		}
		return out.add(&nh, nb)
	})
	if err != nil || !changed {
		out.discard()
		return horizon, err
	}
	// The aborts indexed here stay indexed while their marker stays.
	for _, t := range c.aborted {
		if keptMarkers[t.LastOffset] {
			out.seg.txn.entries = append(out.seg.txn.entries, t)
		}
	}
	return horizon, p.swapCleaned(c, out)
}

// lastBatches are each producer's last data batch and last marker in the
// cleanable range (base offsets). The cleaner keeps them, emptied if need
// be, so the producer's sequence, epoch and coordinator epoch can be
// rebuilt from the log (Kafka keeps the last batch of active producers).
type lastBatches struct {
	data, marker map[int64]int64
}

func (l lastBatches) note(h *recordbatch.Header) {
	if h.ProducerID < 0 {
		return
	}
	if h.IsControl() {
		l.marker[h.ProducerID] = h.BaseOffset
	} else {
		l.data[h.ProducerID] = h.BaseOffset
	}
}

func (l lastBatches) isLastData(h *recordbatch.Header) bool {
	off, ok := l.data[h.ProducerID]
	return h.ProducerID >= 0 && ok && off == h.BaseOffset
}

func (l lastBatches) isLastMarker(h *recordbatch.Header) bool {
	off, ok := l.marker[h.ProducerID]
	return h.ProducerID >= 0 && ok && off == h.BaseOffset
}

// cleanMarker decides a control batch: data itself to keep it as it is,
// a copy carrying a delete horizon, or nil to drop it. A marker may go once
// no batch of its transaction is left and delete.retention.ms has passed
// since the pass that removed the last of them set its horizon, so a
// consumer that read the transaction's records also reads its end. (Kafka
// sets the horizon one pass later; passes here run only when data is dirty
// or a horizon is due, so the horizon is set in the pass that empties the
// transaction.) A producer's last marker stays for its epochs.
func cleanMarker(h *recordbatch.Header, data []byte, rules cleanerRules) ([]byte, int64, error) {
	discardable := rules.txns.onControl(h, data)
	if !discardable || rules.last.isLastMarker(h) {
		return data, 0, nil
	}
	if h.HasDeleteHorizon() {
		if rules.now >= h.BaseTimestamp {
			return nil, 0, nil
		}
		return data, h.BaseTimestamp, nil
	}
	horizon := rules.now + rules.deleteRetention
	nb, err := withDeleteHorizon(h, data, horizon)
	return nb, horizon, err
}

// withDeleteHorizon re-encodes a batch with the KIP-534 delete horizon in
// baseTimestamp, its records' timestamps re-based so they do not change.
func withDeleteHorizon(h *recordbatch.Header, data []byte, horizon int64) ([]byte, error) {
	var records []byte
	err := forEachRecordOf(h, data, func(r *recordbatch.Record) error {
		delta := h.BaseTimestamp + r.TimestampDelta - horizon
		if delta > math.MaxInt64/2 || delta < math.MinInt64/2 {
			return fmt.Errorf("batch at offset %d: timestamp delta out of range", h.BaseOffset)
		}
		records = recordbatch.AppendRecord(records, r, delta)
		return nil
	})
	if err != nil {
		return nil, err
	}
	nh := *h
	nh.Attributes |= recordbatch.DeleteHorizonBit
	nh.BaseTimestamp = horizon
	nb, err := recordbatch.Encode(nh, records)
	if err != nil {
		return nil, fmt.Errorf("re-encoding batch at offset %d: %w", h.BaseOffset, err)
	}
	return nb, nil
}

// txnCleaner follows transactions through the batches of a cleaner pass in
// offset order, as Kafka's CleanedTransactionMetadata does: it knows, from
// the aborted-transaction indexes, which transactional batches were
// aborted, and whether a marker's transaction still has a batch once the
// pass is done (the cleaner reports each batch it keeps).
type txnCleaner struct {
	pending   []AbortedTxn // by first offset, not reached yet
	aborted   map[int64]*txnRun
	committed map[int64]*txnRun // transactional data since the producer's last marker, not aborted
}

// txnRun is one transaction's batches in the pass so far.
type txnRun struct {
	kept bool // one of them stays in the log
}

func newTxnCleaner(aborted []AbortedTxn) *txnCleaner {
	pending := append([]AbortedTxn(nil), aborted...)
	sort.Slice(pending, func(i, j int) bool { return pending[i].FirstOffset < pending[j].FirstOffset })
	return &txnCleaner{pending: pending, aborted: make(map[int64]*txnRun), committed: make(map[int64]*txnRun)}
}

func (tc *txnCleaner) reach(offset int64) {
	for len(tc.pending) > 0 && tc.pending[0].FirstOffset <= offset {
		t := tc.pending[0]
		tc.pending = tc.pending[1:]
		if _, ok := tc.aborted[t.ProducerID]; !ok {
			tc.aborted[t.ProducerID] = &txnRun{}
		}
	}
}

// onData returns the transaction a data batch belongs to (nil when it is
// not transactional) and whether that transaction was aborted.
func (tc *txnCleaner) onData(h *recordbatch.Header) (run *txnRun, aborted bool) {
	tc.reach(h.LastOffset())
	if !h.IsTransactional() {
		return nil, false
	}
	if r := tc.aborted[h.ProducerID]; r != nil {
		return r, true
	}
	r := tc.committed[h.ProducerID]
	if r == nil {
		r = &txnRun{}
		tc.committed[h.ProducerID] = r
	}
	return r, false
}

// onControl reports whether a control batch may be removed once its delete
// horizon has passed: an empty one (its record was cleaned already), or a
// marker none of whose transaction's batches stays. Other control records
// stay.
func (tc *txnCleaner) onControl(h *recordbatch.Header, data []byte) bool {
	tc.reach(h.LastOffset())
	typ, m, ok, err := recordbatch.ParseControl(h, data)
	switch {
	case err != nil:
		return false
	case !ok:
		return true
	case typ != recordbatch.ControlAbort && typ != recordbatch.ControlCommit:
		return false
	}
	runs := tc.aborted
	if m.Commit {
		runs = tc.committed
	}
	r := runs[h.ProducerID]
	delete(runs, h.ProducerID)
	return r == nil || !r.kept
}

// cleanedSegment is the output of compacting one segment, streamed to
// ".cleaned" files so memory stays bounded whatever the segment size.
type cleanedSegment struct {
	seg      *segment
	w        *bufio.Writer
	interval int32
}

func (p *Partition) newCleanedSegment(c cleanerCandidate) (*cleanedSegment, error) {
	seg := &segment{dir: c.seg.dir, base: c.base, next: c.base, maxTimestamp: -1, created: c.seg.created}
	tmp := seg.logPath() + cleanedSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", tmp, err)
	}
	seg.file = f
	return &cleanedSegment{seg: seg, w: bufio.NewWriterSize(f, 1<<20), interval: p.Config().IndexIntervalBytes}, nil
}

// add appends one batch (copied; data may be reused by the caller).
func (cs *cleanedSegment) add(h *recordbatch.Header, data []byte) error {
	pos := cs.seg.size
	if _, err := cs.w.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", cs.seg.logPath()+cleanedSuffix, err)
	}
	cs.seg.track(h, pos, cs.interval)
	return nil
}

// discard removes the output files.
func (cs *cleanedSegment) discard() {
	cs.seg.file.Close()
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		os.Remove(filepath.Join(cs.seg.dir, segmentName(cs.seg.base)+suffix+cleanedSuffix))
	}
}

// cleanBatch returns the batch with only its surviving records: data
// itself when all survive and nothing changes, nil when none survive (and
// the batch need not be kept for its producer's sequence state), else a
// re-encoded batch. An aborted batch keeps no record.
//
// The records are streamed, never inflated whole: a first read decides
// which survive (a bit per record) and whether the batch changes, a second
// one, only when it does, copies the survivors into the new batch (from
// the records the first read kept when they are at most
// cleanerKeptInflated, else inflating them again). The first read must
// come first: whether a tombstone survives sets the new batch's base
// timestamp, which every record's timestamp delta is relative to.
func cleanBatch(h *recordbatch.Header, data []byte, rules cleanerRules, lastOfProducer, aborted bool) ([]byte, int64, error) {
	var keep []uint64 // bit i: the batch's i-th record survives
	total, kept, tombstones := 0, 0, 0
	firstKeptTs := int64(0)
	horizonPassed := h.HasDeleteHorizon() && rules.now >= h.BaseTimestamp
	compressed := h.Codec() != recordbatch.CodecNone
	err := rules.keys.scan(h, data, compressed, func(r *recordbatch.RecordInfo, key keyHash) {
		i := total
		total++
		if i%64 == 0 {
			keep = append(keep, 0)
		}
		off := h.BaseOffset + int64(r.OffsetDelta)
		if aborted || (!r.NullKey && rules.latest[key] > off) {
			return // aborted, or a newer record has this key
		}
		if r.NullValue {
			if horizonPassed {
				return
			}
			tombstones++
		}
		if kept == 0 {
			firstKeptTs = h.BaseTimestamp + r.TimestampDelta
		}
		kept++
		keep[i/64] |= 1 << (i % 64)
	})
	if err != nil {
		return nil, 0, err
	}
	needHorizon := tombstones > 0 && !h.HasDeleteHorizon()
	horizon := int64(0)
	switch {
	case tombstones > 0 && h.HasDeleteHorizon():
		horizon = h.BaseTimestamp
	case needHorizon:
		horizon = rules.now + rules.deleteRetention
	}
	if kept == total && !needHorizon && (total > 0 || lastOfProducer) {
		return data, horizon, nil
	}
	if kept == 0 && !lastOfProducer {
		return nil, 0, nil
	}
	// Re-encode. Records keep their offset deltas; their timestamps are
	// re-based when the batch starts carrying a delete horizon in
	// baseTimestamp (KIP-534). An empty batch is kept for an idempotent
	// producer's last batch so its sequence state survives a rebuild.
	nh := *h
	nh.RecordCount = int32(kept)
	if needHorizon {
		nh.Attributes |= recordbatch.DeleteHorizonBit
		nh.BaseTimestamp = horizon
	} else if tombstones == 0 && h.HasDeleteHorizon() {
		// No tombstones left: restore a normal first timestamp.
		nh.Attributes &^= recordbatch.DeleteHorizonBit
		if kept > 0 {
			nh.BaseTimestamp = firstKeptTs
		}
	}
	var inflated []byte
	if compressed {
		inflated = rules.keys.inflated.kept()
	}
	i := 0
	nb, err := recordbatch.RewriteRecords(h, data, inflated, nh, func(r *recordbatch.RecordInfo) (bool, int64, error) {
		j := i
		i++
		if j >= total || keep[j/64]&(1<<(j%64)) == 0 {
			return false, 0, nil
		}
		delta := h.BaseTimestamp + r.TimestampDelta - nh.BaseTimestamp
		if delta > math.MaxInt64/2 || delta < math.MinInt64/2 {
			return false, 0, fmt.Errorf("batch at offset %d: timestamp delta out of range", h.BaseOffset)
		}
		return true, delta, nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("re-encoding batch at offset %d: %w", h.BaseOffset, err)
	}
	return nb, horizon, nil
}

// swapCleaned completes the cleaned segment and swaps it in place of the
// old one. Crash safety: the new files are complete and fsynced under
// ".cleaned" names before anything is replaced; the old index files are
// removed before the log is renamed over the old one, so a crash at any
// step leaves either the old log or the new log, and at worst a missing
// index, which start-up rebuilds from the log. Leftover ".cleaned" files are
// deleted at start-up.
func (p *Partition) swapCleaned(c cleanerCandidate, out *cleanedSegment) error {
	cleaned := out.seg
	logPath := c.seg.logPath()
	tmpLog := logPath + cleanedSuffix
	fail := func(err error) error {
		out.discard()
		return err
	}
	if err := out.w.Flush(); err != nil {
		return fail(fmt.Errorf("writing %s: %w", tmpLog, err))
	}
	cleaned.next = c.nextBase
	if err := cleaned.index.writeFiles(cleaned.indexPath()+cleanedSuffix, cleaned.timeIndexPath()+cleanedSuffix, true); err != nil {
		return fail(err)
	}
	if err := cleaned.file.Sync(); err != nil {
		return fail(fmt.Errorf("fsync %s: %w", tmpLog, err))
	}
	if n := len(cleaned.txn.entries); n > 0 {
		var b []byte
		for _, t := range cleaned.txn.entries {
			b = appendTxnEntry(b, t)
		}
		if err := writeIndexTail(cleaned.txnIndexPath()+cleanedSuffix, 0, b, true); err != nil {
			return fail(err)
		}
		cleaned.txn.onDisk, cleaned.txn.synced = n, n
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	idx := -1
	for i, s := range p.segments {
		if s == c.seg {
			idx = i
		}
	}
	if p.closed || idx < 0 || idx == len(p.segments)-1 || c.seg.size != c.size {
		return fail(nil) // the segment changed meanwhile; a later pass retries
	}
	old := c.seg
	if cleaned.size == 0 && idx > 0 {
		// Nothing survived: drop the segment; reads step over the gap. The
		// first segment stays, even empty: its base offset is where the log
		// starts, and compaction must not move the log start (a consumer
		// inside the gap reads on from the next record, as in Kafka).
		out.discard()
		p.segments = append(p.segments[:idx], p.segments[idx+1:]...)
		p.deleteSegmentLocked(old, "compacted to nothing")
		return nil
	}
	// The aborted-transaction index is replaced first, in one rename: the
	// new one lacks only entries whose marker the new log drops, which are
	// those of transactions with no batch left in the old log either, so
	// it is right for whichever log a crash leaves. (A missing one would
	// read as "no aborts", so it is never removed before its successor is
	// in place.)
	if len(cleaned.txn.entries) > 0 {
		if err := os.Rename(cleaned.txnIndexPath()+cleanedSuffix, old.txnIndexPath()); err != nil {
			return fail(fmt.Errorf("installing compacted transaction index: %w", err))
		}
	} else if err := os.Remove(old.txnIndexPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(fmt.Errorf("removing %s: %w", old.txnIndexPath(), err))
	}
	old.txn = cleaned.txn
	for _, path := range []string{old.indexPath(), old.timeIndexPath()} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(fmt.Errorf("removing %s: %w", path, err))
		}
	}
	if err := os.Rename(tmpLog, logPath); err != nil {
		return fail(fmt.Errorf("renaming %s: %w", tmpLog, err))
	}
	// From here the new log is in place; an index that fails to move is
	// rebuilt at the next start (the in-memory one is complete).
	for _, path := range []string{cleaned.indexPath(), cleaned.timeIndexPath()} {
		if err := os.Rename(path+cleanedSuffix, path); err != nil {
			p.store.log.Warn("installing compacted index; it will be rebuilt at start-up", "file", path, "err", err)
		}
	}
	if err := syncDir(p.dir); err != nil {
		p.store.log.Warn("syncing directory after compaction", "partition", p.dir, "err", err)
	}
	p.closeReplacedSegmentLocked(old)
	p.segments[idx] = cleaned
	p.store.log.Debug("compacted segment", "segment", logPath, "bytes_before", c.size, "bytes_after", cleaned.size)
	return nil
}
