package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// The aborted-transaction index of a segment (Kafka's .txnindex): one entry
// per ABORT marker in the segment that ended a transaction with data here,
// so read_committed fetches can tell consumers which producers' records to
// drop without reading the log. Entries are 34 bytes, big endian:
//
//	version int16 (0), producerId int64, firstOffset int64,
//	lastOffset int64 (the marker), lastStableOffset int64
//
// in marker order. lastStableOffset is the partition's last stable offset
// once the marker is written (ignoring the high watermark): a search for
// the transactions overlapping [from, to) may stop at the first entry whose
// lastStableOffset is >= to, since every later abort ends a transaction
// that started at or after it.
//
// The index is derived data. Entries are written to the file when the
// marker is appended and fsynced with the log by the flush policy, the
// next roll or checkpoint; the recovery point and the producer-state
// snapshot (which are written after those fsyncs) promise only the entries
// below them, and recovery rebuilds the rest from the log.

const (
	txnIndexSuffix  = ".txnindex"
	txnEntrySize    = 34
	txnIndexVersion = 0
)

// AbortedTxn is one aborted transaction of the partition.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	// LastOffset is the offset of the ABORT marker.
	LastOffset int64
	// LastStableOffset is the partition's last stable offset right after
	// the marker (high watermark aside).
	LastStableOffset int64
}

// txnIndex is a segment's aborted transactions, in memory and in its file.
type txnIndex struct {
	entries []AbortedTxn
	// onDisk entries are in the file; synced of them are fsynced.
	onDisk, synced int
}

func (s *segment) txnIndexPath() string {
	return filepath.Join(s.dir, segmentName(s.base)+txnIndexSuffix)
}

// add records an abort and writes it to the file (not fsynced). A failed
// write is retried by the next flush of the index: the entry is kept in
// memory, which is what readers use.
func (s *segment) addAborted(t AbortedTxn) error {
	s.txn.entries = append(s.txn.entries, t)
	return s.writeTxnIndex(false)
}

// writeTxnIndex writes the entries not yet in the file, fsyncing the file
// when sync is set or when entries are written. With nothing to write and
// sync set, only entries written but not yet synced are synced.
func (s *segment) writeTxnIndex(sync bool) error {
	ix := &s.txn
	if ix.onDisk == len(ix.entries) && (!sync || ix.synced == ix.onDisk) {
		return nil
	}
	b := make([]byte, 0, (len(ix.entries)-ix.onDisk)*txnEntrySize)
	for _, t := range ix.entries[ix.onDisk:] {
		b = appendTxnEntry(b, t)
	}
	if err := writeIndexTail(s.txnIndexPath(), int64(ix.onDisk*txnEntrySize), b, sync); err != nil {
		return err
	}
	ix.onDisk = len(ix.entries)
	if sync {
		ix.synced = ix.onDisk
	}
	return nil
}

// truncateTxnIndex drops entries whose marker is at or past offset, in
// memory and in the file.
func (s *segment) truncateTxnIndex(offset int64) error {
	ix := &s.txn
	n := len(ix.entries)
	for n > 0 && ix.entries[n-1].LastOffset >= offset {
		n--
	}
	if n == len(ix.entries) {
		return nil
	}
	ix.entries = ix.entries[:n]
	ix.onDisk = min(ix.onDisk, n)
	ix.synced = min(ix.synced, n)
	if n == 0 {
		if err := os.Remove(s.txnIndexPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", s.txnIndexPath(), err)
		}
		return nil
	}
	// Cut the file back to the entries kept (and rewrite any not there).
	return writeIndexTail(s.txnIndexPath(), int64(ix.onDisk*txnEntrySize), nil, false)
}

