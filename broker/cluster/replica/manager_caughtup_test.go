package replica

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// waitSeen waits until mgr's run loop has looked at the metadata state
// of index idx (or a newer one), whether it acted on it or not.
func waitSeen(t *testing.T, mgr *Manager, idx int64) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		if seen := mgr.seen.Load(); seen < idx {
			return fmt.Errorf("the manager has looked at metadata index %d, want %d", seen, idx)
		}
		return nil
	})
}

// replayingControl is a restarting broker's control plane: until it has
// caught up, State is a replayed state older than the broker's logs (as
// Raft replays its snapshot and log before the quorum's news arrive);
// after, it is the current one.
type replayingControl struct {
	*stateControl
	old      *metadata.State
	caughtUp atomic.Bool
}

func (c *replayingControl) State() *metadata.State {
	if !c.caughtUp.Load() {
		return c.old
	}
	return c.stateControl.State()
}

func (c *replayingControl) CaughtUp(st *metadata.State) bool {
	return c.caughtUp.Load() && st.Index >= c.old.Index
}

// countingLogs counts the opens of each partition's log.
type countingLogs struct {
	memLogs
	mu    sync.Mutex
	opens map[TopicPartition]int
}

func (c *countingLogs) Open(topic string, partition int32, id metadata.TopicID, configs map[string]string) (PartitionLog, error) {
	c.mu.Lock()
	if c.opens == nil {
		c.opens = map[TopicPartition]int{}
	}
	c.opens[TopicPartition{topic, partition}]++
	c.mu.Unlock()
	return c.memLogs.Open(topic, partition, id, configs)
}

func (c *countingLogs) openCount(tp TopicPartition) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens[tp]
}

// TestNoLogOpenedBeforeCaughtUp: a restarting broker whose replayed
// metadata still assigns it a partition that moved off it while it was
// down (its log long deleted) opens (creates) no log for it, leads and
// follows nothing, until the metadata has caught up; then it opens the
// logs of the current state only, and the moved partition's never.
func TestNoLogOpenedBeforeCaughtUp(t *testing.T) {
	sc := newStateControl(t)
	sc.apply(metadata.InitCluster{ClusterID: "c"})
	epochs := map[int32]int64{}
	for _, id := range []int32{1, 2, 3} {
		v, _ := sc.apply(metadata.RegisterBroker{NodeID: id, Rack: fmt.Sprint(id), ReplicationAddr: "127.0.0.1:1",
			Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}, NowMs: 1000, LeaseMs: 3_600_000})
		epochs[id] = v.(int64)
	}
	sc.apply(metadata.CreateTopic{Name: "t", ID: metadata.TopicID{1}, Assignments: [][]int32{{1, 2}, {1, 2}}})
	ctl := &replayingControl{stateControl: sc, old: sc.State()}
	moved, kept := TopicPartition{"t", 0}, TopicPartition{"t", 1}
	(&catchingUpControl{stateControl: sc}).moveOff(t, epochs, moved, []int32{2, 3})

	disk := &countingLogs{}
	disk.get(kept).appendLeader(t, 0, 3, "kept")
	mgr := StartManager(ManagerConfig{Control: ctl, Logs: disk, DefaultMinISR: 1, ISRInterval: time.Hour, Logger: logger(t)})
	t.Cleanup(mgr.Close)
	waitSeen(t, mgr, ctl.old.Index)
	if n := disk.openCount(moved) + disk.openCount(kept); n != 0 {
		t.Fatalf("%d logs opened from replayed metadata, before it caught up", n)
	}
	if _, _, ok := mgr.Leader("t", 1); ok {
		t.Fatal("leading a partition from replayed metadata, before it caught up")
	}

	ctl.caughtUp.Store(true)
	_, idx := sc.apply(metadata.SetTopicConfigs{Name: "t", Configs: map[string]string{MinISRConfig: "1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mgr.WaitReconciled(ctx, idx); err != nil {
		t.Fatal(err)
	}
	if n := disk.openCount(moved); n != 0 || disk.has(moved) {
		t.Fatalf("%s, moved off this broker while it was down, was opened %d times (log held: %v)", moved, n, disk.has(moved))
	}
	if n := disk.openCount(kept); n != 1 {
		t.Fatalf("%s opened %d times once caught up, want 1", kept, n)
	}
	if _, _, ok := mgr.Leader("t", 1); !ok {
		t.Fatalf("not leading %s once caught up", kept)
	}
	if got := disk.get(kept).LogEndOffset(); got != 3 {
		t.Fatalf("%s ends at %d, want its 3 records", kept, got)
	}
}
