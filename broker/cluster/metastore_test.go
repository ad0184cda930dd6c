package cluster

import (
	"errors"
	"slices"
	"testing"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

func TestMetadataStoreForTheServer(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	// A follower node's store: every change is forwarded, and visible
	// locally when the call returns.
	m := &MetadataStore{Controller: tc.follower()}
	if m.ClusterID() != "test-cluster" {
		t.Fatalf("cluster id %q", m.ClusterID())
	}
	top, err := m.CreateTopic(ctxT(t), "events", 3, 3, map[string]string{"retention.ms": "60000"})
	if err != nil {
		t.Fatal(err)
	}
	if top.NumPartitions() != 3 || top.ID == (metadata.TopicID{}) || len(top.Partition(0).Replicas) != 3 {
		t.Fatalf("topic %+v", top)
	}
	if _, err := m.CreateTopic(ctxT(t), "events", 1, 3, nil); !errors.Is(err, metadata.ErrTopicExists) {
		t.Fatalf("duplicate: %v", err)
	}
	pinned, err := m.CreateTopicAssigned(ctxT(t), "pinned", [][]int32{{2}, {3}}, nil)
	if err != nil || !slices.Equal(pinned.Partition(1).Replicas, []int32{3}) || pinned.Partition(1).Leader != 3 {
		t.Fatalf("topic with an assignment: %+v %v", pinned, err)
	}
	if _, err := m.CreateTopicAssigned(ctxT(t), "nowhere", [][]int32{{2}, {9}}, nil); !errors.Is(err, metadata.ErrInvalidReplicaAssignment) {
		t.Fatalf("assignment to an unknown broker: %v", err)
	}
	if _, ok := m.Controller.State().Topic("nowhere"); ok {
		t.Fatal("a refused assignment created the topic")
	}
	if err := m.DeleteTopic(ctxT(t), "pinned"); err != nil {
		t.Fatal(err)
	}
	if topics := m.Topics(); len(topics) != 1 || topics[0].Name != "events" || topics[0].Configs["retention.ms"] != "60000" {
		t.Fatalf("topics %+v", topics)
	}
	if top, err = m.AddPartitions(ctxT(t), "events", 5, nil); err != nil || top.NumPartitions() != 5 {
		t.Fatalf("add partitions: %+v %v", top, err)
	}
	if _, err := m.AddPartitions(ctxT(t), "events", 2, nil); !errors.Is(err, metadata.ErrInvalidPartitions) {
		t.Fatalf("shrinking: %v", err)
	}
	// Explicit replicas for the new partition: as asked, or refused when
	// they do not fit the topic.
	if top, err = m.AddPartitions(ctxT(t), "events", 6, [][]int32{{3, 1, 2}}); err != nil || !slices.Equal(top.Partition(5).Replicas, []int32{3, 1, 2}) {
		t.Fatalf("add a partition with an assignment: %+v %v", top, err)
	}
	for _, bad := range [][][]int32{{{1, 2}}, {{1, 2, 9}}, {{1, 2, 3}, {1, 2, 3}}} {
		if _, err := m.AddPartitions(ctxT(t), "events", 7, bad); !errors.Is(err, metadata.ErrInvalidReplicaAssignment) {
			t.Fatalf("assignment %v: %v", bad, err)
		}
	}
	if _, err := m.SetTopicConfigs(ctxT(t), "events", map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	if got := m.Topics()[0].Configs; got["cleanup.policy"] != "compact" || len(got) != 1 {
		t.Fatalf("configs %v", got)
	}
	if err := m.SetBrokerConfigs(ctxT(t), metadata.ClusterDefault, map[string]string{"log.retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetBrokerConfigs(ctxT(t), 2, map[string]string{"log.retention.ms": "5"}); err != nil {
		t.Fatal(err)
	}
	if got := m.BrokerConfigs(metadata.ClusterDefault); got["log.retention.ms"] != "1000" {
		t.Fatalf("cluster-wide broker configs %v", got)
	}
	if got := m.BrokerConfigs(2); got["log.retention.ms"] != "5" {
		t.Fatalf("broker 2 configs %v", got)
	}
	if err := m.SetBrokerConfigs(ctxT(t), 2, nil); err != nil {
		t.Fatal(err)
	}
	if got := m.BrokerConfigs(2); len(got) != 0 {
		t.Fatalf("broker 2 configs after clearing %v", got)
	}
	a, err := m.AllocateProducerIDBlock()
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&MetadataStore{Controller: tc.nodes[1]}).AllocateProducerIDBlock()
	if err != nil || b == a || (b > a && b < a+ProducerIDBlockSize) || (a > b && a < b+ProducerIDBlockSize) {
		t.Fatalf("blocks %d and %d overlap (%v)", a, b, err)
	}
	if err := m.DeleteTopic(ctxT(t), "events"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTopic(ctxT(t), "events"); !errors.Is(err, metadata.ErrUnknownTopicOrPartition) {
		t.Fatalf("deleting twice: %v", err)
	}
	if len(m.Topics()) != 0 {
		t.Fatal("topic still listed")
	}
}
