package replica

import (
	"context"
	"errors"
	"fmt"

	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// ErrFollowerAppendUnsupported is returned by StorageLog for leader data
// that the storage engine's producer Append cannot store exactly as the
// leader has it (see StorageLog).
var ErrFollowerAppendUnsupported = errors.New("follower append not supported by this storage version")

// StorageLog makes a *storage.Partition a PartitionLog until the storage
// engine has a native follower append (docs/broker-cluster.md, "Storage
// changes"). It stores the leader's batches through Partition.Append,
// one run of same-epoch batches at a time with that epoch, which writes
// them byte for byte at the same offsets when, and only when:
//   - each run starts exactly at the local log end (no offset gap, as
//     compaction leaves),
//   - the topic uses CreateTime (Append stamps LogAppendTime topics with
//     the local clock),
//   - batches are plain producer batches (no control or compacted ones),
//   - the producer-state checks agree with the leader's (they can
//     disagree after a truncation, because storage's TruncateTo keeps the
//     producer state of the cut batches).
//
// Every result is verified: offsets that differ from the leader's, or a
// batch taken as a duplicate, fail with ErrFollowerAppendUnsupported
// instead of diverging silently; the follower then stays out of the ISR.
// TruncateFullyAndStartAt is not possible with storage's API and fails
// the same way.
type StorageLog struct {
	*storage.Partition
}

var _ PartitionLog = StorageLog{}

// AppendAsFollower implements Log.
func (s StorageLog) AppendAsFollower(ctx context.Context, batches []byte) error {
	if s.Config().MessageTimestampType == storage.LogAppendTime {
		return fmt.Errorf("%w: topic %s uses LogAppendTime", ErrFollowerAppendUnsupported, s.Topic())
	}
	for len(batches) > 0 {
		run, epoch, base, last, err := sameEpochRun(batches)
		if err != nil {
			return err
		}
		if leo := s.LogEndOffset(); base != leo {
			return fmt.Errorf("%w: leader batch at offset %d, local log ends at %d", ErrFollowerAppendUnsupported, base, leo)
		}
		// Append rewrites baseOffset and partitionLeaderEpoch in place with
		// the same values; it owns the slice, so give it a copy.
		res, err := s.Append(ctx, append([]byte(nil), batches[:run]...), storage.AppendOptions{LeaderEpoch: epoch})
		if err != nil {
			return fmt.Errorf("appending leader batches %d-%d: %w", base, last, err)
		}
		if res.Duplicate || res.BaseOffset != base || res.LastOffset != last {
			return fmt.Errorf("%w: leader batches %d-%d stored at %d-%d (duplicate %v)", ErrFollowerAppendUnsupported, base, last, res.BaseOffset, res.LastOffset, res.Duplicate)
		}
		batches = batches[run:]
	}
	return nil
}

// sameEpochRun measures the leading batches that share a leader epoch.
func sameEpochRun(b []byte) (n int, epoch int32, base, last int64, err error) {
	for pos := 0; pos < len(b); {
		h, err := recordbatch.ParseHeader(b[pos:])
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("leader batch at byte %d: %w", pos, err)
		}
		if pos+h.Size() > len(b) {
			return 0, 0, 0, 0, fmt.Errorf("leader batch at byte %d: %w", pos, recordbatch.ErrTruncated)
		}
		if pos == 0 {
			epoch, base = h.PartitionLeaderEpoch, h.BaseOffset
		} else if h.PartitionLeaderEpoch != epoch {
			break
		}
		if h.BaseOffset != base && h.BaseOffset != last+1 {
			return 0, 0, 0, 0, fmt.Errorf("%w: leader batches %d then %d leave a gap", ErrFollowerAppendUnsupported, last, h.BaseOffset)
		}
		last = h.LastOffset()
		pos += h.Size()
		n = pos
	}
	return n, epoch, base, last, nil
}

// TruncateFullyAndStartAt implements Log; storage cannot move a log's
// start past its end yet.
func (s StorageLog) TruncateFullyAndStartAt(offset int64) error {
	return fmt.Errorf("%w: cannot restart %s-%d at offset %d", ErrFollowerAppendUnsupported, s.Topic(), s.PartitionIndex(), offset)
}

// StoreLogs opens partitions of a storage.Store for the Manager.
type StoreLogs struct {
	Store *storage.Store
	// Config turns topic configs into storage settings (the server's
	// translation); nil means storage defaults.
	Config func(configs map[string]string) storage.TopicConfig
}

// Open implements Logs.
func (s StoreLogs) Open(topic string, partition int32, configs map[string]string) (PartitionLog, error) {
	if p, ok := s.Store.Partition(topic, partition); ok {
		return StorageLog{p}, nil
	}
	var cfg storage.TopicConfig
	if s.Config != nil {
		cfg = s.Config(configs)
	}
	p, err := s.Store.CreatePartition(topic, partition, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating replica %s-%d: %w", topic, partition, err)
	}
	return StorageLog{p}, nil
}

// Delete implements Logs. A topic this broker already deleted (the server
// deletes on the broker that took the DeleteTopics request) is not an error.
func (s StoreLogs) Delete(topic string) error {
	if err := s.Store.DeleteTopic(topic); err != nil && !errors.Is(err, storage.ErrUnknownTopicOrPartition) {
		return err
	}
	return nil
}
