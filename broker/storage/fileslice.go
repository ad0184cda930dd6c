package storage

import (
	"errors"
	"fmt"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// FileSlice is whole record batches of one segment file, located but not
// read: SendTo hands them from the page cache to a socket with sendfile.
// A follower's fetch is most of the bytes a leader sends; read into a
// buffer first, each byte cost a copy out of the page cache, the buffer's
// allocation and clearing, and a copy back into the socket.
type FileSlice struct {
	seg  *segment
	cuts uint64 // seg.cuts when the slice was made
	pos  int64
	n    int64
	sent int64
	// next is the offset after the slice's last batch: a consumer's
	// read_committed fetch lists the aborted transactions up to it.
	next int64
}

// Len is the slice's size in bytes.
func (fs *FileSlice) Len() int { return int(fs.n) }

// ErrSliceGone: the segment a FileSlice was made from was truncated or
// closed before all of it was sent; what its bytes hold now may not be
// the batches it was made of.
var ErrSliceGone = errors.New("segment truncated or closed while its batches were sent")

// sendChunk bounds one sendfile call (Linux moves at most 0x7ffff000
// bytes a call anyway).
const sendChunk = 1 << 30

// SendTo sends the rest of the slice to the socket behind dst with
// sendfile. The segment's read lock is held only while the kernel takes
// bytes, never while the socket is full and the call waits for it to
// drain (dst's write deadline bounds that wait): a follower that stops
// reading must not hold up truncation, retention or compaction of the
// partition. Between two such moments the segment may be truncated or
// closed; SendTo then fails with ErrSliceGone rather than send what the
// file holds since, and the response it was part of is cut short: its
// connection must be closed. It returns the bytes it sent in this call.
func (fs *FileSlice) SendTo(dst syscall.RawConn) (int64, error) {
	start := fs.sent
	var serr error
	werr := dst.Write(func(sock uintptr) bool {
		s := fs.seg
		s.io.RLock()
		defer s.io.RUnlock()
		if s.file == nil || s.cuts.Load() != fs.cuts {
			serr = fmt.Errorf("%w: %s", ErrSliceGone, s.logPath())
			return true
		}
		// Fd does no system call for a regular file, which is never in
		// non-blocking mode; the read lock keeps the file open.
		in := int(s.file.Fd())
		for fs.sent < fs.n {
			off := fs.pos + fs.sent
			n, err := unix.Sendfile(int(sock), in, &off, int(min(fs.n-fs.sent, sendChunk)))
			if n > 0 {
				fs.sent += int64(n)
			}
			switch {
			case errors.Is(err, unix.EAGAIN):
				return false // wait for the socket without the lock
			case errors.Is(err, unix.EINTR):
			case err != nil:
				serr = fmt.Errorf("sendfile from %s at %d: %w", s.logPath(), fs.pos+fs.sent, err)
				return true
			case n == 0:
				serr = fmt.Errorf("sendfile from %s at %d: %w: file ends before the slice", s.logPath(), fs.pos+fs.sent, ErrSliceGone)
				return true
			}
		}
		return true
	})
	if serr == nil {
		serr = werr
	}
	return fs.sent - start, serr
}

// ReadSlices is Read for a reader that sends the batches to a socket
// itself (SendTo) instead of reading them: the same batches, located in
// their segment files, one slice per segment, within maxBytes (the first
// batch whole, as KIP-74 asks) and below upTo. Where maxBytes or upTo
// ends inside a segment, the offset index and the batch headers after
// its last entry before that point locate the end. ok is always true for
// a Partition; it is there for readers whose logs may not be in files
// (replica's sliceReader).
func (p *Partition) ReadSlices(offset int64, maxBytes int32, upTo int64) (slices []FileSlice, ok bool, err error) {
	total := int64(0)
	for {
		fs, next, more, ok, err := p.sliceChunk(offset, int64(maxBytes)-total, upTo, len(slices) == 0)
		if err != nil || !ok {
			return nil, ok, err
		}
		if fs.n > 0 {
			slices = append(slices, fs)
			total += fs.n
		}
		if !more {
			return slices, true, nil
		}
		offset = next
	}
}

// sliceChunk is readChunk without the read: it locates whole batches of
// the segment holding offset.
func (p *Partition) sliceChunk(offset, budget, upTo int64, first bool) (fs FileSlice, next int64, more, ok bool, err error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	limit, done, err := p.readLimitFor(offset, upTo, first)
	if done {
		return FileSlice{}, 0, false, true, err
	}
	s, pos, h, budget, err := p.locateFirstBatch(offset, budget, limit, first)
	if s == nil {
		return FileSlice{}, 0, false, true, err
	}
	// The slice ends at the segment's end, or before the first batch that
	// would pass the budget or reach limit.
	end, nextOffset, more := s.size, s.next, true
	bound := s.size
	if s.next > limit {
		// limit falls inside this segment (a high watermark or a last
		// stable offset below the log end): every batch before the
		// first whose last offset is at or past it.
		if bound, _, err = s.findPosition(limit); err != nil {
			return FileSlice{}, 0, false, true, fmt.Errorf("%w: reading %s: %w", ErrStorage, p.dir, err)
		}
	}
	bound = min(bound, pos+budget)
	if bound < s.size {
		if end, nextOffset, err = s.batchEndWithin(pos, h, bound); err != nil {
			return FileSlice{}, 0, false, true, fmt.Errorf("%w: reading %s: %w", ErrStorage, p.dir, err)
		}
		more = false
	}
	if limit > p.durable.Load() {
		advanceTo(&p.readTo, limit) // as readChunk: a follower is handed bytes not yet durable
	}
	// cuts is read under the partition lock, which every truncation holds
	// too: the slice's bytes are the batches located above.
	fs = FileSlice{seg: s, cuts: s.cuts.Load(), pos: pos, n: end - pos, next: nextOffset}
	return fs, s.next, more, true, nil
}

// batchEndWithin returns the end of the last whole batch from pos that
// ends at or before upTo (at least the batch at pos, whose header is
// first: KIP-74), and the offset after that batch: the bytes Read would
// return. The offset index takes it to the last indexed batch before upTo
// without reading; the headers of the batches after that one (at most
// index.interval.bytes of them) are read.
func (s *segment) batchEndWithin(pos int64, first recordbatch.Header, upTo int64) (end, next int64, err error) {
	end, next = pos+int64(first.Size()), first.LastOffset()+1
	offs := s.index.offsets
	i := sort.Search(len(offs), func(i int) bool { return int64(offs[i].position) > upTo })
	if i > 0 && int64(offs[i-1].position) > end {
		end, next = int64(offs[i-1].position), s.base+int64(offs[i-1].relOffset)
	}
	for end < s.size {
		h, err := s.readHeaderAt(end)
		if err != nil {
			return 0, 0, err
		}
		if end+int64(h.Size()) > upTo {
			break
		}
		end, next = end+int64(h.Size()), h.LastOffset()+1
	}
	return end, next, nil
}

// SliceResult is ReadResult for a reader that sends the batches from
// their files (ReadIsolatedSlices).
type SliceResult struct {
	Slices           []FileSlice
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	// AbortedTransactions: as ReadResult's, for the batches of Slices.
	AbortedTransactions []AbortedTxn
}

// Len is the size of the result's batches in bytes.
func (r *SliceResult) Len() int { return SlicesLen(r.Slices) }

// SlicesLen is the size of the batches of slices in bytes.
func SlicesLen(slices []FileSlice) int {
	n := 0
	for i := range slices {
		n += slices[i].Len()
	}
	return n
}

// ReadIsolatedSlices is ReadIsolated for a consumer whose connection sends
// the batches with sendfile (FileSlice.SendTo): the same batches, bounds
// (the high watermark or the last stable offset) and aborted
// transactions, the batches located by ReadSlices instead of read.
func (p *Partition) ReadIsolatedSlices(offset int64, maxBytes int32, isolation Isolation) (SliceResult, error) {
	var res SliceResult
	var upTo int64
	res.HighWatermark, res.LastStableOffset, res.LogStartOffset, upTo = p.isolatedBounds(isolation)
	slices, _, err := p.ReadSlices(offset, maxBytes, upTo)
	if err != nil {
		return SliceResult{}, err
	}
	res.Slices = slices
	if isolation != ReadCommitted || len(slices) == 0 {
		return res, nil
	}
	res.AbortedTransactions = p.AbortedTransactions(offset, slices[len(slices)-1].next)
	return res, nil
}
