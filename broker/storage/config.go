package storage

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// Timestamp types (message.timestamp.type).
const (
	CreateTime    = "CreateTime"
	LogAppendTime = "LogAppendTime"
)

// Cleanup policies (cleanup.policy).
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

// Kafka's defaults for topic log settings.
const (
	DefaultSegmentBytes       = 1 << 30
	DefaultSegmentMs          = 7 * 24 * time.Hour
	DefaultRetentionMs        = 7 * 24 * time.Hour
	DefaultDeleteRetentionMs  = 24 * time.Hour
	DefaultMaxMessageBytes    = 1048588
	DefaultIndexIntervalBytes = 4096
	DefaultMinCleanableRatio  = 0.5
	// DefaultFileDeleteDelay is Kafka's file.delete.delay.ms.
	DefaultFileDeleteDelay = time.Minute
)

// NoFileDeleteDelay is TopicConfig.FileDeleteDelay for file.delete.delay.ms=0:
// a segment leaving the log is deleted at once (the zero value means the
// default).
const NoFileDeleteDelay time.Duration = -1

// TopicConfig holds the per-topic log settings, under their Kafka names. A
// zero field means "Kafka's default" (see WithDefaults); use -1 for
// "forever/unlimited" where Kafka does.
type TopicConfig struct {
	SegmentBytes         int64         // segment.bytes (default 1 GiB, at most 2 GiB - 1)
	SegmentMs            time.Duration // segment.ms (default 7 days)
	RetentionMs          time.Duration // retention.ms (-1 = forever; default 7 days)
	RetentionBytes       int64         // retention.bytes (-1 = unlimited, the default)
	CleanupPolicy        string        // cleanup.policy: "delete" (default), "compact", "compact,delete"
	DeleteRetentionMs    time.Duration // delete.retention.ms (tombstones kept this long after compaction; default 1 day)
	MaxMessageBytes      int32         // max.message.bytes (largest batch; default 1048588)
	IndexIntervalBytes   int32         // index.interval.bytes (default 4096)
	MessageTimestampType string        // message.timestamp.type: CreateTime (default) | LogAppendTime
	// CompressionType: compression.type, the codec the leader stores
	// produced batches in ("" or producer: as sent). Storage writes what
	// it is given; the produce path re-compresses before the append
	// (recordbatch.Recompress), and followers copy the leader's bytes.
	CompressionType string
	// MinCleanableDirtyRatio: min.cleanable.dirty.ratio (default 0.5), the
	// share of the cleanable log written since the last compaction pass
	// that triggers the next one.
	MinCleanableDirtyRatio float64
	// FileDeleteDelay: file.delete.delay.ms (default 1 minute;
	// NoFileDeleteDelay deletes at once). A segment that retention,
	// DeleteRecords or compaction takes out of the log, and the files of
	// a deleted partition, are renamed and kept this long before they are
	// closed and removed, so that a fetch sending them from the files
	// (FileSlice) completes.
	FileDeleteDelay time.Duration
}

