package recordbatch

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Record is one record inside a batch, as the log cleaner and timestamp
// lookups need it. Key and Value alias the input bytes; a nil Value is a
// tombstone. Raw is the record's complete encoding, length prefix included,
// and Rest its tail from the key on (key, value, headers), which is copied
// unchanged when a record is re-encoded with a new timestamp delta.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte
	Value          []byte
	Raw            []byte
	Rest           []byte
}

// maxRecordsPerBatch bounds iteration over hostile input.
const maxRecordsPerBatch = math.MaxInt32

// ForEachRecord walks the records encoded back to back in b (the
// uncompressed records section of a batch) and calls fn for each. It fails if
// a record's framing is broken or does not end exactly at the end of b.
func ForEachRecord(b []byte, fn func(r *Record) error) error {
	var r Record
	for pos, n := 0, 0; pos < len(b); n++ {
		if n == maxRecordsPerBatch {
			return fmt.Errorf("%w: too many records", ErrInvalid)
		}
		length, w := binary.Varint(b[pos:])
		if w <= 0 || length < 0 || length > int64(len(b)-pos-w) {
			return fmt.Errorf("%w: record %d at byte %d: bad length", ErrInvalid, n, pos)
		}
		body := b[pos+w : pos+w+int(length)]
		if err := parseRecordBody(body, &r); err != nil {
			return fmt.Errorf("record %d at byte %d: %w", n, pos, err)
		}
		r.Raw = b[pos : pos+w+int(length)]
		if err := fn(&r); err != nil {
			return err
		}
		pos += w + int(length)
	}
	return nil
}

func parseRecordBody(b []byte, r *Record) error {
	if len(b) < 1 {
		return fmt.Errorf("%w: empty record", ErrInvalid)
	}
	r.Attributes = int8(b[0])
	pos := 1
	ts, w := binary.Varint(b[pos:])
	if w <= 0 {
		return fmt.Errorf("%w: bad timestamp delta", ErrInvalid)
	}
	pos += w
	r.TimestampDelta = ts
	od, w := binary.Varint(b[pos:])
	if w <= 0 || od < 0 || od > math.MaxInt32 {
		return fmt.Errorf("%w: bad offset delta", ErrInvalid)
	}
	pos += w
	r.OffsetDelta = int32(od)
	r.Rest = b[pos:]
	var err error
	if r.Key, pos, err = readVarBytes(b, pos); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if r.Value, pos, err = readVarBytes(b, pos); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	headers, w := binary.Varint(b[pos:])
	if w <= 0 || headers < 0 || headers > int64(len(b)) {
		return fmt.Errorf("%w: bad header count", ErrInvalid)
	}
	pos += w
	for i := int64(0); i < headers; i++ {
		var key []byte
		if key, pos, err = readVarBytes(b, pos); err != nil || key == nil {
			return fmt.Errorf("%w: header %d key", ErrInvalid, i)
		}
		if _, pos, err = readVarBytes(b, pos); err != nil {
			return fmt.Errorf("header %d value: %w", i, err)
		}
	}
	if pos != len(b) {
		return fmt.Errorf("%w: %d bytes after the headers", ErrInvalid, len(b)-pos)
	}
	return nil
}

// readVarBytes reads a varint-length-prefixed byte string; length -1 is nil.
func readVarBytes(b []byte, pos int) ([]byte, int, error) {
	n, w := binary.Varint(b[pos:])
	if w <= 0 || n < -1 || n > int64(len(b)-pos-w) {
		return nil, pos, fmt.Errorf("%w: bad length", ErrInvalid)
	}
	pos += w
	if n == -1 {
		return nil, pos, nil
	}
	return b[pos : pos+int(n)], pos + int(n), nil
}

// AppendRecord appends the encoding of r to dst with timestamp delta tsDelta,
// reusing r.Rest (key, value, headers) unchanged.
func AppendRecord(dst []byte, r *Record, tsDelta int64) []byte {
	var tmp [3 * binary.MaxVarintLen64]byte
	body := tmp[:0]
	body = append(body, byte(r.Attributes))
	body = binary.AppendVarint(body, tsDelta)
	body = binary.AppendVarint(body, int64(r.OffsetDelta))
	dst = binary.AppendVarint(dst, int64(len(body)+len(r.Rest)))
	dst = append(dst, body...)
	return append(dst, r.Rest...)
}

// NewRecord is a record to encode with AppendNewRecord.
type NewRecord struct {
	OffsetDelta    int32
	TimestampDelta int64
	Key, Value     []byte // nil is encoded as null
	Headers        []RecordHeader
}

// RecordHeader is one record header.
type RecordHeader struct {
	Key   string
	Value []byte
}

// AppendNewRecord appends the wire encoding of r to dst.
func AppendNewRecord(dst []byte, r NewRecord) []byte {
	body := []byte{0}
	body = binary.AppendVarint(body, r.TimestampDelta)
	body = binary.AppendVarint(body, int64(r.OffsetDelta))
	body = appendVarBytes(body, r.Key)
	body = appendVarBytes(body, r.Value)
	body = binary.AppendVarint(body, int64(len(r.Headers)))
	for _, h := range r.Headers {
		body = appendVarBytes(body, []byte(h.Key))
		body = appendVarBytes(body, h.Value)
	}
	dst = binary.AppendVarint(dst, int64(len(body)))
	return append(dst, body...)
}

func appendVarBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}
