package recordbatch

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Encode builds a complete batch from header fields and an uncompressed
// records section, compressing it with h's codec. BatchLength and CRC are
// computed; RecordCount must already match the records. The log cleaner uses
// it to write back the records that survive compaction.
func Encode(h Header, records []byte) ([]byte, error) {
	body, err := Compress(h.Codec(), records)
	if err != nil {
		return nil, err
	}
	size := HeaderSize + len(body)
	if size-LogOverhead > math.MaxInt32 {
		return nil, fmt.Errorf("%w: batch of %d bytes too large", ErrInvalid, size)
	}
	b := make([]byte, size)
	copy(b[HeaderSize:], body)
	putHeader(b, h)
	return b, nil
}

// putHeader writes h's fields into b, a whole batch whose records section
// is in place, with BatchLength from len(b) and the CRC computed anew.
func putHeader(b []byte, h Header) {
	size := len(b)
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(h.BaseOffset))
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(size-LogOverhead))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	b[offMagic] = 2
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(h.Attributes))
	binary.BigEndian.PutUint32(b[offLastDelta:], uint32(h.LastOffsetDelta))
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(h.BaseTimestamp))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(h.RecordCount))
	binary.BigEndian.PutUint32(b[offCRC:], ComputeCRC(b))
}
