package replica

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// laggingControl is a control plane whose local metadata lags the active
// controller's, as a broker's (a Raft follower's) does: AlterPartition
// answers with the partition the controller committed, while State keeps
// what the test published, which the controller's answer may be ahead of.
type laggingControl struct {
	id int32

	mu      sync.Mutex
	st      *metadata.State
	changed chan struct{}
	// alter answers each AlterPartition; calls counts them.
	alter func(newISR []int32) (metadata.Partition, error)
	calls int
}

func newLaggingControl(id int32, st *metadata.State) *laggingControl {
	return &laggingControl{id: id, st: st, changed: make(chan struct{})}
}

func (c *laggingControl) NodeID() int32 { return c.id }

// CaughtUp: the lag these tests make is the controller's, not this
// broker's metadata's.
func (c *laggingControl) CaughtUp(*metadata.State) bool { return true }

func (c *laggingControl) State() *metadata.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *laggingControl) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *laggingControl) AlterPartition(_ context.Context, _ string, _, _, _ int32, newISR []int32) (metadata.Partition, error) {
	c.mu.Lock()
	c.calls++
	alter := c.alter
	c.mu.Unlock()
	return alter(newISR)
}

// publish applies a metadata state locally.
func (c *laggingControl) publish(st *metadata.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st = st
	close(c.changed)
	c.changed = make(chan struct{})
}

// laggingState is a state at index with three brokers and topic t whose
// partition 0 is p. producerIDs tells otherwise equal states apart, as
// the metadata entries between an AlterPartition and its commit arriving
// here do (another partition's change, a producer-id block, ...).
func laggingState(index int64, p metadata.Partition, producerIDs int64) *metadata.State {
	st := metadata.Empty()
	st.Index = index
	st.NextProducerID = producerIDs
	for id := int32(1); id <= 4; id++ {
		st.Brokers[id] = &metadata.Broker{NodeID: id, ReplicationAddr: "127.0.0.1:1"}
	}
	st.Topics["t"] = metadata.NewTopic("t", metadata.TopicID{}, nil, p)
	return st
}

func startLaggingLeader(t *testing.T, ctl *laggingControl) (*Manager, *memLogs) {
	t.Helper()
	disk := &memLogs{}
	disk.get(TopicPartition{"t", 0}).appendLeader(t, 4, 10, "before")
	// ISR changes are proposed only when the test says so (proposeISRChanges).
	mgr := StartManager(ManagerConfig{Control: ctl, Logs: disk, ISRInterval: time.Hour, LagTimeMax: time.Hour, Logger: logger(t)})
	t.Cleanup(mgr.Close)
	waitReconciled(t, mgr, ctl.State().Index)
	return mgr, disk
}

func waitReconciled(t *testing.T, mgr *Manager, index int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mgr.WaitReconciled(ctx, index); err != nil {
		t.Fatal(err)
	}
}

// TestCommittedISRExpansionOutlivesLaggingMetadata: the controller commits
// the leader's expansion of the ISR with replica 3 and answers it, while
// the leader's own copy of the metadata still lags: the next entries it
// applies were committed before the expansion (another partition's
// change), and name the partition at its older epoch, without 3. The
// leader must go on counting 3 for the high watermark: 3 is in the
// committed ISR, so the controller may make it leader (a reassignment that
// completes, the leader fenced), and every write acknowledged without it
// would then be lost. The leader used to take the older state as news,
// drop 3, and acknowledge writes 3 did not have.
func TestCommittedISRExpansionOutlivesLaggingMetadata(t *testing.T) {
	before := metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, ISR: []int32{1, 2}, PartitionEpoch: 7}
	committed := before.Clone()
	committed.ISR, committed.PartitionEpoch = []int32{1, 2, 3}, 8
	ctl := newLaggingControl(1, laggingState(1, before, 0))
	ctl.alter = func(newISR []int32) (metadata.Partition, error) {
		if !slices.Equal(newISR, committed.ISR) {
			t.Errorf("proposed ISR %v, want %v", newISR, committed.ISR)
		}
		return committed.Clone(), nil
	}
	mgr, disk := startLaggingLeader(t, ctl)
	l, _, ok := mgr.Leader("t", 0)
	if !ok {
		t.Fatal("broker 1 does not lead t-0")
	}
	for _, id := range []int32{2, 3} {
		if _, err := l.Fetched(id, 10); err != nil {
			t.Fatal(err)
		}
	}
	mgr.proposeISRChanges(ctl.State())
	if got := l.ISR(); !slices.Equal(got, committed.ISR) {
		t.Fatalf("ISR after the committed expansion %v, want %v", got, committed.ISR)
	}

	// Entries committed before the expansion reach this broker's metadata.
	ctl.publish(laggingState(2, before, 1000))
	waitReconciled(t, mgr, 2)

	// A write that 2 copies and 3 has not fetched yet.
	log := disk.get(TopicPartition{"t", 0})
	log.appendLeader(t, 4, 10, "after")
	l.Appended(log.LogEndOffset())
	hw, err := l.Fetched(2, 20)
	if err != nil {
		t.Fatal(err)
	}
	if hw != 10 {
		t.Fatalf("high watermark %d with replica 3 (in the committed ISR %v) at 10; the leader's ISR is %v", hw, committed.ISR, l.ISR())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.WaitReplicated(ctx, 19); err == nil {
		t.Fatal("acks=all answered for a write that replica 3, in the committed ISR, does not have")
	}

	// The expansion reaches the local metadata; 3 catches up.
	ctl.publish(laggingState(3, committed, 1000))
	waitReconciled(t, mgr, 3)
	if hw, err := l.Fetched(3, 20); err != nil || hw != 20 {
		t.Fatalf("high watermark %d (%v) once every ISR member has the write, want 20", hw, err)
	}
}

