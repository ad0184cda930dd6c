package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// The produce path (a compacted topic's key check, the re-compression to a
// topic's compression.type) reads a batch's records through a streaming
// decoder, as Kafka's LogValidator does, instead of inflating the whole
// records section: a few KB of zstd RLE blocks (or gzip, lz4, snappy) can
// inflate to MaxDecompressedBytes, and holding that per batch, for several
// batches, requests and connections at once, was an OOM in the hands of any
// principal with WRITE (docs/broker-security.md, finding 15). What a stream
// holds is the codec's window (at most ZstdMaxWindow for zstd, 32 KiB for
// gzip, a 4 MiB block for lz4, one snappy block) and a 32 KiB read buffer;
// no record is ever held whole. streamSlots bounds how many streams run at
// once, so the broker as a whole holds at most streamSlots of those.

// ErrTooLarge is a batch whose re-compressed records would exceed the
// topic's max.message.bytes (Kafka: RECORD_TOO_LARGE, reported as
// MESSAGE_TOO_LARGE).
var ErrTooLarge = errors.New("re-compressed batch exceeds max.message.bytes")

// DefaultZstdMaxWindow is the largest window a streamed zstd frame may
// declare unless SetZstdMaxWindow (tributary.zstd.max.window.bytes) says
// otherwise: the decoder keeps that much history. 8 MiB is zstd's window at
// level 19 and klauspost's default encoder's; producers at levels 1-19
// (Java, librdkafka and franz-go default to 3 or less) stay under it. A
// frame asking for more (levels 20-22, --long) is refused as corrupt.
const DefaultZstdMaxWindow = 8 << 20

// MinZstdMaxWindow and MaxZstdMaxWindow bound SetZstdMaxWindow: zstd's
// smallest window (RFC 8878, 1 KiB) and the largest its reference decoder
// accepts by default (ZSTD_WINDOWLOG_LIMIT_DEFAULT, windowLog 27, 128 MiB;
// Kafka's zstd-jni decodes with that default, so Kafka accepts no more).
const (
	MinZstdMaxWindow = 1 << 10
	MaxZstdMaxWindow = 128 << 20
)

// zstdMaxWindow is the window the streaming zstd decoders accept now.
var zstdMaxWindow atomic.Int64

func init() { zstdMaxWindow.Store(DefaultZstdMaxWindow) }

// SetZstdMaxWindow sets the largest window a streamed zstd frame (the
// produce path's, the log cleaner's) may declare, broker wide. Each of the
// streamSlots streams may hold that much history, so the broker holds at
// most max(4, GOMAXPROCS) times it of zstd history at once. A decoder made
// under another bound is not reused: the bound holds from the next stream
// on.
func SetZstdMaxWindow(n int64) error {
	if n < MinZstdMaxWindow || n > MaxZstdMaxWindow {
		return fmt.Errorf("zstd max window %d out of range [%d, %d]", n, MinZstdMaxWindow, MaxZstdMaxWindow)
	}
	zstdMaxWindow.Store(n)
	return nil
}

// ZstdMaxWindow returns the bound SetZstdMaxWindow set.
func ZstdMaxWindow() int64 { return zstdMaxWindow.Load() }

// snappyMaxRatio bounds how many bytes one byte of a snappy block can
// decode to: the densest element is a copy with a 2-byte offset, 3 bytes
// for at most 64. A block declaring more cannot be honest snappy, and s2
// allocates the declared length before decoding.
const snappyMaxRatio = 22

// streamChunk is the read buffer of a stream and the size of the pieces
// handed to the encoder; 32 KiB is also a xerial block.
const streamChunk = 32 << 10

// streamSlots bounds the streams (decoder + encoder) in use at once, broker
// wide: each holds up to a codec window, so the slots bound what all the
// broker's produce requests hold of inflated records. Decoding is CPU
// bound: more streams than cores would not go faster. A stream waits for a
// slot; every holder does bounded work (MaxDecompressedBytes) and lets go.
var streamSlots = make(chan struct{}, max(4, runtime.GOMAXPROCS(0)))

