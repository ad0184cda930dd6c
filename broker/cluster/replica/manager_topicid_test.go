package replica

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// TestLogOfAnEarlierTopicIsReplaced: on a storage store holding three
// logs of a topic's name (one created for an earlier topic of that name,
// one without a topic id, one for the current topic), the manager, once
// caught up with metadata that assigns all three to this broker,
// replaces the earlier topic's log with an empty one of the current
// topic, records the current id in the log without one and keeps its
// records, and keeps the current topic's log as it is.
func TestLogOfAnEarlierTopicIsReplaced(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	cur, earlier := metadata.TopicID{1}, storage.TopicID{7}
	fill := func(p *storage.Partition, n int, tag string) {
		t.Helper()
		if _, err := p.Append(ctx, produced(t, n, -1, 0, tag), storage.AppendOptions{LeaderEpoch: 0}); err != nil {
			t.Fatal(err)
		}
	}
	stale, err := store.CreatePartitionWithID("t", 0, earlier, storage.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fill(stale, 4, "earlier")
	unknown, err := store.CreatePartition("t", 1, storage.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fill(unknown, 2, "unknown")
	current, err := store.CreatePartitionWithID("t", 2, storage.TopicID(cur), storage.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fill(current, 3, "current")

	ctl := newStateControl(t)
	ctl.apply(metadata.InitCluster{ClusterID: "c"})
	for _, id := range []int32{1, 2} {
		ctl.apply(metadata.RegisterBroker{NodeID: id, Rack: fmt.Sprint(id), ReplicationAddr: "127.0.0.1:1",
			Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}, NowMs: 1000, LeaseMs: 3_600_000})
	}
	_, idx := ctl.apply(metadata.CreateTopic{Name: "t", ID: cur, Assignments: [][]int32{{1, 2}, {1, 2}, {1, 2}}})
	mgr := StartManager(ManagerConfig{Control: ctl, Logs: StoreLogs{Store: store}, DefaultMinISR: 1, ISRInterval: time.Hour, Logger: logger(t)})
	t.Cleanup(mgr.Close)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := mgr.WaitReconciled(wctx, idx); err != nil {
		t.Fatal(err)
	}

	p, ok := store.Partition("t", 0)
	switch {
	case !ok:
		t.Fatal("t-0 has no log after the earlier topic's was deleted")
	case p == stale || !stale.Closed():
		t.Fatal("t-0 still has the earlier topic's log")
	case p.TopicID() != storage.TopicID(cur) || p.LogEndOffset() != 0:
		t.Fatalf("t-0's new log: topic id %s, end %d; want %s, empty", p.TopicID(), p.LogEndOffset(), cur)
	}
	if p, ok := store.Partition("t", 1); !ok || p != unknown || p.TopicID() != storage.TopicID(cur) || p.LogEndOffset() != 2 {
		t.Fatalf("t-1, a log without a topic id: kept %v, topic id %s, end %d; want the same log, %s, its 2 records", p == unknown, unknown.TopicID(), unknown.LogEndOffset(), cur)
	}
	if p, ok := store.Partition("t", 2); !ok || p != current || p.LogEndOffset() != 3 {
		t.Fatal("t-2, the current topic's log, was not kept as it was")
	}
	for i := range int32(3) {
		if _, _, ok := mgr.Leader("t", i); !ok {
			t.Fatalf("not leading t-%d", i)
		}
	}
}
