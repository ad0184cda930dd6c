package groups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Record is one record of the offsets log: a key and a value encoded as in
// Kafka's __consumer_offsets topic (see records.go). A nil Value is a
// tombstone: compaction eventually removes every earlier record with the
// same key, and the tombstone itself after delete.retention.ms.
type Record struct {
	Key   []byte
	Value []byte
	// Txn is set on replay for the records of a transaction
	// (TxnOffsetCommit) and for transaction markers; nil otherwise.
	Txn *RecordTxn
}

// RecordTxn ties a replayed record to a transaction: a record a producer's
// transaction wrote, or (Marker) that transaction's COMMIT or ABORT marker,
// which has no key or value.
type RecordTxn struct {
	ProducerID int64
	Marker     bool
	Commit     bool // for a marker
}

// TxnWrite names the transaction a TxnOffsetCommit writes for.
type TxnWrite struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
}

// Errors an OffsetLog may wrap so the coordinator answers what Kafka does;
// any other error is answered COORDINATOR_NOT_AVAILABLE (retriable).
var (
	// ErrLogRecordsTooLarge: the records do not fit one batch of the log
	// (INVALID_COMMIT_OFFSET_SIZE, not retriable).
	ErrLogRecordsTooLarge = errors.New("offsets log records too large")
	// ErrLogClosed: the log is shutting down (NOT_COORDINATOR, so clients
	// look for the coordinator again).
	ErrLogClosed = errors.New("offsets log closed")
)

// appendErrorCode is the Kafka error code for a failed Append. A log may
// wrap a *kerr.Error to choose the code (a transactional write refused by
// the transaction's checks).
func appendErrorCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, ErrLogRecordsTooLarge):
		return kerr.InvalidCommitOffsetSize.Code
	case errors.Is(err, ErrLogClosed):
		return kerr.NotCoordinator.Code
	default:
		return kerr.CoordinatorNotAvailable.Code
	}
}

// OffsetLog is the durable log the coordinator writes group state to. In
// the broker it is the compacted internal topic __consumer_offsets (see
// NewPartitionLog); tests use MemoryLog.
type OffsetLog interface {
	// Append writes the records atomically (all or none) and returns once
	// they are durable. It is called concurrently for different groups.
	Append(ctx context.Context, records []Record) error
	// AppendTxn writes records as part of a producer's transaction
	// (TxnOffsetCommit): they count only once the transaction's COMMIT
	// marker follows them in the log, which Replay reports. The log
	// checks that the transaction coordinator has the offsets partition
	// in the transaction (KIP-890) before it writes.
	AppendTxn(ctx context.Context, txn TxnWrite, records []Record) error
	// Replay calls fn for every record in the log, oldest first. The
	// coordinator calls it once, before it serves any request.
	Replay(ctx context.Context, fn func(Record) error) error
}

// MemoryLog is an OffsetLog held in memory, for tests and tools: it keeps
// every record (no compaction) and survives a Coordinator restart as long
// as the value itself is kept.
type MemoryLog struct {
	mu      sync.Mutex
	records []Record
	// failAppends, when non-nil, is returned by Append (fault injection).
	failAppends error
}

// NewMemoryLog returns an empty in-memory offsets log.
func NewMemoryLog() *MemoryLog { return &MemoryLog{} }

// Append implements OffsetLog.
func (l *MemoryLog) Append(ctx context.Context, records []Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("appending to memory offsets log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failAppends != nil {
		return l.failAppends
	}
	for _, r := range records {
		l.records = append(l.records, Record{Key: slices.Clone(r.Key), Value: cloneOrNil(r.Value)})
	}
	return nil
}

// AppendTxn implements OffsetLog. The memory log has no transaction
// coordinator to ask: it trusts the caller.
func (l *MemoryLog) AppendTxn(ctx context.Context, txn TxnWrite, records []Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("appending to memory offsets log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failAppends != nil {
		return l.failAppends
	}
	for _, r := range records {
		l.records = append(l.records, Record{Key: slices.Clone(r.Key), Value: cloneOrNil(r.Value), Txn: &RecordTxn{ProducerID: txn.ProducerID}})
	}
	return nil
}

// AppendMarker writes a transaction marker, as WriteTxnMarkers does for
// the real offsets partition.
func (l *MemoryLog) AppendMarker(producerID int64, commit bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, Record{Txn: &RecordTxn{ProducerID: producerID, Marker: true, Commit: commit}})
}

// Replay implements OffsetLog.
func (l *MemoryLog) Replay(ctx context.Context, fn func(Record) error) error {
	l.mu.Lock()
	records := slices.Clone(l.records)
	l.mu.Unlock()
	for _, r := range records {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replaying memory offsets log: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Records returns a copy of everything appended so far, oldest first.
func (l *MemoryLog) Records() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.records)
}

// FailAppends makes every later Append return err (nil restores normal
// behaviour). It lets tests see how the coordinator answers when the disk
// refuses a write.
func (l *MemoryLog) FailAppends(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failAppends = err
}

// cloneOrNil copies b but keeps nil (a tombstone) distinct from empty.
func cloneOrNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return slices.Clone(b)
}

// appendRecords writes to the offsets log without the request's
// cancellation: once a write starts it finishes, so the state in memory
// (updated only after a successful write) never falls behind what the log
// will replay. A client that disconnects mid-commit cannot leave a commit
// that is on disk but missing in memory.
func (c *Coordinator) appendRecords(ctx context.Context, records []Record) error {
	return c.offsets.Append(context.WithoutCancel(ctx), records)
}
