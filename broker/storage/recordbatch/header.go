// Package recordbatch reads, checks and rewrites Kafka RecordBatch v2 bytes
// (the "magic 2" message format of KIP-98) without re-encoding the records a
// client sent.
//
// Layout of a batch header (all big endian), byte positions from the start:
//
//	 0 baseOffset           int64
//	 8 batchLength          int32  bytes after this field
//	12 partitionLeaderEpoch int32
//	16 magic                int8   must be 2
//	17 crc                  uint32 CRC-32C of bytes [21, end)
//	21 attributes           int16
//	23 lastOffsetDelta      int32
//	27 baseTimestamp        int64
//	35 maxTimestamp         int64
//	43 producerId           int64
//	51 producerEpoch        int16
//	53 baseSequence         int32
//	57 recordCount          int32
//	61 records...
//
// The CRC starts at attributes, so the broker may rewrite baseOffset and
// partitionLeaderEpoch without touching it; changing maxTimestamp or
// attributes (LogAppendTime) requires recomputing it.
package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Positions of header fields.
const (
	offBaseOffset  = 0
	offBatchLength = 8
	offLeaderEpoch = 12
	offMagic       = 16

	// MagicOffset is where the magic byte sits in every message format
	// version, so old formats can be recognised before parsing.
	MagicOffset      = offMagic
	offCRC           = 17
	offAttributes    = 21
	offLastDelta     = 23
	offBaseTimestamp = 27
	offMaxTimestamp  = 35
	offProducerID    = 43
	offProducerEpoch = 51
	offBaseSequence  = 53
	offRecordCount   = 57

	// HeaderSize is the size of a v2 batch header; records follow it.
	HeaderSize = 61
	// LogOverhead is the part of a batch not counted by batchLength
	// (baseOffset and batchLength themselves).
	LogOverhead = 12
)

// Attribute bits.
const (
	CompressionMask      = 0x07
	TimestampTypeBit     = 0x08 // set: LogAppendTime
	TransactionalBit     = 0x10
	ControlBit           = 0x20
	DeleteHorizonBit     = 0x40 // KIP-534: baseTimestamp holds the tombstone delete horizon
	knownAttributeBitSet = CompressionMask | TimestampTypeBit | TransactionalBit | ControlBit | DeleteHorizonBit
)

// Compression codecs, as in the attributes' low three bits.
const (
	CodecNone   = 0
	CodecGzip   = 1
	CodecSnappy = 2
	CodecLz4    = 3
	CodecZstd   = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned by Parse and Check. They are wrapped with detail.
var (
	// ErrTruncated: the bytes end before the batch does.
	ErrTruncated = errors.New("record batch truncated")
	// ErrCorrupt: a length, magic or CRC is wrong.
	ErrCorrupt = errors.New("record batch corrupt")
	// ErrInvalid: the batch is well formed but breaks a rule (counts, codecs, flags).
	ErrInvalid = errors.New("record batch invalid")
)

// Header is the decoded fixed-size header of one batch.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the full size of the batch on disk or on the wire.
func (h *Header) Size() int { return int(h.BatchLength) + LogOverhead }

// LastOffset is the offset of the last record the batch covers.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Codec is the compression codec number.
func (h *Header) Codec() int { return int(h.Attributes & CompressionMask) }

// IsLogAppendTime reports whether timestamps were set by the broker.
func (h *Header) IsLogAppendTime() bool { return h.Attributes&TimestampTypeBit != 0 }

// IsTransactional reports the transactional attribute.
func (h *Header) IsTransactional() bool { return h.Attributes&TransactionalBit != 0 }

// IsControl reports the control-batch attribute.
func (h *Header) IsControl() bool { return h.Attributes&ControlBit != 0 }

// HasDeleteHorizon reports that BaseTimestamp holds a KIP-534 delete horizon.
func (h *Header) HasDeleteHorizon() bool { return h.Attributes&DeleteHorizonBit != 0 }

// LastSequence is the sequence number of the last record, wrapping at
// MaxInt32 as Kafka's DefaultRecordBatch.incrementSequence does.
func (h *Header) LastSequence() int32 {
	return IncrementSequence(h.BaseSequence, h.LastOffsetDelta)
}

// IncrementSequence adds delta to seq, wrapping past MaxInt32 to 0.
func IncrementSequence(seq, delta int32) int32 {
	if seq > math.MaxInt32-delta {
		return delta - (math.MaxInt32 - seq) - 1
	}
	return seq + delta
}

// ParseHeader decodes the header at the start of b. It checks only that the
// header is complete and that batchLength is plausible; see Check for the rest.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(b), HeaderSize)
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.BatchLength = int32(binary.BigEndian.Uint32(b[offBatchLength:]))
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(b[offRecordCount:]))
	if h.BatchLength < HeaderSize-LogOverhead {
		return h, fmt.Errorf("%w: batchLength %d smaller than a header", ErrCorrupt, h.BatchLength)
	}
	return h, nil
}

