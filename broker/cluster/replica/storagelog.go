package replica

import (
	"errors"
	"fmt"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// A storage partition is a replica's log: storage.Partition has the
// follower side (AppendAsFollower, TruncateFullyAndStartAt) next to the
// leader side.
var _ PartitionLog = (*storage.Partition)(nil)

// The manager fences a storage log's old leader epochs (see
// trackedLog.fenceOlderEpochs); a change of the method would otherwise
// silently leave them open.
var _ epochFence = (*storage.Partition)(nil)

// The manager records a new leadership's epoch in the storage log's epoch
// cache (see trackedLog.startEpoch).
var _ epochStarter = (*storage.Partition)(nil)

// The replication listener sends a storage log's batches to followers from
// its segment files (sliceReader); a change of the method would otherwise
// silently read them into memory again.
var _ sliceReader = (*storage.Partition)(nil)

// Over TLS the replication listener reads a storage log's batches into
// pooled memory (bufferedReader).
var _ bufferedReader = (*storage.Partition)(nil)

// A restarted leader starts from the high watermark storage restored
// (trackedLog.knownHighWatermark).
var _ highWatermarkKeeper = (*storage.Partition)(nil)

// StoreLogs opens partitions of a storage.Store for the Manager.
type StoreLogs struct {
	Store *storage.Store
	// Config turns topic configs into storage settings (the server's
	// translation); nil means storage defaults.
	Config func(configs map[string]string) storage.TopicConfig
}

// ProbeSpace tells whether the store's disk takes writes again after a
// write failed for lack of space (storage.Store.ProbeSpace).
func (s StoreLogs) ProbeSpace() error { return s.Store.ProbeSpace() }

// Open implements Logs.
func (s StoreLogs) Open(topic string, partition int32, id metadata.TopicID, configs map[string]string) (PartitionLog, error) {
	if p, ok := s.Store.Partition(topic, partition); ok {
		if err := p.ClaimTopicID(storage.TopicID(id)); err != nil {
			return nil, fmt.Errorf("opening replica %s-%d: %w", topic, partition, err)
		}
		return p, nil
	}
	var cfg storage.TopicConfig
	if s.Config != nil {
		cfg = s.Config(configs)
	}
	p, err := s.Store.CreatePartitionWithID(topic, partition, storage.TopicID(id), cfg)
	if err != nil {
		return nil, fmt.Errorf("creating replica %s-%d: %w", topic, partition, err)
	}
	return p, nil
}

// Delete implements Logs. A topic this broker already deleted (the server
// deletes on the broker that took the DeleteTopics request) is not an error.
func (s StoreLogs) Delete(topic string) error {
	if err := s.Store.DeleteTopic(topic); err != nil && !errors.Is(err, storage.ErrUnknownTopicOrPartition) {
		return err
	}
	return nil
}

// DeletePartition implements Logs.
func (s StoreLogs) DeletePartition(tp TopicPartition) error {
	if err := s.Store.DeletePartition(tp.Topic, tp.Partition); err != nil && !errors.Is(err, storage.ErrUnknownTopicOrPartition) {
		return err
	}
	return nil
}

// Held implements Logs.
func (s StoreLogs) Held() []TopicPartition {
	parts := s.Store.Partitions()
	out := make([]TopicPartition, len(parts))
	for i, p := range parts {
		out[i] = TopicPartition{p.Topic(), p.PartitionIndex()}
	}
	return out
}