// streamHook, when set by a test, is called with +1 when a stream takes a
// slot and -1 when it gives it back.
var streamHook func(delta int)

// Stored data (ListOffsets by timestamp, the log cleaner) may hold zstd
// frames over the current bound: stored while the bound was higher, copied
// by a follower (replication does not decode), or produced to a topic that
// keeps the producer's codec and is not compacted (stored as sent, never
// decoded) and made compacted later. Refusing such a frame made the
// cleaner of its partition stop on it at every pass, for ever, and
// ListOffsets answer with the batch's first offset instead of the
// record's. So a reader of stored data accepts any window up to
// MaxZstdMaxWindow, the largest the setting can ever have allowed, and a
// frame over the current bound is read by one stream at a time, broker
// wide (wideSlot), taken before the stream slot, so that waiting for it
// holds no slot the produce path needs. The broker then holds at most
// streamSlots-1 windows of the current bound plus one of MaxZstdMaxWindow
// (32 MiB at the default on up to 4 cores, 152 MiB with the wide stream).
// A frame over MaxZstdMaxWindow is refused on every path, as before.
var wideSlot = make(chan struct{}, 1)

// streamGrant is a stream slot held, and the window its zstd decoder may
// accept.
type streamGrant struct {
	window int64
	wide   bool // holds wideSlot as well
}

// acquireStream takes a stream slot for the produce path: its zstd frames
// are held to the current bound.
func acquireStream() streamGrant {
	streamSlots <- struct{}{}
	if streamHook != nil {
		streamHook(1)
	}
	return streamGrant{window: zstdMaxWindow.Load()}
}

// acquireStoredStream takes a stream slot for reading a stored batch's
// records section src in codec: for a zstd frame declaring a window over
// the current bound and not over MaxZstdMaxWindow, the wide slot first.
func acquireStoredStream(codec int, src []byte) streamGrant {
	window := zstdMaxWindow.Load()
	var declared uint64
	if codec == CodecZstd {
		declared, _ = zstdFrames(src)
	}
	if declared <= uint64(window) || declared > MaxZstdMaxWindow {
		return acquireStream()
	}
	wideSlot <- struct{}{}
	g := acquireStream()
	g.window, g.wide = int64(declared), true
	return g
}

func (g streamGrant) release() {
	if streamHook != nil {
		streamHook(-1)
	}
	<-streamSlots
	if g.wide {
		<-wideSlot
	}
}

type zstdStream struct {
	src    bytes.Reader
	d      *zstd.Decoder
	window int64 // the decoder's WithDecoderMaxWindow
}

type snappyStream struct {
	src   []byte // xerial blocks still to decode
	block []byte // decoded bytes not yet read
	buf   []byte // the decoded block
}

var (
	zstdStreams   sync.Pool // *zstdStream
	snappyStreams = sync.Pool{New: func() any { return new(snappyStream) }}
	gzipWriters   sync.Pool // *gzip.Writer
	lz4Writers    sync.Pool // *lz4.Writer
	zstdWriters   sync.Pool // *zstd.Encoder
	scanners      = sync.Pool{New: func() any { return &scanner{buf: make([]byte, streamChunk)} }}
)

