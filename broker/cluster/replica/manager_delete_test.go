package replica

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// catchingUpControl is a stateControl whose metadata counts as caught up
// only once the test says so, as a restarted broker's does once it holds
// its new registration.
type catchingUpControl struct {
	*stateControl
	caughtUp atomic.Bool
}

func (c *catchingUpControl) CaughtUp(*metadata.State) bool { return c.caughtUp.Load() }

// moveOff reassigns tp to replicas and completes the move the way the
// quorum does: the leader's AlterPartition puts the added replicas in the
// ISR, which drops the removed ones from the replica set.
func (c *catchingUpControl) moveOff(t *testing.T, epochs map[int32]int64, tp TopicPartition, replicas []int32) int64 {
	t.Helper()
	v, _ := c.apply(metadata.ReassignPartitions{Reassignments: []metadata.Reassignment{{Topic: tp.Topic, Partition: tp.Partition, Replicas: replicas}}})
	if errs := v.([]error); errs[0] != nil {
		t.Fatal(errs[0])
	}
	p, _ := c.State().Partition(tp.Topic, tp.Partition)
	if p.TargetReplicas == nil {
		t.Fatalf("%s: reassignment finished at once, want one in progress", tp)
	}
	_, idx := c.apply(metadata.AlterPartition{Topic: tp.Topic, Partition: tp.Partition, LeaderID: p.Leader, BrokerEpoch: epochs[p.Leader],
		LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: p.Replicas})
	if p, _ := c.State().Partition(tp.Topic, tp.Partition); p.TargetReplicas != nil {
		t.Fatalf("%s: reassignment still in progress with ISR %v", tp, p.ISR)
	}
	return idx
}

// TestMovedAwayLogsAreDeleted: a partition reassigned off this broker has
// its log deleted once the move completes (not while it is in progress),
// its other partitions keep theirs; after a restart, a log of a partition
// moved away while the broker was down is deleted only once the metadata
// has caught up, and a log still assigned is kept, not emptied.
func TestMovedAwayLogsAreDeleted(t *testing.T) {
	ctl := &catchingUpControl{stateControl: newStateControl(t)}
	ctl.caughtUp.Store(true)
	ctl.apply(metadata.InitCluster{ClusterID: "c"})
	epochs := map[int32]int64{}
	for _, id := range []int32{1, 2, 3} {
		v, _ := ctl.apply(metadata.RegisterBroker{NodeID: id, Rack: fmt.Sprint(id), ReplicationAddr: "127.0.0.1:1",
			Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}, NowMs: 1000, LeaseMs: 3_600_000})
		epochs[id] = v.(int64)
	}
	_, idx := ctl.apply(metadata.CreateTopic{Name: "t", ID: metadata.TopicID{1}, Assignments: [][]int32{{1, 2}, {1, 2}, {1, 2}}})
	disk := &memLogs{}
	start := func() *Manager {
		mgr := StartManager(ManagerConfig{Control: ctl, Logs: disk, DefaultMinISR: 1, ISRInterval: time.Hour, Logger: logger(t)})
		t.Cleanup(mgr.Close)
		return mgr
	}
	mgr := start()
	waitReconciled := func(idx int64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := mgr.WaitReconciled(ctx, idx); err != nil {
			t.Fatal(err)
		}
	}
	waitReconciled(idx)
	moved, strayed, kept := TopicPartition{"t", 0}, TopicPartition{"t", 1}, TopicPartition{"t", 2}
	for _, tp := range []TopicPartition{moved, strayed, kept} {
		if !disk.has(tp) {
			t.Fatalf("no log for %s", tp)
		}
	}
	for _, tp := range []TopicPartition{moved, strayed, kept} {
		disk.get(tp).appendLeader(t, 0, 3, "data")
	}
	keptData := disk.get(kept).contents()

	// A reassignment in progress keeps this broker among the replicas.
	v, _ := ctl.apply(metadata.ReassignPartitions{Reassignments: []metadata.Reassignment{{Topic: "t", Partition: 0, Replicas: []int32{2, 3}}}})
	if errs := v.([]error); errs[0] != nil {
		t.Fatal(errs[0])
	}
	waitReconciled(ctl.n)
	if !disk.has(moved) {
		t.Fatal("the log of a partition still being moved off this broker was deleted")
	}
	// Its completion removes it: the log goes.
	p, _ := ctl.State().Partition("t", 0)
	_, idx = ctl.apply(metadata.AlterPartition{Topic: "t", Partition: 0, LeaderID: p.Leader, BrokerEpoch: epochs[p.Leader],
		LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: p.Replicas})
	waitReconciled(idx)
	if disk.has(moved) {
		t.Fatalf("%s was moved off this broker; its log is still here", moved)
	}
	if _, _, ok := mgr.Leader("t", 0); ok {
		t.Fatalf("still leading %s after it moved away", moved)
	}

	// Down, then restarted: strayed moves away meanwhile. The restarted
	// broker replays metadata before it catches up, and deletes nothing
	// until it has.
	mgr.Close()
	ctl.caughtUp.Store(false)
	idx = ctl.moveOff(t, epochs, strayed, []int32{2, 3})
	mgr = start()
	waitSeen(t, mgr, idx)
	if !disk.has(strayed) {
		t.Fatalf("%s's log was deleted before the metadata caught up", strayed)
	}
	ctl.caughtUp.Store(true)
	_, idx = ctl.apply(metadata.SetTopicConfigs{Name: "t", Configs: map[string]string{MinISRConfig: "1"}})
	waitReconciled(idx)
	if disk.has(strayed) {
		t.Fatalf("%s, moved off this broker while it was down, still has its log after the metadata caught up", strayed)
	}
	if !disk.has(kept) || disk.get(kept).contents() != keptData {
		t.Fatalf("%s, still assigned here, lost its log:\n%s\nwant\n%s", kept, disk.get(kept).contents(), keptData)
	}
	// The moved partition comes back: it starts from an empty log.
	idx = ctl.moveOff(t, epochs, moved, []int32{2, 3, 1})
	waitReconciled(idx)
	if !disk.has(moved) || disk.get(moved).LogEndOffset() != 0 {
		t.Fatalf("%s back on this broker: log end %d, want a new empty log", moved, disk.get(moved).LogEndOffset())
	}
}
