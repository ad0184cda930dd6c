package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
)

// Sparse indexes of one segment, kept in memory and written to the
// segment's .index and .timeindex files (formats in docs/broker-disk-format.md).

const (
	offsetEntrySize = 8  // relative offset uint32, file position uint32
	timeEntrySize   = 12 // timestamp int64, relative offset uint32
)

type offsetEntry struct {
	relOffset uint32 // batch base offset minus the segment base offset
	position  uint32 // byte position of the batch in the .log file
}

type timeEntry struct {
	timestamp int64  // largest batch maxTimestamp seen so far in the segment
	relOffset uint32 // base offset (relative) of the batch that raised it
}

// segmentIndex is the pair of sparse indexes of a segment.
type segmentIndex struct {
	offsets []offsetEntry
	times   []timeEntry
	// entries already in the files; the rest are appended at the next flush.
	offsetsOnDisk, timesOnDisk int
}

// lookup returns the position of the last indexed batch whose base offset is
// <= rel; reading forward from it finds any offset >= that batch.
func (ix *segmentIndex) lookup(rel uint32) int64 {
	i := sort.Search(len(ix.offsets), func(i int) bool { return ix.offsets[i].relOffset > rel })
	if i == 0 {
		return 0
	}
	return int64(ix.offsets[i-1].position)
}

// lookupTime returns the relative offset from which a forward scan finds the
// first batch whose maxTimestamp is >= ts: the last entry whose timestamp is
// strictly below ts (every batch before it is below ts too).
func (ix *segmentIndex) lookupTime(ts int64) (uint32, bool) {
	i := sort.Search(len(ix.times), func(i int) bool { return ix.times[i].timestamp >= ts })
	if i == 0 {
		return 0, false
	}
	return ix.times[i-1].relOffset, true
}

// truncateAt drops entries at or past file position pos.
func (ix *segmentIndex) truncateAt(pos int64, maxRel uint32) {
	i := sort.Search(len(ix.offsets), func(i int) bool { return int64(ix.offsets[i].position) >= pos })
	ix.offsets = ix.offsets[:i]
	j := sort.Search(len(ix.times), func(j int) bool { return ix.times[j].relOffset >= maxRel })
	ix.times = ix.times[:j]
	ix.offsetsOnDisk = min(ix.offsetsOnDisk, len(ix.offsets))
	ix.timesOnDisk = min(ix.timesOnDisk, len(ix.times))
}

// writeFiles appends the entries not yet on disk to the index files,
// rewriting a file that is longer than expected, and fsyncs them when sync.
func (ix *segmentIndex) writeFiles(offsetPath, timePath string, sync bool) error {
	ob := make([]byte, 0, (len(ix.offsets)-ix.offsetsOnDisk)*offsetEntrySize)
	for _, e := range ix.offsets[ix.offsetsOnDisk:] {
		ob = binary.BigEndian.AppendUint32(ob, e.relOffset)
		ob = binary.BigEndian.AppendUint32(ob, e.position)
	}
	if err := writeIndexTail(offsetPath, int64(ix.offsetsOnDisk*offsetEntrySize), ob, sync); err != nil {
		return err
	}
	ix.offsetsOnDisk = len(ix.offsets)
	tb := make([]byte, 0, (len(ix.times)-ix.timesOnDisk)*timeEntrySize)
	for _, e := range ix.times[ix.timesOnDisk:] {
		tb = binary.BigEndian.AppendUint64(tb, uint64(e.timestamp))
		tb = binary.BigEndian.AppendUint32(tb, e.relOffset)
	}
	if err := writeIndexTail(timePath, int64(ix.timesOnDisk*timeEntrySize), tb, sync); err != nil {
		return err
	}
	ix.timesOnDisk = len(ix.times)
	return nil
}

func writeIndexTail(path string, at int64, b []byte, sync bool) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening index %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(at); err != nil {
		return fmt.Errorf("truncating index %s: %w", path, err)
	}
	if _, err := f.WriteAt(b, at); err != nil {
		return fmt.Errorf("writing index %s: %w", path, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing index %s: %w", path, err)
		}
	}
	return f.Close()
}

// loadIndexFiles reads a segment's index files and checks they are
// plausible for a log of logSize bytes: whole entries, strictly increasing
// offsets and positions, positions inside the log. ok is false when the
// files are missing or implausible and the index must be rebuilt.
func loadIndexFiles(offsetPath, timePath string, logSize int64) (ix segmentIndex, ok bool) {
	ob, err := os.ReadFile(offsetPath)
	if err != nil || len(ob)%offsetEntrySize != 0 {
		return ix, false
	}
	tb, err := os.ReadFile(timePath)
	if err != nil || len(tb)%timeEntrySize != 0 {
		return ix, false
	}
	ix.offsets = make([]offsetEntry, 0, len(ob)/offsetEntrySize)
	for i := 0; i < len(ob); i += offsetEntrySize {
		e := offsetEntry{relOffset: binary.BigEndian.Uint32(ob[i:]), position: binary.BigEndian.Uint32(ob[i+4:])}
		if int64(e.position) >= logSize {
			return segmentIndex{}, false
		}
		if n := len(ix.offsets); n > 0 && (e.relOffset <= ix.offsets[n-1].relOffset || e.position <= ix.offsets[n-1].position) {
			return segmentIndex{}, false
		}
		ix.offsets = append(ix.offsets, e)
	}
	ix.times = make([]timeEntry, 0, len(tb)/timeEntrySize)
	for i := 0; i < len(tb); i += timeEntrySize {
		e := timeEntry{timestamp: int64(binary.BigEndian.Uint64(tb[i:])), relOffset: binary.BigEndian.Uint32(tb[i+8:])}
		if n := len(ix.times); n > 0 && (e.timestamp <= ix.times[n-1].timestamp || e.relOffset <= ix.times[n-1].relOffset) {
			return segmentIndex{}, false
		}
		ix.times = append(ix.times, e)
	}
	ix.offsetsOnDisk, ix.timesOnDisk = len(ix.offsets), len(ix.times)
	return ix, true
}
