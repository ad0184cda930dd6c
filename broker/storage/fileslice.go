package storage

import (
	"errors"
	"fmt"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
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
// their segment files, one slice per segment. It may return fewer bytes
// than Read when maxBytes ends inside a segment (it stops at the last
// batch the offset index locates within maxBytes, the first batch whole
// as KIP-74 asks), never more. ok is false, with no slices, when a batch
// boundary it needs is not known without reading the file (upTo falls
// inside a segment's batches): the caller uses Read then.
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
	if p.closed {
		return FileSlice{}, 0, false, true, ErrClosed
	}
	if start, end := p.logStart, p.leo; offset < start || offset > end {
		if first {
			return FileSlice{}, 0, false, true, fmt.Errorf("%w: offset %d, log is [%d, %d)", ErrOffsetOutOfRange, offset, start, end)
		}
		return FileSlice{}, 0, false, true, nil
	}
	limit := min(upTo, p.leo)
	for i := p.segmentFor(offset); i < len(p.segments) && offset < limit; i++ {
		s := p.segments[i]
		pos, h, err := s.findPosition(offset)
		if err != nil {
			return FileSlice{}, 0, false, true, fmt.Errorf("%w: reading %s: %w", ErrStorage, p.dir, err)
		}
		if pos >= s.size {
			continue // offset fell in a gap left by compaction at the segment end
		}
		if h.LastOffset() >= limit {
			break
		}
		if s.next > limit {
			// limit cuts this segment's batches somewhere only reading
			// their headers finds.
			return FileSlice{}, 0, false, false, nil
		}
		if first {
			budget = max(budget, int64(h.Size())) // KIP-74: the first batch whole
		}
		if budget < int64(h.Size()) {
			break
		}
		end, more := s.size, true
		if s.size-pos > budget {
			end, more = s.batchEndWithin(pos, h.Size(), pos+budget), false
		}
		if limit > p.durable.Load() {
			advanceTo(&p.readTo, limit) // as readChunk: a follower is handed bytes not yet durable
		}
		// cuts is read under the partition lock, which every truncation
		// holds too: the slice's bytes are the batches located above.
		fs := FileSlice{seg: s, cuts: s.cuts.Load(), pos: pos, n: end - pos}
		return fs, s.next, more, true, nil
	}
	return FileSlice{}, 0, false, true, nil
}

// batchEndWithin returns the end of the last whole batch from pos that
// ends at or before max, as far as the offset index tells without reading:
// an indexed batch's start, or the end of the batch at pos (size first).
func (s *segment) batchEndWithin(pos int64, first int, upTo int64) int64 {
	offs := s.index.offsets
	i := sort.Search(len(offs), func(i int) bool { return int64(offs[i].position) > upTo })
	if i > 0 && int64(offs[i-1].position) > pos+int64(first) {
		return int64(offs[i-1].position)
	}
	return pos + int64(first)
}