// openStream returns a reader of src's inflated records, whose zstd
// decoder accepts frames of up to window, and the function that returns
// the decoder to its pool.
func openStream(codec int, src []byte, window int64) (io.Reader, func(), error) {
	switch codec {
	case CodecNone:
		return bytes.NewReader(src), func() {}, nil
	case CodecGzip:
		g, ok := gzipReaders.Get().(*gzipReader)
		if !ok {
			g = new(gzipReader)
		}
		g.src.Reset(src)
		if err := g.zr.Reset(&g.src); err != nil {
			gzipReaders.Put(g)
			return nil, nil, err
		}
		return &g.zr, func() { gzipReaders.Put(g) }, nil
	case CodecLz4:
		l, ok := lz4Readers.Get().(*lz4Reader)
		if !ok {
			l = &lz4Reader{zr: lz4.NewReader(nil)}
		}
		l.src.Reset(src)
		l.zr.Reset(&l.src)
		return l.zr, func() { l.zr.Reset(nil); lz4Readers.Put(l) }, nil
	case CodecZstd:
		declared, err := zstdFrames(src)
		if err != nil {
			return nil, nil, err
		}
		if declared > uint64(window) {
			// The decoder would refuse it too, as "window size
			// exceeded" or, for a single-segment frame, as too large;
			// the producer is told which setting refused it.
			return nil, nil, fmt.Errorf("zstd frame declares a %d-byte window, over the %d bytes tributary.zstd.max.window.bytes allows", declared, window)
		}
		// The pool keeps decoders of the current bound; a stored frame's
		// wider one (acquireStoredStream) is made for it and closed
		// after, so that no pooled decoder keeps a history of up to
		// MaxZstdMaxWindow.
		pooled := window == zstdMaxWindow.Load()
		var z *zstdStream
		if pooled {
			z, _ = zstdStreams.Get().(*zstdStream)
		}
		if z == nil || z.window != window {
			// Concurrency 1 decodes in the reader's calls, with no
			// goroutine; low memory grows the history as the frame
			// fills it rather than at the window's size at once.
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(uint64(window)), zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
			if err != nil {
				return nil, nil, err
			}
			if z != nil {
				z.d.Close()
			}
			z = &zstdStream{d: d, window: window}
		}
		// A bytes.Reader, not a bytes.Buffer: given a Buffer, Reset
		// decodes the whole input at once (DecodeAll).
		z.src.Reset(src)
		if err := z.d.Reset(&z.src); err != nil {
			if !pooled {
				z.d.Close()
			}
			return nil, nil, err
		}
		if !pooled {
			return z.d, z.d.Close, nil
		}
		return z.d, func() { _ = z.d.Reset(nil); zstdStreams.Put(z) }, nil
	case CodecSnappy:
		s := snappyStreams.Get().(*snappyStream)
		if err := s.reset(src); err != nil {
			s.release()
			return nil, nil, err
		}
		return s, s.release, nil
	default:
		return nil, nil, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, codec)
	}
}

// reset starts s on src: a raw snappy block, decoded at once (its format
// cannot be read in pieces; it holds at most snappyMaxRatio times its
// size), or xerial framing, decoded a block at a time.
func (s *snappyStream) reset(src []byte) error {
	s.src, s.block = nil, nil
	if !bytes.HasPrefix(src, xerialMagic) {
		return s.decode(src)
	}
	if len(src) < 16 {
		return errors.New("short xerial header")
	}
	s.src = src[16:]
	return nil
}

func (s *snappyStream) decode(block []byte) error {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return err
	}
	if n > decompressLimit {
		return errTooLarge
	}
	if n > snappyMaxRatio*len(block)+32 {
		return fmt.Errorf("snappy block of %d bytes declares %d bytes, more than it can hold", len(block), n)
	}
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	s.block, err = s2.Decode(s.buf[:n], block)
	return err
}

func (s *snappyStream) Read(p []byte) (int, error) {
	for len(s.block) == 0 {
		if len(s.src) == 0 {
			return 0, io.EOF
		}
		if len(s.src) < 4 {
			return 0, errors.New("short xerial block length")
		}
		n := int(binary.BigEndian.Uint32(s.src))
		s.src = s.src[4:]
		if n < 0 || n > len(s.src) {
			return 0, errors.New("xerial block past the end")
		}
		if err := s.decode(s.src[:n]); err != nil {
			return 0, err
		}
		s.src = s.src[n:]
	}
	n := copy(p, s.block)
	s.block = s.block[n:]
	return n, nil
}

