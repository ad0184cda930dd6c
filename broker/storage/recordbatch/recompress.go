package recordbatch

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// CodecProducer is the compression.type "producer": batches are kept in
// the codec the producer chose. It is no codec of the attributes.
const CodecProducer = -1

// codecNames are compression.type's values other than producer, by codec.
var codecNames = [...]string{CodecNone: "uncompressed", CodecGzip: "gzip", CodecSnappy: "snappy", CodecLz4: "lz4", CodecZstd: "zstd"}

// CodecForCompressionType returns the codec a topic's compression.type
// stores batches in, CodecProducer for "producer".
func CodecForCompressionType(t string) (int, error) {
	if t == "" || t == "producer" {
		return CodecProducer, nil
	}
	for c, name := range codecNames {
		if name == t {
			return c, nil
		}
	}
	return 0, fmt.Errorf("compression.type %q: want producer, %s", t, strings.Join(codecNames[:], ", "))
}

// Recompress returns the batches of a produce request's partition (b,
// whole batches back to back) with each batch whose codec is not codec
// rewritten in codec, as Kafka's LogValidator does for a topic whose
// compression.type is not producer: the records are streamed from the
// batch's decoder into codec's encoder (never held inflated), and every
// header field (offset deltas, timestamps, producer id, epoch and base
// sequence, the transactional flag) stays as the producer sent it;
// attributes change only in their codec bits, and the CRC is computed
// anew. Control batches are never compressed. maxBytes is the topic's
// max.message.bytes: a rewritten batch that would be larger is refused
// with ErrTooLarge as soon as the encoder's output passes it.
//
// When every batch already has the codec (or codec is CodecProducer) it
// returns b itself after reading only the headers: that is the path of a
// topic whose producers compress as it asks, and it must stay free.
//
// A batch that does not pass the checks storage makes before writing
// (framing, magic, CRC, ValidateProduced, its size as sent against
// maxBytes, as Kafka checks it before validating) is not rewritten:
// Recompress then returns b unchanged so that storage refuses it with its
// usual error; a CRC computed over corrupt records would make them look
// sound. A batch whose records cannot be inflated is refused with
// ErrCorrupt, one whose inflated records do not match its header with
// ErrInvalid.
func Recompress(b []byte, codec, maxBytes int) ([]byte, error) {
	if codec == CodecProducer || !needsRecompress(b, codec) {
		return b, nil
	}
	out := make([]byte, 0, len(b))
	for pos := 0; pos < len(b); {
		h, err := ParseHeader(b[pos:])
		if err != nil || h.Size() > len(b)-pos {
			return b, nil
		}
		data := b[pos : pos+h.Size()]
		pos += h.Size()
		if h.Codec() == codec || h.IsControl() {
			out = append(out, data...)
			continue
		}
		if len(data) > maxBytes || Check(&h, data) != nil || ValidateProduced(&h, data) != nil {
			return b, nil
		}
		nb, err := RecompressBatch(&h, data, codec, maxBytes)
		if err != nil {
			return nil, err
		}
		out = append(out, nb...)
	}
	return out, nil
}

// needsRecompress reports whether some batch in b has a codec other than
// codec, reading only the batch lengths and attributes. Malformed framing
// reports true, so that Recompress's full parse decides.
func needsRecompress(b []byte, codec int) bool {
	for pos := 0; pos < len(b); {
		rest := b[pos:]
		if len(rest) < HeaderSize {
			return true
		}
		h := Header{BatchLength: int32(uint32(rest[offBatchLength])<<24 | uint32(rest[offBatchLength+1])<<16 | uint32(rest[offBatchLength+2])<<8 | uint32(rest[offBatchLength+3])),
			Attributes: int16(uint16(rest[offAttributes])<<8 | uint16(rest[offAttributes+1]))}
		if h.BatchLength <= 0 || h.Size() > len(rest) {
			return true
		}
		if h.Codec() != codec && !h.IsControl() {
			return true
		}
		pos += h.Size()
	}
	return false
}

// RecompressBatch rewrites one checked batch (h parsed from data) with its
// records compressed in codec, keeping every other header field. The
// records go from the decoder through a 32 KiB buffer into the encoder,
// checked on the way as ForEachRecord checks them (offset deltas 0, 1, ...
// and as many as the header says), so that a batch the broker writes anew
// never carries records that do not parse; the encoder's output is refused
// with ErrTooLarge once the batch would pass maxBytes.
func RecompressBatch(h *Header, data []byte, codec, maxBytes int) ([]byte, error) {
	g := acquireStream()
	defer g.release()
	out := &boundedBuffer{b: make([]byte, HeaderSize, HeaderSize+min(len(data), maxBytes)), max: maxBytes}
	enc, release, err := newEncoder(codec, out)
	if err != nil {
		return nil, err
	}
	defer release()
	n := int32(0)
	err = scan(h, data, g.window, enc, func(r *RecordInfo) error {
		if r.OffsetDelta != n {
			return fmt.Errorf("%w: record %d has offset delta %d", ErrInvalid, n, r.OffsetDelta)
		}
		n++
		return nil
	})
	if err == nil {
		err = enc.Close()
	}
	if errors.Is(err, ErrTooLarge) {
		return nil, fmt.Errorf("%w: a batch of %d bytes as sent passes %d bytes in codec %d", ErrTooLarge, len(data), maxBytes, codec)
	}
	if err != nil {
		return nil, err
	}
	if len(out.b)-LogOverhead > math.MaxInt32 {
		return nil, fmt.Errorf("%w: batch of %d bytes too large", ErrInvalid, len(out.b))
	}
	nh := *h
	nh.Attributes = h.Attributes&^CompressionMask | int16(codec)
	putHeader(out.b, nh)
	return out.b, nil
}
