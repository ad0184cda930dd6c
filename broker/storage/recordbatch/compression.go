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
// For CodecNone it returns src itself.
func Decompress(codec int, src []byte) ([]byte, error) {
	var out []byte
	var err error
	switch codec {
	case CodecNone:
		return src, nil
	case CodecGzip:
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(src)); err == nil {
			out, err = readLimited(zr)
		}
	case CodecSnappy:
		out, err = decompressSnappy(src)
	case CodecLz4:
		out, err = readLimited(lz4.NewReader(bytes.NewReader(src)))
	case CodecZstd:
		var zr *zstd.Decoder
		zr, err = zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(uint64(decompressLimit)))
		if err == nil {
			out, err = readLimited(zr)
			zr.Close()
		}
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, codec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing codec %d: %w", ErrCorrupt, codec, err)
	}
	return out, nil
}

func readLimited(r io.Reader) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(decompressLimit)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > decompressLimit {
		return nil, errTooLarge
	}
	return out, nil
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