// WithDefaults returns c with zero fields replaced by Kafka's defaults and
// out-of-range values clamped to what the on-disk format can hold.
func (c TopicConfig) WithDefaults() TopicConfig {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	// Index entries hold 32-bit file positions.
	c.SegmentBytes = min(c.SegmentBytes, math.MaxInt32)
	if c.SegmentMs <= 0 {
		c.SegmentMs = DefaultSegmentMs
	}
	if c.RetentionMs == 0 {
		c.RetentionMs = DefaultRetentionMs
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = -1
	}
	if c.CleanupPolicy == "" {
		c.CleanupPolicy = CleanupDelete
	}
	if c.DeleteRetentionMs <= 0 {
		c.DeleteRetentionMs = DefaultDeleteRetentionMs
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MessageTimestampType == "" {
		c.MessageTimestampType = CreateTime
	}
	if c.FileDeleteDelay == 0 {
		c.FileDeleteDelay = DefaultFileDeleteDelay
	}
	if c.FileDeleteDelay < 0 {
		c.FileDeleteDelay = NoFileDeleteDelay
	}
	if c.MinCleanableDirtyRatio <= 0 || c.MinCleanableDirtyRatio > 1 {
		c.MinCleanableDirtyRatio = DefaultMinCleanableRatio
	}
	return c
}

// Validate reports settings that cannot be honoured.
func (c TopicConfig) Validate() error {
	switch c.CleanupPolicy {
	case "", CleanupDelete, CleanupCompact, CleanupCompactDelete, "delete,compact":
	default:
		return fmt.Errorf("cleanup.policy %q: want delete, compact or compact,delete", c.CleanupPolicy)
	}
	switch c.MessageTimestampType {
	case "", CreateTime, LogAppendTime:
	default:
		return fmt.Errorf("message.timestamp.type %q: want CreateTime or LogAppendTime", c.MessageTimestampType)
	}
	if _, err := recordbatch.CodecForCompressionType(c.CompressionType); err != nil {
		return err
	}
	return nil
}

func (c TopicConfig) compact() bool { return strings.Contains(c.CleanupPolicy, CleanupCompact) }

func (c TopicConfig) delete() bool { return strings.Contains(c.CleanupPolicy, CleanupDelete) }

// FlushPolicy says when appended data is forced to disk (fsync) relative to
// the acknowledgement. See docs/broker-disk-format.md.
type FlushPolicy string

const (
	// FlushGroup (the default): Append returns only after an fsync covering
	// its data; concurrent appends to a partition share one fsync.
	FlushGroup FlushPolicy = "group"
	// FlushInterval: Append returns after the write to the page cache; a
	// background flusher fsyncs every Options.FlushInterval.
	FlushInterval FlushPolicy = "interval"
	// FlushNone: no fsync on the write path; data reaches the disk through
	// the OS, segment rolls, recovery checkpoints and clean shutdown.
	FlushNone FlushPolicy = "none"
)

// ParseFlushPolicy parses a log.flush.policy value; "" is FlushGroup.
func ParseFlushPolicy(s string) (FlushPolicy, error) {
	switch FlushPolicy(strings.ToLower(strings.TrimSpace(s))) {
	case "", FlushGroup:
		return FlushGroup, nil
	case FlushInterval:
		return FlushInterval, nil
	case FlushNone:
		return FlushNone, nil
	}
	return "", fmt.Errorf("flush policy %q: want group, interval or none", s)
}

// Options configure a Store.
type Options struct {
	// FlushPolicy: group (default), interval or none.
	FlushPolicy FlushPolicy
	// SyncMethod is how a sync round makes data durable: SyncAuto
	// (default), SyncFdatasync or SyncFS (log.flush.sync).
	SyncMethod SyncMethod
	// FlushInterval is the fsync period of FlushInterval (log.flush.interval.ms); default 200ms.
	FlushInterval time.Duration
	// CheckpointInterval is how often recovery points, index files and
	// producer-state snapshots are written; it bounds how much log a restart
	// after a crash must re-check. Default 5s.
	CheckpointInterval time.Duration
	// RetentionCheckInterval is how often the cleaner applies retention and
	// compaction (log.retention.check.interval.ms); default 30s.
	RetentionCheckInterval time.Duration
	// ProducerIDExpiration drops idempotent-producer state idle this long
	// (producer.id.expiration.ms); default 24h.
	ProducerIDExpiration time.Duration
	// Logger receives warnings (torn tails, I/O errors); default slog.Default().
	Logger *slog.Logger
	// OnSyncRound, when set, is told of every sync round (see syncer):
	// how long it took, from its start until every partition in it was
	// durable or had failed, and how many files it fsynced. It is called
	// on the round's goroutine after the round's waiters were answered,
	// so it must be quick (a metric's atomic adds).
	OnSyncRound func(took time.Duration, files int)
	// Now is the clock, for tests; default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.FlushPolicy == "" {
		o.FlushPolicy = FlushGroup
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 5 * time.Second
	}
	if o.RetentionCheckInterval <= 0 {
		o.RetentionCheckInterval = 30 * time.Second
	}
	if o.ProducerIDExpiration <= 0 {
		o.ProducerIDExpiration = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
