package txn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// StateTopic is Kafka's internal topic of transaction state.
const StateTopic = "__transaction_state"

// Errors a Log may wrap so the coordinator answers what Kafka does; any
// other error is answered COORDINATOR_NOT_AVAILABLE.
var (
	// ErrNotLeader: this broker no longer leads the partition
	// (NOT_COORDINATOR: the client looks for the coordinator again).
	ErrNotLeader = errors.New("not the leader of the transaction log partition")
	// ErrNotAppended: the write was refused before anything was appended
	// (too few in-sync replicas), so the log and memory still agree.
	ErrNotAppended = errors.New("transaction log write refused before appending")
)

// Log is one partition of __transaction_state as a shard uses it.
type Log interface {
	// Append writes the records atomically and returns once they are
	// durable and replicated to the in-sync replicas.
	Append(ctx context.Context, records []Record) error
	// Replay calls fn for every record in the log, oldest first.
	Replay(ctx context.Context, fn func(Record) error) error
}

// StateTopicConfig is the storage configuration of __transaction_state, as
// Kafka's transaction.state.log.* defaults: compacted (the last record per
// transactional id is the state), small segments so compaction keeps up.
func StateTopicConfig() storage.TopicConfig {
	return storage.TopicConfig{
		CleanupPolicy:   storage.CleanupCompact,
		SegmentBytes:    100 << 20,
		MaxMessageBytes: 1 << 20,
	}
}

// replayReadBytes is how much log one read fetches during replay.
const replayReadBytes = 1 << 20

// PartitionLog is a partition of __transaction_state in the broker's
// storage: it reads the partition directly and writes each encoded batch
// through write, which must return once the batch is durable and
// replicated (the replica manager with acks=all).
type PartitionLog struct {
	p     *storage.Partition
	write func(ctx context.Context, batch []byte) error
}

var _ Log = (*PartitionLog)(nil)

// NewPartitionLog uses an open partition as a shard's log.
func NewPartitionLog(p *storage.Partition, write func(ctx context.Context, batch []byte) error) *PartitionLog {
	return &PartitionLog{p: p, write: write}
}

// Append implements Log.
func (l *PartitionLog) Append(ctx context.Context, records []Record) error {
	if len(records) == 0 {
		return nil
	}
	now := time.Now().UnixMilli()
	var body []byte
	for i, r := range records {
		body = recordbatch.AppendNewRecord(body, recordbatch.NewRecord{OffsetDelta: int32(i), Key: r.Key, Value: r.Value})
	}
	batch, err := recordbatch.Encode(recordbatch.Header{
		PartitionLeaderEpoch: -1, LastOffsetDelta: int32(len(records) - 1),
		BaseTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: int32(len(records)),
	}, body)
	if err != nil {
		return fmt.Errorf("encoding %d transaction log records: %w", len(records), err)
	}
	if err := l.write(ctx, batch); err != nil {
		return fmt.Errorf("appending to %s-%d: %w", StateTopic, l.p.PartitionIndex(), err)
	}
	return nil
}

// Replay implements Log: every record from the log start to the log end
// (a leader's whole log: what it has, its followers will have).
func (l *PartitionLog) Replay(ctx context.Context, fn func(Record) error) error {
	offset, end := l.p.LogStartOffset(), l.p.LogEndOffset()
	for offset < end {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replaying %s-%d: %w", StateTopic, l.p.PartitionIndex(), err)
		}
		data, err := l.p.Read(offset, replayReadBytes, end)
		if err != nil {
			return fmt.Errorf("reading %s-%d at offset %d: %w", StateTopic, l.p.PartitionIndex(), offset, err)
		}
		if len(data) == 0 {
			return nil // compaction emptied the tail
		}
		for len(data) > 0 {
			h, err := recordbatch.ParseHeader(data)
			if err != nil {
				return fmt.Errorf("reading %s-%d at offset %d: %w", StateTopic, l.p.PartitionIndex(), offset, err)
			}
			if h.Size() > len(data) {
				return fmt.Errorf("reading %s-%d at offset %d: batch of %d bytes cut at %d", StateTopic, l.p.PartitionIndex(), h.BaseOffset, h.Size(), len(data))
			}
			batch := data[:h.Size()]
			data = data[h.Size():]
			if err := replayBatch(&h, batch, offset, fn); err != nil {
				return fmt.Errorf("%s-%d: %w", StateTopic, l.p.PartitionIndex(), err)
			}
			offset = h.LastOffset() + 1
		}
	}
	return nil
}

func replayBatch(h *recordbatch.Header, batch []byte, from int64, fn func(Record) error) error {
	if err := recordbatch.Check(h, batch); err != nil {
		return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
	}
	if h.IsControl() {
		return nil
	}
	records, err := recordbatch.Decompress(h.Codec(), batch[recordbatch.HeaderSize:])
	if err != nil {
		return fmt.Errorf("decompressing batch at offset %d: %w", h.BaseOffset, err)
	}
	return recordbatch.ForEachRecord(records, func(r *recordbatch.Record) error {
		if h.BaseOffset+int64(r.OffsetDelta) < from {
			return nil
		}
		rec := Record{Key: slices.Clone(r.Key)}
		if r.Value != nil {
			rec.Value = slices.Clone(r.Value)
		}
		return fn(rec)
	})
}

// MemoryLog is a Log held in memory, for tests: it keeps every record.
type MemoryLog struct {
	mu      sync.Mutex
	records []Record
	fail    error
	// appended, when set, is called after each successful Append.
	appended func([]Record)
}

// NewMemoryLog returns an empty in-memory log.
func NewMemoryLog() *MemoryLog { return &MemoryLog{} }

// Append implements Log.
func (l *MemoryLog) Append(ctx context.Context, records []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if l.fail != nil {
		err := l.fail
		l.mu.Unlock()
		return err
	}
	for _, r := range records {
		c := Record{Key: slices.Clone(r.Key)}
		if r.Value != nil {
			c.Value = slices.Clone(r.Value)
		}
		l.records = append(l.records, c)
	}
	hook := l.appended
	l.mu.Unlock()
	if hook != nil {
		hook(records)
	}
	return nil
}

// Replay implements Log.
func (l *MemoryLog) Replay(ctx context.Context, fn func(Record) error) error {
	l.mu.Lock()
	records := slices.Clone(l.records)
	l.mu.Unlock()
	for _, r := range records {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Records returns a copy of what was appended, oldest first.
func (l *MemoryLog) Records() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.records)
}

// FailAppends makes every later Append return err (nil to stop).
func (l *MemoryLog) FailAppends(err error) {
	l.mu.Lock()
	l.fail = err
	l.mu.Unlock()
}
