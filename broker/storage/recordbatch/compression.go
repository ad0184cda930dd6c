package recordbatch

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MaxDecompressedBytes bounds how large one batch may inflate to, so that a
// hostile "compression bomb" cannot exhaust memory.
const MaxDecompressedBytes = 256 << 20

// decompressLimit is MaxDecompressedBytes; tests lower it.
var decompressLimit = MaxDecompressedBytes

var errTooLarge = errors.New("decompressed batch exceeds limit")

// xerialMagic opens snappy data framed the way the Java client's
// snappy-java SnappyOutputStream writes it.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// Decompress returns the records section of a batch, inflated with codec.
// For CodecNone it returns src itself. The result is the caller's own: it
// shares no memory with src or with the pooled decoders.
func Decompress(codec int, src []byte) ([]byte, error) {
	var out []byte
	var err error
	switch codec {
	case CodecNone:
		return src, nil
	case CodecGzip:
		out, err = decompressGzip(src)
	case CodecSnappy:
		out, err = decompressSnappy(src)
	case CodecLz4:
		out, err = decompressLz4(src)
	case CodecZstd:
		out, err = decompressZstd(src)
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, codec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing codec %d: %w", ErrCorrupt, codec, err)
	}
	return out, nil
}

// The decoders are kept between batches. Making one per batch cost more
// than the decoding itself: a zstd decoder allocates its tables and
// history, a gzip reader its flate window, an lz4 reader its block
// buffers (7.5 MB, 3.0 MB and 2.5 MB allocated per MiB of records,
// docs/benchmarks.md). sync.Pool rather than one shared decoder, so that
// one large batch never makes another caller wait for a decoder; a
// pooled decoder holds no goroutine (zstd with concurrency 1 decoding
// with DecodeAll starts none), so the pool may drop one at any GC.
var (
	zstdDecoders sync.Pool // *zstd.Decoder
	gzipReaders  sync.Pool // *gzipReader
	lz4Readers   sync.Pool // *lz4Reader
	// inflated holds the buffers gzip and lz4 stream into: the records
	// are copied out once, at their final size, instead of io.ReadAll's
	// doublings.
	inflated = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// maxPooledInflated is the largest buffer put back in inflated; a rare
// huge batch's buffer is left to the garbage collector instead of being
// kept by the pool.
const maxPooledInflated = 8 << 20

type gzipReader struct {
	src bytes.Reader
	zr  gzip.Reader
}

type lz4Reader struct {
	src bytes.Reader
	zr  *lz4.Reader
}

// zstdMaxRatio bounds how many bytes one byte of a zstd frame can inflate
// to: the densest block is an RLE block, a 3-byte header and the byte it
// repeats, for at most 128 KiB (RFC 8878, 3.1.1.2).
const zstdMaxRatio = (128 << 10) / 4

func decompressZstd(src []byte) ([]byte, error) {
	if _, err := zstdFrames(src); err != nil {
		return nil, err
	}
	d, ok := zstdDecoders.Get().(*zstd.Decoder)
	if !ok {
		var err error
		// WithDecoderMaxMemory bounds what DecodeAll inflates, every
		// frame of src counted, and refuses a frame whose declared
		// content size is over it before allocating.
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
		if err != nil {
			return nil, err
		}
	}
	out, err := d.DecodeAll(src, nil)
	zstdDecoders.Put(d)
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return nil, errTooLarge
		}
		return nil, err
	}
	if len(out) > decompressLimit {
		return nil, errTooLarge
	}
	return out, nil
}

// zstdFrames walks src's frames by their block headers (no decoding) and
// returns the largest window a frame declares (what a streaming decoder's
// WithDecoderMaxWindow is checked against: the window descriptor, or the
// content size of a single-segment frame), refusing src if one of its frames
// declares more content than that frame's own bytes can hold. DecodeAll
// allocates a frame's DECLARED content size before decoding a byte of it,
// so without this a 20-byte frame declaring 256 MiB made the broker
// allocate 256 MiB (zbomb15). With it, what DecodeAll allocates for a
// frame is at most what the frame can really inflate to; what it can
// inflate to is still up to 256 MiB for a few KB (a real bomb), which only
// decompressLimit bounds. A malformed walk is left to the decoder to
// report (the window is then what the walk saw before it).
func zstdFrames(src []byte) (window uint64, err error) {
	total := uint64(0)
	for len(src) > 0 {
		var h zstd.Header
		if h.Decode(src) != nil || h.HeaderSize > len(src) {
			return window, nil
		}
		switch {
		case h.SingleSegment:
			// The decoder's window is then the content size (RFC
			// 8878, 3.1.1.1.2), and a stream checks it as a window.
			window = max(window, h.FrameContentSize, zstd.MinWindowSize)
		case !h.Skippable:
			window = max(window, h.WindowSize)
		}
		if h.Skippable {
			n := h.HeaderSize + int(h.SkippableSize)
			if n > len(src) {
				return window, nil
			}
			src = src[n:]
			continue
		}
		pos := h.HeaderSize
		for last := false; !last; {
			if pos+3 > len(src) {
				return window, nil
			}
			bh := uint32(src[pos]) | uint32(src[pos+1])<<8 | uint32(src[pos+2])<<16
			last = bh&1 != 0
			size := int(bh >> 3)
			if (bh>>1)&3 == 1 { // RLE: one byte stored
				size = 1
			}
			pos += 3 + size
		}
		if h.HasCheckSum {
			pos += 4
		}
		if pos > len(src) {
			return window, nil
		}
		if h.HasFCS {
			if h.FrameContentSize > uint64(pos)*zstdMaxRatio {
				return window, fmt.Errorf("zstd frame of %d bytes declares %d bytes of content, more than it can hold", pos, h.FrameContentSize)
			}
			if total += h.FrameContentSize; total > uint64(decompressLimit) {
				return window, errTooLarge
			}
		}
		src = src[pos:]
	}
	return window, nil
}

