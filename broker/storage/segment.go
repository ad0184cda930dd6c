package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	cleanedSuffix   = ".cleaned"
	// snapshotSuffix names the producer-state snapshot taken when the
	// segment was rolled in, at its base offset.
	snapshotSuffix = ".snapshot"
)

// segment is one file of a partition's log: batches back to back, the base
// offset in its name, with its sparse indexes. The partition's lock guards it.
type segment struct {
	dir  string
	base int64
	file *os.File
	// size is the byte length of the complete batches; readers never look
	// past it, so a batch being written is invisible until it is whole.
	size int64
	// next is the offset after the last batch (base when empty).
	next int64
	// maxTimestamp is the largest batch maxTimestamp (-1 when empty).
	maxTimestamp int64
	// created starts the segment.ms clock: creation time, or after a
	// restart the first batch's timestamp (else the file's modification time).
	created time.Time
	index   segmentIndex
	// txn is the segment's aborted-transaction index.
	txn txnIndex
	// io is held shared by readers while they read the file without the
	// partition lock, and exclusively by close and truncate.
	io sync.RWMutex
	// cuts counts truncations of the file (changed under io held
	// exclusively): a FileSlice made before one may name bytes that are
	// no longer the batches it was made of.
	cuts atomic.Uint64
	// bytesSinceIndex counts bytes appended since the last offset index entry.
	bytesSinceIndex int64
	// writebackFrom is the page-aligned file offset up to which write-back
	// has been started (startWriteback).
	writebackFrom int64
}

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

func (s *segment) logPath() string { return filepath.Join(s.dir, segmentName(s.base)+logSuffix) }
func (s *segment) indexPath() string {
	return filepath.Join(s.dir, segmentName(s.base)+indexSuffix)
}
func (s *segment) timeIndexPath() string {
	return filepath.Join(s.dir, segmentName(s.base)+timeIndexSuffix)
}
func (s *segment) snapshotPath() string {
	return filepath.Join(s.dir, segmentName(s.base)+snapshotSuffix)
}

// parseSegmentName returns the base offset of a "<20 digits>.log" name.
func parseSegmentName(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, logSuffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// createSegment makes a new empty segment file.
func createSegment(dir string, base int64, now time.Time) (*segment, error) {
	s := &segment{dir: dir, base: base, next: base, maxTimestamp: -1, created: now}
	f, err := os.OpenFile(s.logPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating segment %s: %w", s.logPath(), err)
	}
	s.file = f
	for _, p := range []string{s.indexPath(), s.timeIndexPath(), s.txnIndexPath(), s.snapshotPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.Close()
			return nil, fmt.Errorf("removing stale index %s: %w", p, err)
		}
	}
	return s, nil
}

// openSegment opens an existing segment file; its size is the file size
// until recovery or index loading says otherwise.
func openSegment(dir string, base int64) (*segment, error) {
	s := &segment{dir: dir, base: base, next: base, maxTimestamp: -1}
	f, err := os.OpenFile(s.logPath(), os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening segment %s: %w", s.logPath(), err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat segment %s: %w", s.logPath(), err)
	}
	s.file, s.size, s.created = f, st.Size(), st.ModTime()
	s.writebackFrom = s.size &^ 4095 // what is there is recovery's or an earlier round's to sync
	return s, nil
}

// fitsOffset reports whether a batch ending at lastOffset can live in this
// segment: index entries hold offsets relative to the base as uint32, and
// Kafka keeps them within int32.
func (s *segment) fitsOffset(lastOffset int64) bool {
	return lastOffset-s.base <= math.MaxInt32
}

// write appends b (whole batches) at the end of the file. On failure the
// file is cut back so the segment stays as it was.
func (s *segment) write(b []byte) error {
	return s.writev([][]byte{b}, len(b))
}

// maxIovecs is the most buffers one pwritev takes (Linux's IOV_MAX).
const maxIovecs = 1024

// writev writes bufs, total bytes together, at the segment's end: one
// pwrite for one buffer, else pwritev (a connection's pipelined produce
// requests to one partition are written together without first being
// copied into one buffer). A failed or short write is cut back off.
func (s *segment) writev(bufs [][]byte, total int) error {
	var err error
	if len(bufs) == 1 {
		var n int
		n, err = s.file.WriteAt(bufs[0], s.size)
		if err == nil && n != len(bufs[0]) {
			err = io.ErrShortWrite
		}
	} else {
		err = pwritevAll(s.file, bufs, s.size)
	}
	if err != nil {
		if terr := s.file.Truncate(s.size); terr != nil {
			err = errors.Join(err, fmt.Errorf("cutting back %s to %d: %w", s.logPath(), s.size, terr))
		}
		return fmt.Errorf("writing %d bytes to %s: %w", total, s.logPath(), err)
	}
	s.startWriteback(s.size + int64(total))
	return nil
}

