package server

import (
	"slices"
	"testing"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// TestTopicViewKeepsUnchangedPartitions checks that the topic view rebuilt
// after a metadata change keeps the partitions the change left alone
// (without looking their logs up again) and builds anew those it changed,
// those whose replicas' brokers were fenced or came back, and those whose
// log was not open when the view was last built: with thousands of
// partitions every ISR change rebuilt every partition's view on every
// broker.
func TestTopicViewKeepsUnchangedPartitions(t *testing.T) {
	st, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	lookups := 0
	open := map[int32]bool{0: true, 1: true, 2: true}
	logOf := func(topic string, i int32) (*storage.Partition, bool) {
		lookups++
		if !open[i] {
			return nil, false
		}
		p, err := st.CreatePartition(topic, i, storage.TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return p, true
	}
	brokers := map[int32]*metadata.Broker{1: {NodeID: 1}, 2: {NodeID: 2}, 3: {NodeID: 3}}
	mt := metadata.NewTopic("t", metadata.TopicID{1}, nil,
		metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 2}},
		metadata.Partition{Replicas: []int32{2, 1}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2, 1}},
		metadata.Partition{Replicas: []int32{1, 3}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 3}},
		metadata.Partition{Replicas: []int32{2, 3}, Leader: 2, LeaderEpoch: 1, ISR: []int32{2, 3}},
	)
	v1 := topicView("t", mt, nil, brokers, 1, logOf)
	if lookups != 3 {
		t.Fatalf("first view looked up %d logs, want 3 (the replicas of broker 1)", lookups)
	}

	// Partition 1's ISR changes.
	p1 := mt.Partition(1)
	p1.ISR = []int32{2}
	p1.PartitionEpoch++
	mt2 := mt.WithPartition(1, p1)
	lookups = 0
	v2 := topicView("t", mt2, v1, brokers, 1, logOf)
	for _, i := range []int{0, 2, 3} {
		if v2.partitions[i] != v1.partitions[i] {
			t.Fatalf("partition %d, unchanged, was built anew", i)
		}
	}
	if v2.partitions[1] == v1.partitions[1] || !slices.Equal(v2.partitions[1].isr, []int32{2}) || v2.partitions[1].log == nil {
		t.Fatalf("partition 1 after its ISR change: %+v", *v2.partitions[1])
	}
	if lookups != 1 {
		t.Fatalf("an ISR change of one partition looked up %d logs", lookups)
	}

	// Broker 3 is fenced: the partitions it holds a replica of list it
	// offline; the others are kept.
	fenced := map[int32]*metadata.Broker{1: {NodeID: 1}, 2: {NodeID: 2}, 3: {NodeID: 3, Fenced: true}}
	v3 := topicView("t", mt2, v2, fenced, 1, logOf)
	if v3.partitions[0] != v2.partitions[0] || v3.partitions[1] != v2.partitions[1] {
		t.Fatal("partitions without a replica on the fenced broker were built anew")
	}
	for _, i := range []int{2, 3} {
		if !slices.Equal(v3.partitions[i].offline, []int32{3}) {
			t.Fatalf("partition %d lists offline %v, want [3]", i, v3.partitions[i].offline)
		}
	}

	// A log not open when the view was built is looked up again.
	open[0] = false
	v4 := topicView("t", mt2, nil, brokers, 1, logOf)
	open[0] = true
	v5 := topicView("t", mt2, v4, brokers, 1, logOf)
	if v4.partitions[0].log != nil || v5.partitions[0].log == nil {
		t.Fatalf("partition 0's log: %v before it opened, %v after", v4.partitions[0].log, v5.partitions[0].log)
	}

	// A log deleted since the view was built (the partition moved off
	// this broker and straight back, the server seeing neither change) is
	// looked up again: the kept view would answer from a closed log.
	if err := st.DeletePartition("t", 2); err != nil {
		t.Fatal(err)
	}
	v5b := topicView("t", mt2, v5, brokers, 1, logOf)
	if v5b.partitions[0] != v5.partitions[0] {
		t.Fatal("partition 0, its log open, was built anew")
	}
	if l := v5b.partitions[2].log; l == nil || l == v5.partitions[2].log || l.Closed() {
		t.Fatalf("partition 2 kept its deleted log: %p (was %p)", l, v5.partitions[2].log)
	}
	v5 = v5b

	// The same name with another id (deleted and created again) keeps
	// nothing.
	var parts []metadata.Partition
	for _, p := range mt2.Partitions() {
		parts = append(parts, p)
	}
	mt3 := metadata.NewTopic("t", metadata.TopicID{2}, nil, parts...)
	v6 := topicView("t", mt3, v5, brokers, 1, logOf)
	for i := range v6.partitions {
		if v6.partitions[i] == v5.partitions[i] {
			t.Fatalf("partition %d of a new topic of the same name kept the old one's view", i)
		}
	}
}