// ComputeCRC returns the CRC-32C of a complete batch (bytes from attributes on).
func ComputeCRC(batch []byte) uint32 {
	return crc32.Checksum(batch[offAttributes:], castagnoli)
}

// Check verifies a complete batch b (len(b) == h.Size()): magic 2 and CRC.
// It is the check recovery runs on every batch after the recovery point.
func Check(h *Header, b []byte) error {
	if len(b) != h.Size() {
		return fmt.Errorf("%w: have %d bytes, batch is %d", ErrTruncated, len(b), h.Size())
	}
	if h.Magic != 2 {
		return fmt.Errorf("%w: magic %d, only 2 is supported", ErrCorrupt, h.Magic)
	}
	if got := ComputeCRC(b); got != h.CRC {
		return fmt.Errorf("%w: crc 0x%08x, computed 0x%08x", ErrCorrupt, h.CRC, got)
	}
	return nil
}

// ValidateProduced applies the rules for a batch a producer sent, after
// Check: a known codec, no unknown or broker-only attribute bits, at least one
// record, recordCount == lastOffsetDelta+1 (producers never leave gaps) and,
// for uncompressed batches, record framing that adds up to the batch length.
func ValidateProduced(h *Header, b []byte) error {
	if h.Attributes&^knownAttributeBitSet != 0 {
		return fmt.Errorf("%w: unknown attribute bits 0x%04x", ErrInvalid, h.Attributes)
	}
	if h.Codec() > CodecZstd {
		return fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, h.Codec())
	}
	if h.IsControl() {
		return fmt.Errorf("%w: clients may not send control batches", ErrInvalid)
	}
	if h.HasDeleteHorizon() {
		return fmt.Errorf("%w: delete-horizon attribute is reserved to the log cleaner", ErrInvalid)
	}
	if h.RecordCount <= 0 {
		return fmt.Errorf("%w: record count %d", ErrInvalid, h.RecordCount)
	}
	if h.LastOffsetDelta != h.RecordCount-1 {
		return fmt.Errorf("%w: lastOffsetDelta %d does not match %d records", ErrInvalid, h.LastOffsetDelta, h.RecordCount)
	}
	if h.ProducerID >= 0 && h.ProducerEpoch < 0 {
		return fmt.Errorf("%w: producer id %d with epoch %d", ErrInvalid, h.ProducerID, h.ProducerEpoch)
	}
	if h.Codec() == CodecNone {
		n := 0
		err := ForEachRecord(b[HeaderSize:], func(r *Record) error {
			if r.OffsetDelta != int32(n) {
				return fmt.Errorf("%w: record %d has offset delta %d", ErrInvalid, n, r.OffsetDelta)
			}
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if n != int(h.RecordCount) {
			return fmt.Errorf("%w: header says %d records, found %d", ErrInvalid, h.RecordCount, n)
		}
	}
	return nil
}

// SetBaseOffset rewrites baseOffset in place (outside the CRC).
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch rewrites partitionLeaderEpoch in place (outside the CRC).
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch as LogAppendTime with maxTimestamp ts and
// recomputes the CRC, as Kafka does for message.timestamp.type=LogAppendTime.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | TimestampTypeBit
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	binary.BigEndian.PutUint32(b[offCRC:], ComputeCRC(b))
}