// writebackChunk is how many written bytes a segment lets pile up before
// it asks the kernel to start writing them to the device.
var writebackChunk int64 = 256 << 10 // a variable for BenchmarkAppendWriteback

// syncFileRange is unix.SyncFileRange; tests record the ranges.
var syncFileRange = unix.SyncFileRange

// startWriteback asks the kernel to start writing the whole pages written
// since the last call, up to end, once there are writebackChunk of them
// (sync_file_range SYNC_FILE_RANGE_WRITE, which waits for no I/O). The
// sync round's fdatasync then finds most of its pages already written or
// under way instead of starting them all itself, so the produce that
// waits for it waits less. Only whole pages: a partial last page written
// now would be written again once the next batch fills it. It changes
// nothing about durability: the round still fdatasyncs (or syncfs-es) and
// counts nothing durable before that returns; an error here is ignored
// because fdatasync reports the same write-back errors.
func (s *segment) startWriteback(end int64) {
	const pageSize = 4096
	to := end &^ (pageSize - 1)
	if to-s.writebackFrom < writebackChunk {
		return
	}
	rc, err := s.file.SyscallConn()
	if err != nil {
		return
	}
	from := s.writebackFrom
	_ = rc.Control(func(fd uintptr) {
		_ = syncFileRange(int(fd), from, to-from, unix.SYNC_FILE_RANGE_WRITE)
	})
	s.writebackFrom = to
}

// pwritevAll writes every byte of bufs at off, in as many pwritev calls
// as short writes and IOV_MAX make it take.
func pwritevAll(f *os.File, bufs [][]byte, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	bufs = slices.Clone(bufs) // advanced in place below
	for len(bufs) > 0 {
		var n int
		var werr error
		if cerr := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Pwritev(int(fd), bufs[:min(len(bufs), maxIovecs)], off)
			return true
		}); cerr != nil {
			return cerr
		}
		if werr != nil {
			return werr
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		for n > 0 && len(bufs) > 0 {
			if n < len(bufs[0]) {
				bufs[0] = bufs[0][n:]
				n = 0
				break
			}
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
	}
	return nil
}

// track records a batch written at position pos: sizes, offsets,
// timestamps, and index entries every index.interval.bytes.
func (s *segment) track(h *recordbatch.Header, pos int64, indexInterval int32) {
	size := int64(h.Size())
	rel := uint32(h.BaseOffset - s.base)
	indexed := false
	if s.bytesSinceIndex >= int64(indexInterval) {
		s.index.offsets = append(s.index.offsets, offsetEntry{relOffset: rel, position: uint32(pos)})
		s.bytesSinceIndex = 0
		indexed = true
	}
	s.bytesSinceIndex += size
	if h.MaxTimestamp > s.maxTimestamp {
		s.maxTimestamp = h.MaxTimestamp
		// An entry promises that every batch before its offset has a smaller
		// maxTimestamp, so raising the last entry's timestamp keeps the
		// promise, saves entries, and leaves the last entry holding the
		// segment's largest timestamp (retention reads it after a restart).
		n := len(s.index.times)
		if n == 0 || indexed {
			s.index.times = append(s.index.times, timeEntry{timestamp: h.MaxTimestamp, relOffset: rel})
		} else {
			s.index.times[n-1].timestamp = h.MaxTimestamp
			s.index.timesOnDisk = min(s.index.timesOnDisk, n-1)
		}
	}
	s.size = pos + size
	s.next = h.LastOffset() + 1
}

// resetTracking forgets sizes and indexes before a rebuild by scanning.
func (s *segment) resetTracking() {
	s.size, s.next, s.maxTimestamp, s.bytesSinceIndex = 0, s.base, -1, 0
	s.index = segmentIndex{}
}

// scanResult tells where a scan stopped.
type scanResult struct {
	end    int64 // position after the last good batch
	reason error // why the scan stopped before the end of the file, or nil
}