func decompressGzip(src []byte) ([]byte, error) {
	g, ok := gzipReaders.Get().(*gzipReader)
	if !ok {
		g = new(gzipReader)
	}
	defer gzipReaders.Put(g)
	g.src.Reset(src)
	if err := g.zr.Reset(&g.src); err != nil {
		return nil, err
	}
	return readLimited(&g.zr)
}

func decompressLz4(src []byte) ([]byte, error) {
	l, ok := lz4Readers.Get().(*lz4Reader)
	if !ok {
		l = &lz4Reader{zr: lz4.NewReader(nil)}
	}
	defer lz4Readers.Put(l)
	l.src.Reset(src)
	l.zr.Reset(&l.src)
	return readLimited(l.zr)
}

// readLimited reads r to its end into a pooled buffer, refusing more than
// decompressLimit bytes, and returns a copy of what it read.
func readLimited(r io.Reader) ([]byte, error) {
	buf := inflated.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledInflated {
			inflated.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(io.LimitReader(r, int64(decompressLimit)+1)); err != nil {
		return nil, err
	}
	if buf.Len() > decompressLimit {
		return nil, errTooLarge
	}
	return bytes.Clone(buf.Bytes()), nil
}

// decompressSnappy handles both raw snappy blocks (what most non-Java
// clients send) and xerial-framed streams (the Java client).
func decompressSnappy(src []byte) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		n, err := s2.DecodedLen(src)
		if err != nil {
			return nil, err
		}
		if n > decompressLimit {
			return nil, errTooLarge
		}
		return s2.Decode(nil, src)
	}
	// 8 magic bytes, then version and compatible-version int32s, then
	// blocks of (int32 length, snappy block).
	if len(src) < 16 {
		return nil, errors.New("short xerial header")
	}
	rest := src[16:]
	var out []byte
	for len(rest) > 0 {
		if len(rest) < 4 {
			return nil, errors.New("short xerial block length")
		}
		n := int(uint32(rest[0])<<24 | uint32(rest[1])<<16 | uint32(rest[2])<<8 | uint32(rest[3]))
		rest = rest[4:]
		if n < 0 || n > len(rest) {
			return nil, errors.New("xerial block past the end")
		}
		dn, err := s2.DecodedLen(rest[:n])
		if err != nil {
			return nil, err
		}
		if len(out)+dn > decompressLimit {
			return nil, errTooLarge
		}
		if out, err = appendSnappyBlock(out, rest[:n], dn); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	return out, nil
}

func appendSnappyBlock(out, block []byte, n int) ([]byte, error) {
	start := len(out)
	out = append(out, make([]byte, n)...)
	_, err := s2.Decode(out[start:], block)
	return out, err
}

// compressors holds one franz-go compressor per codec, made on first use.
// Making one per call cost more than the compression itself: each zstd
// compressor allocates its encoder's tables (48 MB allocated to
// re-compress 1 MiB of snappy records into zstd, 18 MB/s), while one kept
// compressor pools its encoders and is safe for concurrent use.
var compressors [CodecZstd + 1]struct {
	once sync.Once
	c    kgo.Compressor
	err  error
}

// Compress compresses a records section with codec, using the same encoders
// franz-go producers use, so rewritten batches look like client batches.
func Compress(codec int, src []byte) ([]byte, error) {
	var c kgo.CompressionCodec
	switch codec {
	case CodecNone:
		return src, nil
	case CodecGzip:
		c = kgo.GzipCompression()
	case CodecSnappy:
		c = kgo.SnappyCompression()
	case CodecLz4:
		c = kgo.Lz4Compression()
	case CodecZstd:
		c = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, codec)
	}
	k := &compressors[codec]
	k.once.Do(func() { k.c, k.err = kgo.DefaultCompressor(c) })
	if k.err != nil {
		return nil, fmt.Errorf("creating codec %d compressor: %w", codec, k.err)
	}
	var buf bytes.Buffer
	out, used := k.c.Compress(&buf, src)
	if int(used) != codec || out == nil {
		return nil, fmt.Errorf("codec %d compressor did not compress", codec)
	}
	return bytes.Clone(out), nil
}
