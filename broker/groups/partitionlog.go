package groups

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// OffsetsTopic is Kafka's internal topic for group offsets and metadata.
const OffsetsTopic = "__consumer_offsets"

// Settings of the offsets topic, as Kafka's offsets.topic.* defaults.
const (
	// offsetsSegmentBytes is offsets.topic.segment.bytes: small segments,
	// so compaction (which never touches the active segment) keeps up.
	offsetsSegmentBytes = 100 << 20
	// offsetsMaxBatchBytes bounds one append: an OffsetCommit of every
	// partition of a large consumer group is one batch, written atomically.
	offsetsMaxBatchBytes = 16 << 20
	// replayReadBytes is how much log one read fetches during replay.
	replayReadBytes = 1 << 20
)

// OffsetsTopicConfig is the storage configuration of __consumer_offsets: a
// compacted topic, so only the last record per key (and recent tombstones)
// is kept. The server may show it in DescribeConfigs.
func OffsetsTopicConfig() storage.TopicConfig {
	return storage.TopicConfig{
		CleanupPolicy:   storage.CleanupCompact,
		SegmentBytes:    offsetsSegmentBytes,
		MaxMessageBytes: offsetsMaxBatchBytes,
	}
}

// PartitionLog is the production OffsetLog: partition 0 of the compacted
// internal topic __consumer_offsets in the broker's storage. Each Append is
// one uncompressed RecordBatch v2, durable per the store's flush policy when
// Append returns.
type PartitionLog struct {
	p *storage.Partition
	// write, when set, appends an encoded batch instead of p.Append: in a
	// cluster it goes through the replica manager (leader epoch, acks=all).
	write func(ctx context.Context, batch []byte) error
	// writeTxn appends an encoded transactional batch once the
	// transaction coordinator confirmed the partition is in the
	// transaction; without it transactional writes are refused.
	writeTxn func(ctx context.Context, txn TxnWrite, batch []byte) error
}

var _ OffsetLog = (*PartitionLog)(nil)

// OpenPartitionLog creates (or opens) __consumer_offsets partition 0 in the
// store, compacted, and returns it as the coordinator's offsets log.
func OpenPartitionLog(store *storage.Store) (*PartitionLog, error) {
	p, err := store.CreatePartition(OffsetsTopic, 0, OffsetsTopicConfig())
	if err != nil {
		return nil, fmt.Errorf("opening the offsets topic %s: %w", OffsetsTopic, err)
	}
	return NewPartitionLog(p), nil
}

// NewPartitionLog uses an already open partition as the offsets log.
func NewPartitionLog(p *storage.Partition) *PartitionLog {
	return &PartitionLog{p: p}
}

// NewReplicatedPartitionLog uses an open partition as the offsets log, reads
// it directly and writes each encoded batch through write, and each
// transactional batch through writeTxn, which must verify the transaction
// with its coordinator (storage.Partition.StartTxnVerification, then
// AppendOptions with the guard and FromCoordinator); both return once the
// batch is durable and replicated to the ISR.
func NewReplicatedPartitionLog(p *storage.Partition, write func(ctx context.Context, batch []byte) error,
	writeTxn func(ctx context.Context, txn TxnWrite, batch []byte) error) *PartitionLog {
	return &PartitionLog{p: p, write: write, writeTxn: writeTxn}
}

// errNoTxnWrites refuses transactional commits on a log with no
// transaction coordinator to verify them with.
var errNoTxnWrites = errors.New("this offsets log takes no transactional writes")

// Partition returns the underlying storage partition, e.g. for Metadata.
func (l *PartitionLog) Partition() *storage.Partition { return l.p }

// Append implements OffsetLog.
func (l *PartitionLog) Append(ctx context.Context, records []Record) error {
	if len(records) == 0 {
		return nil
	}
	batch, err := encodeBatch(records, time.Now().UnixMilli(), nil)
	if err != nil {
		return err
	}
	if l.write != nil {
		err = l.write(ctx, batch)
	} else {
		_, err = l.p.Append(ctx, batch, storage.AppendOptions{})
	}
	if err != nil {
		switch {
		case errors.Is(err, storage.ErrRecordTooLarge):
			err = fmt.Errorf("%w: %w", ErrLogRecordsTooLarge, err)
		case errors.Is(err, storage.ErrClosed):
			err = fmt.Errorf("%w: %w", ErrLogClosed, err)
		}
		return fmt.Errorf("appending %d records to %s: %w", len(records), OffsetsTopic, err)
	}
	return nil
}

// AppendTxn implements OffsetLog: one transactional batch of the
// producer, without sequence numbers (the coordinator writes it, as
// Kafka's AppendOrigin.COORDINATOR).
func (l *PartitionLog) AppendTxn(ctx context.Context, txn TxnWrite, records []Record) error {
	if len(records) == 0 {
		return nil
	}
	if l.writeTxn == nil {
		return fmt.Errorf("%s: %w", OffsetsTopic, errNoTxnWrites)
	}
	batch, err := encodeBatch(records, time.Now().UnixMilli(), &txn)
	if err != nil {
		return err
	}
	if err := l.writeTxn(ctx, txn, batch); err != nil {
		if errors.Is(err, storage.ErrClosed) {
			err = fmt.Errorf("%w: %w", ErrLogClosed, err)
		}
		return fmt.Errorf("appending %d transactional records of producer %d to %s: %w", len(records), txn.ProducerID, OffsetsTopic, err)
	}
	return nil
}