// scan reads batches from position from to the end of the file, calling
// visit for each complete one. With verify it checks lengths, magic, CRC
// and offset order (recovery) and passes the batch bytes to visit (valid
// only during the call); without it only the framing (index rebuild), and
// data is nil except for control batches, whose one small record the
// producer state needs.
// It stops at the first bad batch and reports where.
func (s *segment) scan(from, fileSize int64, verify bool, visit func(h *recordbatch.Header, pos int64, data []byte)) (scanResult, error) {
	// Read ahead up to 1 MiB, but no more than there is: start-up scans
	// many short tails.
	r := bufio.NewReaderSize(io.NewSectionReader(s.file, from, fileSize-from), int(min(max(fileSize-from, recordbatch.HeaderSize), 1<<20)))
	pos := from
	var buf []byte
	prevNext := int64(-1)
	for pos < fileSize {
		head, err := r.Peek(recordbatch.HeaderSize)
		if len(head) < recordbatch.HeaderSize {
			if err != nil && !errors.Is(err, io.EOF) {
				return scanResult{end: pos}, fmt.Errorf("reading %s at %d: %w", s.logPath(), pos, err)
			}
			return scanResult{end: pos, reason: fmt.Errorf("%w: %d bytes, less than a batch header", recordbatch.ErrTruncated, fileSize-pos)}, nil
		}
		h, err := recordbatch.ParseHeader(head)
		if err != nil {
			return scanResult{end: pos, reason: err}, nil
		}
		size := int64(h.Size())
		if pos+size > fileSize {
			return scanResult{end: pos, reason: fmt.Errorf("%w: batch of %d bytes, %d left in file", recordbatch.ErrTruncated, size, fileSize-pos)}, nil
		}
		if h.BaseOffset < s.base || !s.fitsOffset(h.LastOffset()) || h.LastOffsetDelta < 0 || h.BaseOffset < prevNext {
			return scanResult{end: pos, reason: fmt.Errorf("%w: batch offset %d out of order (segment base %d, previous end %d)", recordbatch.ErrCorrupt, h.BaseOffset, s.base, prevNext)}, nil
		}
		if verify || h.IsControl() {
			if int64(cap(buf)) < size {
				buf = make([]byte, size)
			}
			buf = buf[:size]
			if _, err := io.ReadFull(r, buf); err != nil {
				return scanResult{end: pos}, fmt.Errorf("reading %s at %d: %w", s.logPath(), pos, err)
			}
			if verify {
				if err := recordbatch.Check(&h, buf); err != nil {
					return scanResult{end: pos, reason: err}, nil
				}
			}
		} else if _, err := r.Discard(int(size)); err != nil {
			return scanResult{end: pos}, fmt.Errorf("reading %s at %d: %w", s.logPath(), pos, err)
		}
		var data []byte
		if verify || h.IsControl() {
			data = buf
		}
		visit(&h, pos, data)
		prevNext = h.LastOffset() + 1
		pos += size
	}
	return scanResult{end: pos}, nil
}

// readHeaderAt reads the batch header at pos (pos < size).
func (s *segment) readHeaderAt(pos int64) (recordbatch.Header, error) {
	var b [recordbatch.HeaderSize]byte
	if _, err := s.file.ReadAt(b[:], pos); err != nil {
		return recordbatch.Header{}, fmt.Errorf("reading batch header in %s at %d: %w", s.logPath(), pos, err)
	}
	h, err := recordbatch.ParseHeader(b[:])
	if err != nil {
		return h, fmt.Errorf("batch header in %s at %d: %w", s.logPath(), pos, err)
	}
	if pos+int64(h.Size()) > s.size {
		return h, fmt.Errorf("batch in %s at %d runs past the segment end %d: %w", s.logPath(), pos, s.size, recordbatch.ErrCorrupt)
	}
	return h, nil
}

// findPosition returns the position of the first batch whose last offset
// is >= offset, or s.size when there is none.
func (s *segment) findPosition(offset int64) (int64, recordbatch.Header, error) {
	rel := offset - s.base
	pos := int64(0)
	if rel > 0 {
		pos = s.index.lookup(uint32(min(rel, math.MaxUint32)))
	}
	for pos < s.size {
		h, err := s.readHeaderAt(pos)
		if err != nil {
			return 0, h, err
		}
		if h.LastOffset() >= offset {
			return pos, h, nil
		}
		pos += int64(h.Size())
	}
	return s.size, recordbatch.Header{}, nil
}

// truncate cuts the file at pos, dropping the batches from there on.
func (s *segment) truncate(pos int64) error {
	s.io.Lock()
	defer s.io.Unlock()
	s.cuts.Add(1)
	s.writebackFrom = min(s.writebackFrom, pos&^4095)
	if err := s.file.Truncate(pos); err != nil {
		return fmt.Errorf("truncating %s to %d: %w", s.logPath(), pos, err)
	}
	return nil
}

// writeIndexes persists the in-memory indexes (new entries only).
func (s *segment) writeIndexes(sync bool) error {
	return s.index.writeFiles(s.indexPath(), s.timeIndexPath(), sync)
}

func (s *segment) close() error {
	s.io.Lock()
	defer s.io.Unlock()
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	if err != nil {
		return fmt.Errorf("closing %s: %w", s.logPath(), err)
	}
	return nil
}

// remove closes the segment and deletes its files.
func (s *segment) remove() error {
	err := s.close()
	for _, p := range []string{s.logPath(), s.indexPath(), s.timeIndexPath(), s.txnIndexPath(), s.snapshotPath()} {
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("removing %s: %w", p, rerr))
		}
	}
	return err
}
