package recordbatch

import (
	"fmt"
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
// compression.type is not producer: the records are inflated and
// compressed again, and every header field (offset deltas, timestamps,
// producer id, epoch and base sequence, the transactional flag) stays as
// the producer sent it; attributes change only in their codec bits, and
// the CRC is computed anew. Control batches are never compressed.
//
// When every batch already has the codec (or codec is CodecProducer) it
// returns b itself after reading only the headers: that is the path of a
// topic whose producers compress as it asks, and it must stay free.
//
// A batch that does not pass the checks storage makes before writing
// (framing, magic, CRC, ValidateProduced) is not rewritten: Recompress
// then returns b unchanged so that storage refuses it with its usual
// error; a CRC computed over corrupt records would make them look sound.
// A batch whose records cannot be inflated is refused with ErrCorrupt, one
// whose inflated records do not match its header with ErrInvalid.
func Recompress(b []byte, codec int) ([]byte, error) {
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
		if Check(&h, data) != nil || ValidateProduced(&h, data) != nil {
			return b, nil
		}
		nb, err := RecompressBatch(&h, data, codec)
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
// records compressed in codec, keeping every other header field.
func RecompressBatch(h *Header, data []byte, codec int) ([]byte, error) {
	records, err := Decompress(h.Codec(), data[HeaderSize:])
	if err != nil {
		return nil, err
	}
	// The inflated records are re-framed by the new codec's encoder as
	// they are; check they are what the header says first, as
	// ValidateProduced does for uncompressed batches, so that a batch the
	// broker writes anew never carries records that do not parse.
	n := 0
	err = ForEachRecord(records, func(r *Record) error {
		if r.OffsetDelta != int32(n) {
			return fmt.Errorf("%w: record %d has offset delta %d", ErrInvalid, n, r.OffsetDelta)
		}
		n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n != int(h.RecordCount) {
		return nil, fmt.Errorf("%w: header says %d records, found %d", ErrInvalid, h.RecordCount, n)
	}
	nh := *h
	nh.Attributes = h.Attributes&^CompressionMask | int16(codec)
	return Encode(nh, records)
}
