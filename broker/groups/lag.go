package groups

import (
	"cmp"
	"slices"
)

// PartitionLag is how far a group's committed offset trails the end of a
// partition.
type PartitionLag struct {
	Topic     string
	Partition int32
	Committed int64
	End       int64 // the partition's high watermark when measured
	Lag       int64 // End - Committed, never negative
}

// TopicLag sums a group's lag over one topic, as Amazon MSK's per
// consumer-group metrics do (SumOffsetLag, MaxOffsetLag).
type TopicLag struct {
	Topic string
	Sum   int64
	Max   int64
}

// GroupLag measures a group's lag on every partition it has committed to.
// end returns a partition's high watermark, or false when the partition no
// longer exists (its offsets are then skipped). ok is false when the group
// does not exist. Results are sorted by topic and partition.
func (c *Coordinator) GroupLag(group string, end func(topic string, partition int32) (int64, bool)) (partitions []PartitionLag, topics []TopicLag, ok bool) {
	committed, ok := c.CommittedOffsets(group)
	if !ok {
		return nil, nil, false
	}
	for _, o := range committed {
		hw, exists := end(o.Topic, o.Partition)
		if !exists {
			continue
		}
		lag := max(hw-o.Offset, 0)
		partitions = append(partitions, PartitionLag{Topic: o.Topic, Partition: o.Partition, Committed: o.Offset, End: hw, Lag: lag})
		if n := len(topics); n == 0 || topics[n-1].Topic != o.Topic {
			topics = append(topics, TopicLag{Topic: o.Topic})
		}
		t := &topics[len(topics)-1]
		t.Sum += lag
		t.Max = max(t.Max, lag)
	}
	// CommittedOffsets is sorted by topic, so topics is too; keep the
	// guarantee explicit for callers.
	slices.SortFunc(topics, func(a, b TopicLag) int { return cmp.Compare(a.Topic, b.Topic) })
	return partitions, topics, true
}