// Replay implements OffsetLog: it reads every batch from the log start to
// the log end and calls fn for each record, with the transaction of a
// transactional batch, and for each COMMIT or ABORT marker.
func (l *PartitionLog) Replay(ctx context.Context, fn func(Record) error) error {
	offset, end := l.p.LogStartOffset(), l.p.LogEndOffset()
	for offset < end {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replaying %s: %w", OffsetsTopic, err)
		}
		data, err := l.p.Read(offset, replayReadBytes, end)
		if err != nil {
			return fmt.Errorf("reading %s at offset %d: %w", OffsetsTopic, offset, err)
		}
		if len(data) == 0 {
			// Nothing left below the end: compaction removed the tail
			// records of the last batch range.
			return nil
		}
		for len(data) > 0 {
			h, err := recordbatch.ParseHeader(data)
			if err != nil {
				return fmt.Errorf("reading %s at offset %d: %w", OffsetsTopic, offset, err)
			}
			if h.Size() > len(data) {
				return fmt.Errorf("reading %s at offset %d: batch of %d bytes cut at %d", OffsetsTopic, h.BaseOffset, h.Size(), len(data))
			}
			batch := data[:h.Size()]
			data = data[h.Size():]
			if err := replayBatch(&h, batch, offset, fn); err != nil {
				return err
			}
			offset = h.LastOffset() + 1
		}
	}
	return nil
}

func replayBatch(h *recordbatch.Header, batch []byte, from int64, fn func(Record) error) error {
	if err := recordbatch.Check(h, batch); err != nil {
		return fmt.Errorf("batch at offset %d of %s: %w", h.BaseOffset, OffsetsTopic, err)
	}
	if h.IsControl() {
		typ, m, ok, err := recordbatch.ParseControl(h, batch)
		if err != nil {
			return fmt.Errorf("control batch at offset %d of %s: %w", h.BaseOffset, OffsetsTopic, err)
		}
		if !ok || h.BaseOffset < from || (typ != recordbatch.ControlCommit && typ != recordbatch.ControlAbort) {
			return nil
		}
		return fn(Record{Txn: &RecordTxn{ProducerID: h.ProducerID, Marker: true, Commit: m.Commit}})
	}
	var txn *RecordTxn
	if h.IsTransactional() {
		txn = &RecordTxn{ProducerID: h.ProducerID}
	}
	records, err := recordbatch.Decompress(h.Codec(), batch[recordbatch.HeaderSize:])
	if err != nil {
		return fmt.Errorf("decompressing batch at offset %d of %s: %w", h.BaseOffset, OffsetsTopic, err)
	}
	err = recordbatch.ForEachRecord(records, func(r *recordbatch.Record) error {
		if h.BaseOffset+int64(r.OffsetDelta) < from {
			return nil // before the requested offset: read in an earlier pass
		}
		return fn(Record{Key: cloneOrNil(r.Key), Value: cloneOrNil(r.Value), Txn: txn})
	})
	if err != nil {
		return fmt.Errorf("records of batch at offset %d of %s: %w", h.BaseOffset, OffsetsTopic, err)
	}
	return nil
}

// encodeBatch builds one uncompressed RecordBatch v2 holding the records,
// with no producer id, or txn's producer as a transactional batch without
// sequence numbers (the storage assigns the offsets).
func encodeBatch(records []Record, now int64, txn *TxnWrite) ([]byte, error) {
	var body []byte
	for i, r := range records {
		body = appendRecord(body, int32(i), r)
	}
	h := recordbatch.Header{
		PartitionLeaderEpoch: -1,
		LastOffsetDelta:      int32(len(records) - 1),
		BaseTimestamp:        now,
		MaxTimestamp:         now,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		BaseSequence:         -1,
		RecordCount:          int32(len(records)),
	}
	if txn != nil {
		h.ProducerID, h.ProducerEpoch = txn.ProducerID, txn.ProducerEpoch
		h.Attributes |= recordbatch.TransactionalBit
	}
	b, err := recordbatch.Encode(h, body)
	if err != nil {
		return nil, fmt.Errorf("encoding %d offsets log records: %w", len(records), err)
	}
	return b, nil
}

// appendRecord appends one record in Kafka's v2 record encoding: length,
// attributes, timestamp delta, offset delta, key, value (-1 length for a
// tombstone), no headers. All varints are zig-zag encoded, as Kafka's are.
func appendRecord(dst []byte, offsetDelta int32, r Record) []byte {
	var body []byte
	body = append(body, 0)              // attributes
	body = binary.AppendVarint(body, 0) // timestamp delta
	body = binary.AppendVarint(body, int64(offsetDelta))
	body = binary.AppendVarint(body, int64(len(r.Key)))
	body = append(body, r.Key...)
	if r.Value == nil {
		body = binary.AppendVarint(body, -1)
	} else {
		body = binary.AppendVarint(body, int64(len(r.Value)))
		body = append(body, r.Value...)
	}
	body = binary.AppendVarint(body, 0) // headers
	dst = binary.AppendVarint(dst, int64(len(body)))
	return append(dst, body...)
}