func (s *snappyStream) release() {
	s.src, s.block = nil, nil
	if cap(s.buf) > maxPooledInflated {
		s.buf = nil
	}
	snappyStreams.Put(s)
}

// RecordInfo is what a streamed record shows of itself: its framing fields
// and whether it has a key. Keys and values are not kept.
type RecordInfo struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	NullKey        bool
	NullValue      bool // a tombstone
}

// ScanRecords streams the records of the checked batch data (h parsed from
// it) through its codec's decoder and calls fn for each, checking every
// record's framing as ForEachRecord does and the count against the
// header's, without holding the inflated records. It fails with ErrCorrupt
// when the records do not inflate (or inflate past MaxDecompressedBytes)
// and with ErrInvalid when they do not parse or do not match the header.
//
// An uncompressed batch is walked in place (ForEachRecord), without a
// stream slot: nothing is inflated, and a compacted topic's uncompressed
// produce must not wait behind other requests' compressed batches.
func ScanRecords(h *Header, data []byte, fn func(*RecordInfo) error) error {
	if h.Codec() == CodecNone {
		return scanInPlace(h, data, fn)
	}
	g := acquireStream()
	defer g.release()
	return scan(h, data, g.window, nil, fn)
}

// ScanStoredRecords is ScanRecords for a batch the log already holds
// (ListOffsets by timestamp): its zstd frames may declare a window up to
// MaxZstdMaxWindow, whatever the bound is now (acquireStoredStream).
func ScanStoredRecords(h *Header, data []byte, fn func(*RecordInfo) error) error {
	if h.Codec() == CodecNone {
		return scanInPlace(h, data, fn)
	}
	g := acquireStoredStream(h.Codec(), data[HeaderSize:])
	defer g.release()
	return scan(h, data, g.window, nil, fn)
}

func scanInPlace(h *Header, data []byte, fn func(*RecordInfo) error) error {
	n := 0
	var info RecordInfo
	err := ForEachRecord(data[HeaderSize:], func(r *Record) error {
		if n == int(h.RecordCount) {
			return fmt.Errorf("%w: header says %d records, found more", ErrInvalid, h.RecordCount)
		}
		n++
		if fn == nil {
			return nil
		}
		info = RecordInfo{Attributes: r.Attributes, TimestampDelta: r.TimestampDelta, OffsetDelta: r.OffsetDelta, NullKey: r.Key == nil, NullValue: r.Value == nil}
		return fn(&info)
	})
	if err != nil {
		return err
	}
	if n != int(h.RecordCount) {
		return fmt.Errorf("%w: header says %d records, found %d", ErrInvalid, h.RecordCount, n)
	}
	return nil
}

// scan is ScanRecords writing every inflated byte to w as well (when not
// nil); the caller holds a stream slot, granting window.
func scan(h *Header, data []byte, window int64, w io.Writer, fn func(*RecordInfo) error) error {
	r, release, err := openStream(h.Codec(), data[HeaderSize:], window)
	if err != nil {
		return fmt.Errorf("%w: decompressing codec %d: %w", ErrCorrupt, h.Codec(), err)
	}
	defer release()
	sc := scanners.Get().(*scanner)
	defer scanners.Put(sc)
	sc.reset(r, w)
	defer sc.reset(nil, nil)
	var info RecordInfo
	n := 0
	for {
		more, err := sc.record(&info)
		if err != nil {
			return sc.wrap(n, err)
		}
		if !more {
			break
		}
		if n == int(h.RecordCount) {
			return fmt.Errorf("%w: header says %d records, found more", ErrInvalid, h.RecordCount)
		}
		if fn != nil {
			if err := fn(&info); err != nil {
				return err
			}
		}
		n++
	}
	if n != int(h.RecordCount) {
		return fmt.Errorf("%w: header says %d records, found %d", ErrInvalid, h.RecordCount, n)
	}
	return nil
}

