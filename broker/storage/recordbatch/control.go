package recordbatch

import (
	"encoding/binary"
	"fmt"
)

// Control records (KIP-98). A control batch has the control and
// transactional attribute bits set and holds one record whose key is
//
//	version int16 (0), type int16 (0 ABORT, 1 COMMIT)
//
// and whose value, for both types, is the EndTransactionMarker
//
//	version int16 (0), coordinatorEpoch int32
//
// as Kafka's ControlRecordType and EndTransactionMarker write them.

// Control record types.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// endTxnMarkerSize is the size of a version 0 marker value; later versions
// may append fields, which readers skip as Kafka's do.
const endTxnMarkerSize = 6

// EndTxnMarker is the content of a COMMIT or ABORT control record.
type EndTxnMarker struct {
	Commit           bool
	CoordinatorEpoch int32
}

// EncodeEndTxnMarker builds the control batch that ends a transaction of
// producerID/producerEpoch, as WriteTxnMarkers makes the partition leader
// write it: one record, offset 0, timestamp ts, no sequence.
func EncodeEndTxnMarker(producerID int64, producerEpoch int16, m EndTxnMarker, ts int64) ([]byte, error) {
	typ := ControlAbort
	if m.Commit {
		typ = ControlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(m.CoordinatorEpoch))
	rec := AppendNewRecord(nil, NewRecord{Key: key, Value: value})
	return Encode(Header{
		PartitionLeaderEpoch: -1,
		Attributes:           TransactionalBit | ControlBit,
		BaseTimestamp:        ts,
		MaxTimestamp:         ts,
		ProducerID:           producerID,
		ProducerEpoch:        producerEpoch,
		BaseSequence:         -1,
		RecordCount:          1,
	}, rec)
}

// ParseControl reads the control record of a control batch b (a whole
// batch, header included). ok is false for an empty control batch, which
// the log cleaner leaves when it has removed a marker's record. A control
// record that is not a transaction marker (a type other than COMMIT or
// ABORT) is reported with its type and a zero marker, so callers can skip it.
func ParseControl(h *Header, b []byte) (typ int16, m EndTxnMarker, ok bool, err error) {
	if !h.IsControl() {
		return 0, m, false, fmt.Errorf("%w: batch at offset %d is not a control batch", ErrInvalid, h.BaseOffset)
	}
	if len(b) < HeaderSize {
		return 0, m, false, fmt.Errorf("%w: control batch of %d bytes", ErrTruncated, len(b))
	}
	recs, err := Decompress(h.Codec(), b[HeaderSize:])
	if err != nil {
		return 0, m, false, err
	}
	var first *Record
	err = ForEachRecord(recs, func(r *Record) error {
		if first == nil {
			c := *r
			first = &c
		}
		return nil
	})
	if err != nil {
		return 0, m, false, fmt.Errorf("control batch at offset %d: %w", h.BaseOffset, err)
	}
	if first == nil {
		return 0, m, false, nil
	}
	if len(first.Key) < 4 {
		return 0, m, false, fmt.Errorf("%w: control record key of %d bytes", ErrInvalid, len(first.Key))
	}
	typ = int16(binary.BigEndian.Uint16(first.Key[2:]))
	if typ != ControlAbort && typ != ControlCommit {
		return typ, m, true, nil
	}
	if len(first.Value) < endTxnMarkerSize {
		return typ, m, false, fmt.Errorf("%w: end-transaction marker value of %d bytes", ErrInvalid, len(first.Value))
	}
	m.Commit = typ == ControlCommit
	m.CoordinatorEpoch = int32(binary.BigEndian.Uint32(first.Value[2:]))
	return typ, m, true, nil
}