// TestLeaderMovedByCommittedChangeStaysResigned: the leader's expansion of
// the ISR with the replica a reassignment adds completes the reassignment,
// which removes the leader and makes another replica leader at a new
// leader epoch. The controller's answer says so and the leader resigns;
// its own metadata still lags (entries committed before the change arrive
// first). Those name it leader at the old epoch: it must not lead again at
// that epoch, beside the new leader, acknowledging writes the new leader's
// log will never hold.
func TestLeaderMovedByCommittedChangeStaysResigned(t *testing.T) {
	before := metadata.Partition{
		Replicas: []int32{1, 2, 3, 4}, Leader: 1, LeaderEpoch: 4, ISR: []int32{1, 2, 3}, PartitionEpoch: 7,
		AddingReplicas: []int32{4}, RemovingReplicas: []int32{1}, TargetReplicas: []int32{2, 3, 4},
	}
	moved := metadata.Partition{Replicas: []int32{2, 3, 4}, Leader: 2, LeaderEpoch: 5, ISR: []int32{2, 3, 4}, PartitionEpoch: 8}
	ctl := newLaggingControl(1, laggingState(1, before, 0))
	ctl.alter = func([]int32) (metadata.Partition, error) { return moved.Clone(), nil }
	var leaderships []bool
	var lmu sync.Mutex
	disk := &memLogs{}
	disk.get(TopicPartition{"t", 0}).appendLeader(t, 4, 10, "before")
	mgr := StartManager(ManagerConfig{
		Control: ctl, Logs: disk, ISRInterval: time.Hour, LagTimeMax: time.Hour, Logger: logger(t),
		OnLeadership: func(_ TopicPartition, leader bool, _ int32) {
			lmu.Lock()
			defer lmu.Unlock()
			leaderships = append(leaderships, leader)
		},
	})
	t.Cleanup(mgr.Close)
	waitReconciled(t, mgr, 1)
	l, _, ok := mgr.Leader("t", 0)
	if !ok {
		t.Fatal("broker 1 does not lead t-0")
	}
	for _, id := range []int32{2, 3, 4} {
		if _, err := l.Fetched(id, 10); err != nil {
			t.Fatal(err)
		}
	}
	mgr.proposeISRChanges(ctl.State())
	if err := l.CheckAcksAll(); err == nil {
		t.Fatal("still leading after the controller answered that broker 2 leads at epoch 5")
	}

	ctl.publish(laggingState(2, before, 1000))
	waitReconciled(t, mgr, 2)
	if l2, _, ok := mgr.Leader("t", 0); ok && l2.CheckAcksAll() == nil {
		t.Fatalf("broker 1 leads t-0 again at epoch %d after the controller made broker 2 leader at epoch 5", l2.Epoch())
	}
	lmu.Lock()
	got := slices.Clone(leaderships)
	lmu.Unlock()
	if !slices.Equal(got, []bool{true}) {
		t.Fatalf("leadership callbacks %v, want one gain and no second one", got)
	}

	ctl.publish(laggingState(3, moved, 1000))
	waitReconciled(t, mgr, 3)
	if _, _, ok := mgr.Leader("t", 0); ok {
		t.Fatal("broker 1, no longer a replica, still holds a leader state for t-0")
	}
}
