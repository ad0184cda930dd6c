package cluster

import (
	"errors"
	"testing"

	"github.com/tributary/tributary/broker/server/metastore"
)

func TestMetadataStoreForTheServer(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	// A follower node's store: every change is forwarded, and visible
	// locally when the call returns.
	m := &MetadataStore{Controller: tc.follower(), DefaultReplicationFactor: 3}
	if m.ClusterID() != "test-cluster" {
		t.Fatalf("cluster id %q", m.ClusterID())
	}
	top, err := m.CreateTopic("events", 3, map[string]string{"retention.ms": "60000"})
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Partitions) != 3 || top.ID == (metastore.TopicID{}) {
		t.Fatalf("topic %+v", top)
	}
	if _, err := m.CreateTopic("events", 1, nil); !errors.Is(err, metastore.ErrTopicExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if topics := m.Topics(); len(topics) != 1 || topics[0].Name != "events" || topics[0].Configs["retention.ms"] != "60000" {
		t.Fatalf("topics %+v", topics)
	}
	if top, err = m.AddPartitions("events", 5); err != nil || len(top.Partitions) != 5 {
		t.Fatalf("add partitions: %+v %v", top, err)
	}
	if _, err := m.AddPartitions("events", 2); !errors.Is(err, metastore.ErrInvalidChange) {
		t.Fatalf("shrinking: %v", err)
	}
	if _, err := m.SetTopicConfigs("events", map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	if got := m.Topics()[0].Configs; got["cleanup.policy"] != "compact" || len(got) != 1 {
		t.Fatalf("configs %v", got)
	}
	if err := m.SetBrokerConfigs(metastore.ClusterDefault, map[string]string{"log.retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetBrokerConfigs(2, map[string]string{"log.retention.ms": "5"}); err != nil {
		t.Fatal(err)
	}
	if got := m.BrokerConfigs(metastore.ClusterDefault); got["log.retention.ms"] != "1000" {
		t.Fatalf("cluster-wide broker configs %v", got)
	}
	if got := m.BrokerConfigs(2); got["log.retention.ms"] != "5" {
		t.Fatalf("broker 2 configs %v", got)
	}
	if err := m.SetBrokerConfigs(2, nil); err != nil {
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
	if err := m.BumpLeaderEpochs(); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTopic("events"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTopic("events"); !errors.Is(err, metastore.ErrUnknownTopic) {
		t.Fatalf("deleting twice: %v", err)
	}
	if len(m.Topics()) != 0 {
		t.Fatal("topic still listed")
	}
}
