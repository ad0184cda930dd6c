package groups

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config holds the group coordinator settings. The field comments name the
// Kafka broker property each one mirrors; start from DefaultConfig and
// override what the broker's config file sets.
type Config struct {
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms: when an empty
	// group gets its first member, the coordinator waits this long (extended
	// by the same amount, up to the rebalance timeout, while more members
	// arrive) before completing the first rebalance, so a consumer group that
	// starts all at once gets one rebalance instead of one per member. Zero
	// disables the delay.
	InitialRebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout are
	// group.min.session.timeout.ms and group.max.session.timeout.ms: a
	// JoinGroup asking for a session timeout outside them fails with
	// INVALID_SESSION_TIMEOUT.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// MaxGroupSize is group.max.size: joins past it fail with
	// GROUP_MAX_SIZE_REACHED. Zero means unlimited.
	MaxGroupSize int
	// OffsetsRetention is offsets.retention.minutes: how long committed
	// offsets of a group with no members (or of a topic the group no longer
	// subscribes to) are kept.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheckInterval is offsets.retention.check.interval.ms.
	OffsetsRetentionCheckInterval time.Duration
	// OffsetMetadataMaxBytes is offset.metadata.max.bytes: longer commit
	// metadata fails with OFFSET_METADATA_TOO_LARGE.
	OffsetMetadataMaxBytes int
	// PartitionExists, when set, lets OffsetCommit and OffsetDelete answer
	// UNKNOWN_TOPIC_OR_PARTITION for partitions the broker does not have, as
	// Kafka does. Nil accepts every partition.
	PartitionExists func(topic string, partition int32) bool
	// Logger receives group lifecycle logs; nil uses slog.Default().
	Logger *slog.Logger
	// Now is the clock for commit and state timestamps; nil uses time.Now.
	// Timers (sessions, rebalances) always run on real time.
	Now func() time.Time
}

// DefaultConfig returns Kafka's defaults for every setting.
func DefaultConfig() Config {
	return Config{
		InitialRebalanceDelay:         3 * time.Second,
		MinSessionTimeout:             6 * time.Second,
		MaxSessionTimeout:             30 * time.Minute,
		OffsetsRetention:              7 * 24 * time.Hour,
		OffsetsRetentionCheckInterval: 10 * time.Minute,
		OffsetMetadataMaxBytes:        4096,
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.InitialRebalanceDelay < 0 {
		errs = append(errs, fmt.Errorf("group.initial.rebalance.delay.ms must not be negative, got %v", c.InitialRebalanceDelay))
	}
	if c.MinSessionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("group.min.session.timeout.ms must be positive, got %v", c.MinSessionTimeout))
	}
	if c.MaxSessionTimeout < c.MinSessionTimeout {
		errs = append(errs, fmt.Errorf("group.max.session.timeout.ms (%v) must not be below group.min.session.timeout.ms (%v)", c.MaxSessionTimeout, c.MinSessionTimeout))
	}
	if c.MaxGroupSize < 0 {
		errs = append(errs, fmt.Errorf("group.max.size must not be negative, got %d", c.MaxGroupSize))
	}
	if c.OffsetsRetention <= 0 {
		errs = append(errs, fmt.Errorf("offsets.retention.minutes must be positive, got %v", c.OffsetsRetention))
	}
	if c.OffsetsRetentionCheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("offsets.retention.check.interval.ms must be positive, got %v", c.OffsetsRetentionCheckInterval))
	}
	if c.OffsetMetadataMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("offset.metadata.max.bytes must not be negative, got %d", c.OffsetMetadataMaxBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid group coordinator config (start from groups.DefaultConfig()): %w", err)
	}
	return nil
}