// errDecode marks an error of the decoder (as opposed to the records'
// framing) inside the scanner.
type errDecode struct{ err error }

func (e errDecode) Error() string { return e.err.Error() }
func (e errDecode) Unwrap() error { return e.err }

// scanner reads records' framing from an inflating reader through one
// buffer, passing the bytes it reads on to w.
type scanner struct {
	r          io.Reader
	w          io.Writer
	buf        []byte
	start, end int
	inflated   int64
	left       int64 // bytes of the current record not yet read
	eof        bool

	// The log cleaner's use (ScanKeys, RewriteRecords): keys receives
	// each record's key bytes; head, called once a record's attributes,
	// timestamp delta and offset delta are read, decides whether the
	// record is copied to out with a new timestamp delta.
	keys io.Writer
	head func(*RecordInfo) (bool, int64, error)
	out  io.Writer
	// sink receives the bytes skip passes over (the key, for keys);
	// copying, the bytes of the record being copied from buf[copied:].
	sink    io.Writer
	copying bool
	copied  int
}

func (s *scanner) reset(r io.Reader, w io.Writer) {
	s.r, s.w, s.start, s.end, s.inflated, s.left, s.eof = r, w, 0, 0, 0, 0, false
	s.keys, s.head, s.out, s.sink, s.copying, s.copied = nil, nil, nil, nil, false, 0
}

// errEncode marks an error of the cleaner's output (as opposed to the
// records' framing) inside the scanner.
type errEncode struct{ err error }

func (e errEncode) Error() string { return e.err.Error() }
func (e errEncode) Unwrap() error { return e.err }

// flushCopy passes the bytes of the record being copied read so far on to
// out.
func (s *scanner) flushCopy() error {
	if !s.copying || s.copied == s.start {
		return nil
	}
	if _, err := s.out.Write(s.buf[s.copied:s.start]); err != nil {
		return errEncode{err}
	}
	s.copied = s.start
	return nil
}

func (s *scanner) wrap(n int, err error) error {
	var d errDecode
	switch {
	case errors.As(err, &d):
		if errors.Is(d.err, zstd.ErrDecoderSizeExceeded) {
			d.err = errTooLarge
		}
		return fmt.Errorf("%w: decompressing: %w", ErrCorrupt, d.err)
	case errors.Is(err, ErrTooLarge):
		return err
	case errors.As(err, new(errEncode)):
		return fmt.Errorf("re-encoding: %w", err)
	default:
		return fmt.Errorf("%w: record %d at inflated byte %d: %w", ErrInvalid, n, s.inflated-int64(s.end-s.start), err)
	}
}

// fill reads more inflated bytes into the buffer; false at the end.
func (s *scanner) fill() (bool, error) {
	if s.eof {
		return false, nil
	}
	if s.start == s.end {
		if err := s.flushCopy(); err != nil {
			return false, err
		}
		s.start, s.end, s.copied = 0, 0, 0
	}
	for {
		n, err := s.r.Read(s.buf[s.end:])
		if n > 0 {
			if s.inflated += int64(n); s.inflated > int64(decompressLimit) {
				return false, errDecode{errTooLarge}
			}
			if s.w != nil {
				if _, werr := s.w.Write(s.buf[s.end : s.end+n]); werr != nil {
					return false, werr
				}
			}
			s.end += n
		}
		if errors.Is(err, io.EOF) {
			s.eof = true
			return n > 0, nil
		}
		if err != nil {
			return false, errDecode{err}
		}
		if n > 0 {
			return true, nil
		}
	}
}

// ReadByte reads one byte of the current record.
func (s *scanner) ReadByte() (byte, error) {
	if s.left <= 0 {
		return 0, errors.New("record ends early")
	}
	if s.start == s.end {
		ok, err := s.fill()
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, io.ErrUnexpectedEOF
		}
	}
	b := s.buf[s.start]
	s.start++
	s.left--
	return b, nil
}