func appendTxnEntry(b []byte, t AbortedTxn) []byte {
	b = binary.BigEndian.AppendUint16(b, txnIndexVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(t.ProducerID))
	b = binary.BigEndian.AppendUint64(b, uint64(t.FirstOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(t.LastOffset))
	return binary.BigEndian.AppendUint64(b, uint64(t.LastStableOffset))
}

// loadTxnIndex reads a segment's .txnindex, checking each entry is
// plausible for a segment holding offsets [base, next): version 0, a marker
// inside the segment, markers increasing, a transaction that starts at or
// before its marker, a last stable offset not past the marker's successor.
// A missing file is an empty index. In the last segment, entries for
// markers at or past next (the log end) are of a tail that recovery cut:
// they are dropped and the file cut after the others. Anything else
// implausible is an error: the entries cannot be rebuilt from this segment
// alone.
func loadTxnIndex(path string, base, next int64, last bool) (txnIndex, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return txnIndex{}, nil
	}
	if err != nil {
		return txnIndex{}, fmt.Errorf("reading %s: %w", path, err)
	}
	end := next
	if last {
		end = math.MaxInt64
	}
	entries, err := decodeTxnEntries(b, base, end)
	if err != nil {
		return txnIndex{}, fmt.Errorf("transaction index %s: %w", path, err)
	}
	keep := len(entries)
	for keep > 0 && entries[keep-1].LastOffset >= next {
		keep--
	}
	if keep < len(entries) {
		if err := writeIndexTail(path, int64(keep*txnEntrySize), nil, false); err != nil {
			return txnIndex{}, err
		}
	}
	return txnIndex{entries: entries[:keep], onDisk: keep, synced: keep}, nil
}

// resetTxnIndex empties a segment's index, in memory and on disk, before
// it is rebuilt from the log.
func (s *segment) resetTxnIndex() error {
	s.txn = txnIndex{}
	if err := os.Remove(s.txnIndexPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", s.txnIndexPath(), err)
	}
	return nil
}

func decodeTxnEntries(b []byte, base, end int64) ([]AbortedTxn, error) {
	if len(b)%txnEntrySize != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of entries", len(b))
	}
	out := make([]AbortedTxn, 0, len(b)/txnEntrySize)
	for i := 0; i < len(b); i += txnEntrySize {
		e := b[i : i+txnEntrySize]
		if v := binary.BigEndian.Uint16(e); v != txnIndexVersion {
			return nil, fmt.Errorf("entry %d has version %d", i/txnEntrySize, v)
		}
		t := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(e[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(e[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(e[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(e[26:])),
		}
		switch {
		case t.ProducerID < 0 || t.FirstOffset < 0 || t.FirstOffset > t.LastOffset:
			return nil, fmt.Errorf("entry %d: producer %d, offsets %d-%d", i/txnEntrySize, t.ProducerID, t.FirstOffset, t.LastOffset)
		case t.LastOffset < base || t.LastOffset >= end:
			return nil, fmt.Errorf("entry %d: marker at %d outside the segment [%d, %d)", i/txnEntrySize, t.LastOffset, base, end)
		case t.LastStableOffset < 0 || t.LastStableOffset > t.LastOffset+1:
			return nil, fmt.Errorf("entry %d: last stable offset %d after marker %d", i/txnEntrySize, t.LastStableOffset, t.LastOffset)
		case len(out) > 0 && t.LastOffset <= out[len(out)-1].LastOffset:
			return nil, fmt.Errorf("entry %d: marker %d not after %d", i/txnEntrySize, t.LastOffset, out[len(out)-1].LastOffset)
		}
		out = append(out, t)
	}
	return out, nil
}

// collectAborted appends the aborted transactions overlapping [from, to)
// (some of their data lies in that range: they began before to and their
// marker is at or after from) found in the indexes of segs, which start
// with the segment holding from (Kafka's collectAbortedTxns). It stops early
// once an entry's last stable offset shows no later abort can overlap.
func collectAborted(out []AbortedTxn, segs []*segment, from, to int64) []AbortedTxn {
	for _, s := range segs {
		for _, t := range s.txn.entries {
			if t.LastOffset >= from && t.FirstOffset < to {
				out = append(out, t)
			}
			if t.LastStableOffset >= to {
				return out
			}
		}
	}
	return out
}
