package metastore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPersistAndReload(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	cluster := s.ClusterID()
	if len(cluster) != 22 {
		t.Fatalf("cluster id %q", cluster)
	}
	a, err := s.CreateTopic("a", 2, map[string]string{"retention.ms": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic("a", 1, nil); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := s.CreateTopic("b", 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddPartitions("a", 4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddPartitions("a", 3); !errors.Is(err, ErrInvalidChange) {
		t.Fatalf("shrink: %v", err)
	}
	if err := s.DeleteTopic("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic("b"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("double delete: %v", err)
	}
	if err := s.SetBrokerConfigs(ClusterDefault, map[string]string{"log.retention.ms": "5"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBrokerConfigs(1, map[string]string{"log.retention.ms": "6"}); err != nil {
		t.Fatal(err)
	}
	if err := s.BumpLeaderEpochs(); err != nil {
		t.Fatal(err)
	}
	first, err := s.AllocateProducerIDBlock()
	if err != nil {
		t.Fatal(err)
	}

	r, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.ClusterID() != cluster {
		t.Fatalf("cluster id %q after reload, want %q", r.ClusterID(), cluster)
	}
	topics := r.Topics()
	if len(topics) != 1 || topics[0].Name != "a" || len(topics[0].Partitions) != 4 || topics[0].ID != a.ID {
		t.Fatalf("topics after reload: %+v", topics)
	}
	if topics[0].Configs["retention.ms"] != "1000" || topics[0].Partitions[0].LeaderEpoch != 1 {
		t.Fatalf("topic after reload: %+v", topics[0])
	}
	if byID, ok := r.TopicByID(a.ID); !ok || byID.Name != "a" {
		t.Fatalf("by id: %+v %v", byID, ok)
	}
	if r.BrokerConfigs(ClusterDefault)["log.retention.ms"] != "5" || r.BrokerConfigs(1)["log.retention.ms"] != "6" || len(r.BrokerConfigs(2)) != 0 {
		t.Fatalf("broker configs: default %v, node 1 %v", r.BrokerConfigs(ClusterDefault), r.BrokerConfigs(1))
	}
	// Producer ids never repeat across a reload.
	next, err := r.AllocateProducerIDBlock()
	if err != nil {
		t.Fatal(err)
	}
	if next < first+ProducerIDBlockSize {
		t.Fatalf("block %d reuses ids of block %d", next, first)
	}
}

func TestCopiesAreIndependent(t *testing.T) {
	s, err := Open(t.TempDir(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic("a", 1, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Topic("a")
	got.Configs["k"] = "changed"
	got.Partitions[0].LeaderEpoch = 99
	again, _ := s.Topic("a")
	if again.Configs["k"] != "v" || again.Partitions[0].LeaderEpoch != 0 {
		t.Fatalf("store changed through a copy: %+v", again)
	}
}

func TestClusterIDMismatchRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, "two"); err == nil {
		t.Fatal("opened a data directory of another cluster")
	}
	if s, err := Open(dir, ""); err != nil || s.ClusterID() != "one" {
		t.Fatalf("open without a configured id: %v", err)
	}
}

func TestFailedWriteChangesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	// The directory vanishing makes every write fail, even for root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic("a", 1, nil); err == nil {
		t.Fatal("create succeeded without a directory")
	}
	if _, ok := s.Topic("a"); ok {
		t.Fatal("failed create is visible")
	}
}

func TestCorruptFileRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, ""); err == nil {
		t.Fatal("opened a corrupt metadata file")
	}
}