// skip passes over n bytes of the current record.
func (s *scanner) skip(n int64) error {
	if n > s.left {
		return errors.New("length past the record's end")
	}
	for n > 0 {
		if s.start == s.end {
			ok, err := s.fill()
			if err != nil {
				return err
			}
			if !ok {
				return io.ErrUnexpectedEOF
			}
		}
		k := min(n, int64(s.end-s.start))
		if s.sink != nil {
			if _, err := s.sink.Write(s.buf[s.start : s.start+int(k)]); err != nil {
				return errEncode{err}
			}
		}
		s.start += int(k)
		s.left -= k
		n -= k
	}
	return nil
}

func (s *scanner) varint(what string) (int64, error) {
	v, err := binary.ReadVarint(s)
	if err != nil {
		var d errDecode
		if errors.As(err, &d) {
			return 0, err
		}
		return 0, fmt.Errorf("bad %s: %w", what, err)
	}
	return v, nil
}

// varBytes skips a varint-length byte string, returning its length (-1
// for null).
func (s *scanner) varBytes(what string) (int64, error) {
	n, err := s.varint("length") // what is added on failure only: a concatenation here allocated twice per record
	if err != nil {
		var d errDecode
		if errors.As(err, &d) {
			return 0, err
		}
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if n < -1 {
		return 0, fmt.Errorf("bad %s length %d", what, n)
	}
	if n > 0 {
		if err := s.skip(n); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
	}
	return n, nil
}

// record reads the next record's framing into info; false at the clean
// end of the records.
func (s *scanner) record(info *RecordInfo) (bool, error) {
	if s.start == s.end {
		ok, err := s.fill()
		if err != nil || !ok {
			return false, err
		}
	}
	s.left = binary.MaxVarintLen64
	length, err := s.varint("length")
	if err != nil {
		return false, err
	}
	if length <= 0 || length > math.MaxInt32 {
		return false, fmt.Errorf("bad length %d", length)
	}
	s.left = length
	a, err := s.ReadByte()
	if err != nil {
		return false, err
	}
	info.Attributes = int8(a)
	if info.TimestampDelta, err = s.varint("timestamp delta"); err != nil {
		return false, err
	}
	od, err := s.varint("offset delta")
	if err != nil {
		return false, err
	}
	if od < 0 || od > math.MaxInt32 {
		return false, fmt.Errorf("bad offset delta %d", od)
	}
	info.OffsetDelta = int32(od)
	if s.head != nil {
		copyIt, tsDelta, err := s.head(info)
		if err != nil {
			return false, errEncode{err}
		}
		if copyIt {
			// The record's length changes with its timestamp delta's
			// varint; what follows the offset delta is copied as it is.
			var tmp [4*binary.MaxVarintLen64 + 1]byte
			body := append(tmp[binary.MaxVarintLen64:binary.MaxVarintLen64], byte(info.Attributes))
			body = binary.AppendVarint(body, tsDelta)
			body = binary.AppendVarint(body, od)
			if _, err := s.out.Write(binary.AppendVarint(tmp[:0], int64(len(body))+s.left)); err != nil {
				return false, errEncode{err}
			}
			if _, err := s.out.Write(body); err != nil {
				return false, errEncode{err}
			}
			s.copying, s.copied = true, s.start
		}
	}
	s.sink = s.keys
	k, err := s.varBytes("key")
	s.sink = nil
	if err != nil {
		return false, err
	}
	info.NullKey = k == -1
	v, err := s.varBytes("value")
	if err != nil {
		return false, err
	}
	info.NullValue = v == -1
	headers, err := s.varint("header count")
	if err != nil {
		return false, err
	}
	if headers < 0 || headers > s.left {
		return false, fmt.Errorf("bad header count %d", headers)
	}
	for i := range headers {
		n, err := s.varBytes("header key")
		if err != nil {
			return false, fmt.Errorf("header %d: %w", i, err)
		}
		if n < 0 {
			return false, fmt.Errorf("header %d: null key", i)
		}
		if _, err := s.varBytes("header value"); err != nil {
			return false, fmt.Errorf("header %d: %w", i, err)
		}
	}
	if s.left != 0 {
		return false, fmt.Errorf("%d bytes after the headers", s.left)
	}
	if err := s.flushCopy(); err != nil {
		return false, err
	}
	s.copying = false
	return true, nil
}

// boundedBuffer collects an encoder's output, refusing to grow past max.
type boundedBuffer struct {
	b   []byte
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if len(b.b)+len(p) > b.max {
		return 0, ErrTooLarge
	}
	b.b = append(b.b, p...)
	return len(p), nil
}

// encoder is a streaming compressor into a boundedBuffer.
type encoder interface {
	io.Writer
	Close() error
}

// newEncoder returns a streaming encoder of codec writing to dst, with the
// settings franz-go's producers use (so that a rewritten batch looks like a
// client's), and the function that returns it to its pool. Snappy is
// framed the way the Java producer frames it (xerial, 32 KiB blocks): a
// raw snappy block needs the whole input at once.
func newEncoder(codec int, dst io.Writer) (encoder, func(), error) {
	switch codec {
	case CodecNone:
		return nopCloser{dst}, func() {}, nil
	case CodecGzip:
		g, ok := gzipWriters.Get().(*gzip.Writer)
		if !ok {
			g = gzip.NewWriter(dst)
		}
		g.Reset(dst)
		return g, func() { g.Reset(io.Discard); gzipWriters.Put(g) }, nil
	case CodecLz4:
		l, ok := lz4Writers.Get().(*lz4.Writer)
		if !ok {
			l = lz4.NewWriter(dst)
		}
		l.Reset(dst)
		return l, func() { l.Reset(nil); lz4Writers.Put(l) }, nil
	case CodecZstd:
		z, ok := zstdWriters.Get().(*zstd.Encoder)
		if !ok {
			var err error
			z, err = zstd.NewWriter(dst, zstd.WithWindowSize(64<<10), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
			if err != nil {
				return nil, nil, err
			}
		}
		z.Reset(dst)
		return z, func() { z.Reset(nil); zstdWriters.Put(z) }, nil
	case CodecSnappy:
		return &xerialWriter{dst: dst}, func() {}, nil
	default:
		return nil, nil, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, codec)
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// xerialWriter frames snappy as the Java producer's SnappyOutputStream:
// the 16-byte header, then per block of at most streamChunk bytes a
// big-endian length and a raw snappy block. Every client decodes it.
type xerialWriter struct {
	dst     io.Writer
	started bool
	pending []byte
	block   []byte
	out     []byte
}

func (x *xerialWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(streamChunk-len(x.pending), len(p))
		x.pending = append(x.pending, p[:k]...)
		p = p[k:]
		if len(x.pending) == streamChunk {
			if err := x.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (x *xerialWriter) flush() error {
	x.out = x.out[:0]
	if !x.started {
		x.out = append(x.out, xerialMagic...)
		x.out = binary.BigEndian.AppendUint32(x.out, 1) // version
		x.out = binary.BigEndian.AppendUint32(x.out, 1) // compatible version
		x.started = true
	}
	if len(x.pending) > 0 {
		if n := s2.MaxEncodedLen(len(x.pending)); cap(x.block) < n {
			x.block = make([]byte, n)
		}
		block := s2.EncodeSnappy(x.block[:cap(x.block)], x.pending)
		x.out = binary.BigEndian.AppendUint32(x.out, uint32(len(block)))
		x.out = append(x.out, block...)
		x.pending = x.pending[:0]
	}
	_, err := x.dst.Write(x.out)
	return err
}

func (x *xerialWriter) Close() error { return x.flush() }
