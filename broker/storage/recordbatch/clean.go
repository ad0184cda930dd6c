package recordbatch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// The log cleaner reads each stored batch of a compacted topic twice (its
// keys, then the records to keep) and rewrites the batches that lose
// records. It streams them as the produce path does (ScanRecords): a
// compacted topic may store a batch of a few KB that inflates to
// MaxDecompressedBytes (a bomb whose records have keys), and inflating it
// whole held up to 256 MiB per pass. What a cleaner stream holds is what
// a produce stream holds (a codec window and a 32 KiB buffer) plus the
// rewritten batch's compressed output; it takes one of the same
// streamSlots, so the broker's produce requests and its cleaner together
// run at most that many decoders. An uncompressed batch inflates nothing
// and takes no slot.
//
// Unlike ScanRecords these do not compare the records with the header's
// count or require offset deltas 0, 1, ...: the cleaner reads what storage
// accepted, and reads it as ForEachRecord over the inflated records did.

// ScanKeys streams the records of the stored batch data (h parsed from
// it), writing each record's key bytes to keys and then calling fn with
// the record's framing; keys receives nothing for a null key. fn is called
// once a record has been read whole, so a hash written through keys holds
// that record's key alone if fn resets it. When tee is not nil it receives
// every inflated byte of a compressed batch's records, in pieces (the
// cleaner keeps a small batch's to rewrite it without inflating it again).
// It fails with ErrCorrupt when the records do not inflate and with
// ErrInvalid when they do not parse.
func ScanKeys(h *Header, data []byte, keys, tee io.Writer, fn func(*RecordInfo) error) error {
	window := int64(0)
	if h.Codec() != CodecNone {
		g := acquireStoredStream(h.Codec(), data[HeaderSize:])
		defer g.release()
		window = g.window
	} else {
		tee = nil
	}
	return cleanerScan(h, data, nil, window, func(sc *scanner) { sc.keys, sc.w = keys, tee }, fn)
}

// encodeBuffers collect the small pieces of a rewritten batch (a record's
// new framing, then its key, value and headers in up to three pieces)
// into streamChunk writes: a codec call per piece made gzip 30 % slower.
var encodeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, streamChunk) }}

// RewriteRecords streams the records of the stored batch data (h parsed
// from it) into a new batch with header nh, compressed with nh's codec (the
// cleaner keeps each batch's codec), and returns it. head is called for
// every record once its attributes, timestamp delta and offset delta are
// read, before its key: it says whether the record is kept and with which
// timestamp delta (relative to nh.BaseTimestamp). A kept record's key,
// value and headers are copied as they are, a piece at a time, never held
// whole. nh.RecordCount must be the number of records head keeps.
//
// inflated, when not nil, is data's records section already inflated
// (ScanKeys's tee): it is read instead of inflating data again.
func RewriteRecords(h *Header, data, inflated []byte, nh Header, head func(*RecordInfo) (keep bool, tsDelta int64, err error)) ([]byte, error) {
	window := int64(0)
	switch {
	case h.Codec() != CodecNone && inflated == nil:
		g := acquireStoredStream(h.Codec(), data[HeaderSize:])
		defer g.release()
		window = g.window
	case nh.Codec() != CodecNone:
		g := acquireStream()
		defer g.release()
	}
	out := &boundedBuffer{b: make([]byte, HeaderSize, HeaderSize+len(data)), max: math.MaxInt32 - LogOverhead}
	enc, release, err := newEncoder(nh.Codec(), out)
	if err != nil {
		return nil, err
	}
	defer release()
	var w io.Writer = enc
	var bw *bufio.Writer
	if nh.Codec() != CodecNone {
		bw = encodeBuffers.Get().(*bufio.Writer)
		bw.Reset(enc)
		defer func() { bw.Reset(nil); encodeBuffers.Put(bw) }()
		w = bw
	}
	kept := int32(0)
	err = cleanerScan(h, data, inflated, window, func(sc *scanner) {
		sc.out = w
		sc.head = func(r *RecordInfo) (bool, int64, error) {
			keep, tsDelta, err := head(r)
			if keep {
				kept++
			}
			return keep, tsDelta, err
		}
	}, nil)
	if err == nil && bw != nil {
		err = bw.Flush()
	}
	if err == nil {
		err = enc.Close()
	}
	if errors.Is(err, ErrTooLarge) {
		return nil, fmt.Errorf("%w: rewritten batch of more than %d bytes", ErrInvalid, out.max)
	}
	if err != nil {
		return nil, err
	}
	if kept != nh.RecordCount {
		return nil, fmt.Errorf("%w: %d records kept, header says %d", ErrInvalid, kept, nh.RecordCount)
	}
	putHeader(out.b, nh)
	return out.b, nil
}

// cleanerScan walks data's records through a stream (an uncompressed one,
// or inflated when not nil, is read in place through the same buffer),
// the scanner set up by setup; the caller holds a stream slot granting
// window when it inflates.
func cleanerScan(h *Header, data, inflated []byte, window int64, setup func(*scanner), fn func(*RecordInfo) error) error {
	var r io.Reader
	if inflated != nil {
		r = bytes.NewReader(inflated)
	} else {
		var release func()
		var err error
		r, release, err = openStream(h.Codec(), data[HeaderSize:], window)
		if err != nil {
			return fmt.Errorf("%w: decompressing codec %d: %w", ErrCorrupt, h.Codec(), err)
		}
		defer release()
	}
	sc := scanners.Get().(*scanner)
	defer scanners.Put(sc)
	sc.reset(r, nil)
	defer sc.reset(nil, nil)
	setup(sc)
	var info RecordInfo
	for n := 0; ; n++ {
		if n == maxRecordsPerBatch {
			return fmt.Errorf("%w: too many records", ErrInvalid)
		}
		more, err := sc.record(&info)
		if err != nil {
			return sc.wrap(n, err)
		}
		if !more {
			return nil
		}
		if fn != nil {
			if err := fn(&info); err != nil {
				return err
			}
		}
	}
}
