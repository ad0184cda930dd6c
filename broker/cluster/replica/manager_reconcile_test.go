package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// stateControl is a control plane whose metadata the test writes itself,
// command by command.
type stateControl struct {
	t  *testing.T
	f  *metadata.FSM
	mu sync.Mutex
	n  int64
	ch chan struct{}
}

func newStateControl(t *testing.T) *stateControl {
	return &stateControl{t: t, f: metadata.New(slog.New(slog.DiscardHandler)), ch: make(chan struct{})}
}

func (c *stateControl) NodeID() int32            { return 1 }
func (c *stateControl) State() *metadata.State   { return c.f.Current() }
func (c *stateControl) Changed() <-chan struct{} { c.mu.Lock(); defer c.mu.Unlock(); return c.ch }

// CaughtUp: the test applies every command itself, so each state is the newest.
func (c *stateControl) CaughtUp(*metadata.State) bool { return true }

func (c *stateControl) AlterPartition(context.Context, string, int32, int32, int32, []int32) (metadata.Partition, error) {
	return metadata.Partition{}, errors.New("no ISR changes in this test")
}

// apply applies cmd, which must succeed, and returns its value and index.
func (c *stateControl) apply(cmd metadata.Command) (any, int64) {
	c.t.Helper()
	b, err := metadata.Encode(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.n++
	r := c.f.ApplyEntry(c.n, b)
	close(c.ch)
	c.ch = make(chan struct{})
	n := c.n
	c.mu.Unlock()
	if r.Err != nil {
		c.t.Fatalf("%T: %v", cmd, r.Err)
	}
	return r.Value, n
}

// fenceCountingLog counts the manager's fences of its leader epoch, which
// every reconciliation of its partition makes.
type fenceCountingLog struct {
	*memLog
	fences atomic.Int32
}

func (l *fenceCountingLog) FenceLeaderEpoch(int32) { l.fences.Add(1) }

type fenceCountingLogs struct {
	mu   sync.Mutex
	logs map[TopicPartition]*fenceCountingLog
}

func (m *fenceCountingLogs) Open(topic string, partition int32, _ metadata.TopicID, _ map[string]string) (PartitionLog, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tp := TopicPartition{topic, partition}
	if l, ok := m.logs[tp]; ok {
		return l, nil
	}
	l := &fenceCountingLog{memLog: &memLog{}}
	m.logs[tp] = l
	return l, nil
}

func (m *fenceCountingLogs) Delete(string) error { return nil }

func (m *fenceCountingLogs) DeletePartition(tp TopicPartition) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.logs, tp)
	return nil
}

func (m *fenceCountingLogs) Held() []TopicPartition {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Keys(m.logs))
}

func (m *fenceCountingLogs) counts() map[TopicPartition]int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[TopicPartition]int32{}
	for tp, l := range m.logs {
		out[tp] = l.fences.Load()
	}
	return out
}

// TestReconcileLooksOnlyAtChangedPartitions checks that a metadata change
// of one partition's ISR makes the manager act on that partition only,
// with the new ISR, while a change of a topic's configs still makes it
// look at every partition: a broker rejoining a cluster of thousands of
// partitions brings one ISR change per partition, and a pass over every
// partition for each made the rejoin quadratic.
func TestReconcileLooksOnlyAtChangedPartitions(t *testing.T) {
	ctl := newStateControl(t)
	ctl.apply(metadata.InitCluster{ClusterID: "c"})
	epochs := map[int32]int64{}
	for _, id := range []int32{1, 2} {
		v, _ := ctl.apply(metadata.RegisterBroker{NodeID: id, Rack: fmt.Sprint(id), ReplicationAddr: "127.0.0.1:1",
			Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}, NowMs: 1000, LeaseMs: 3_600_000})
		epochs[id] = v.(int64)
	}
	const partitions = 64
	assignments := make([][]int32, partitions)
	for i := range assignments {
		assignments[i] = []int32{1, 2}
	}
	_, idx := ctl.apply(metadata.CreateTopic{Name: "t", ID: metadata.TopicID{1}, Assignments: assignments})
	logs := &fenceCountingLogs{logs: map[TopicPartition]*fenceCountingLog{}}
	mgr := StartManager(ManagerConfig{Control: ctl, Logs: logs, DefaultMinISR: 1, ISRInterval: time.Hour, Logger: logger(t)})
	t.Cleanup(mgr.Close)
	waitReconciled := func(idx int64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := mgr.WaitReconciled(ctx, idx); err != nil {
			t.Fatal(err)
		}
	}
	waitReconciled(idx)
	for i := range int32(partitions) {
		if _, _, ok := mgr.Leader("t", i); !ok {
			t.Fatalf("not leading t-%d", i)
		}
	}

	before := logs.counts()
	changed := TopicPartition{"t", 5}
	p, _ := ctl.State().Partition("t", 5)
	_, idx = ctl.apply(metadata.AlterPartition{Topic: "t", Partition: 5, LeaderID: 1, BrokerEpoch: epochs[1],
		LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: []int32{1}})
	waitReconciled(idx)
	after := logs.counts()
	var others []TopicPartition
	for tp, n := range after {
		if tp != changed && n != before[tp] {
			others = append(others, tp)
		}
	}
	if len(others) > 0 {
		t.Fatalf("an ISR change of %s made the manager act on %d other partitions too", changed, len(others))
	}
	if after[changed] == before[changed] {
		t.Fatalf("the manager did not act on %s after its ISR change", changed)
	}
	l, _, _ := mgr.Leader("t", 5)
	if isr := l.ISR(); !slices.Equal(isr, []int32{1}) {
		t.Fatalf("leader of %s has ISR %v after the change, want [1]", changed, isr)
	}

	// A topic config change may change what every partition's leader
	// does (min.insync.replicas): every partition is looked at.
	before = after
	_, idx = ctl.apply(metadata.SetTopicConfigs{Name: "t", Configs: map[string]string{MinISRConfig: "2"}})
	waitReconciled(idx)
	after = logs.counts()
	for tp, n := range after {
		if n == before[tp] {
			t.Fatalf("a config change of t left %s unlooked at", tp)
		}
	}
}

// concurrencyControl is a stateControl whose AlterPartition takes a while
// and records how many calls were in flight at once.
type concurrencyControl struct {
	*stateControl
	inFlight, most atomic.Int32
	calls          atomic.Int32
}

func (c *concurrencyControl) AlterPartition(context.Context, string, int32, int32, int32, []int32) (metadata.Partition, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	c.calls.Add(1)
	time.Sleep(20 * time.Millisecond)
	return metadata.Partition{}, errors.New("not committed in this test")
}

// TestISRChangesAreProposedTogether checks that the ISR changes due at
// once on many partitions are proposed to the controller concurrently, not
// one commit after the other: a broker rejoining a cluster of thousands of
// partitions waited for thousands of commits in series.
func TestISRChangesAreProposedTogether(t *testing.T) {
	sc := newStateControl(t)
	ctl := &concurrencyControl{stateControl: sc}
	sc.apply(metadata.InitCluster{ClusterID: "c"})
	for _, id := range []int32{1, 2} {
		sc.apply(metadata.RegisterBroker{NodeID: id, Rack: fmt.Sprint(id), ReplicationAddr: "127.0.0.1:1",
			Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}, NowMs: 1000, LeaseMs: 3_600_000})
	}
	const partitions = 16
	assignments := make([][]int32, partitions)
	for i := range assignments {
		assignments[i] = []int32{1, 2}
	}
	sc.apply(metadata.CreateTopic{Name: "t", ID: metadata.TopicID{1}, Assignments: assignments})
	// Broker 2 never fetches (its address refuses): once the lag time
	// passes, every partition's leader proposes to drop it.
	mgr := StartManager(ManagerConfig{Control: ctl, Logs: &fenceCountingLogs{logs: map[TopicPartition]*fenceCountingLog{}},
		DefaultMinISR: 1, ISRInterval: 50 * time.Millisecond, LagTimeMax: 100 * time.Millisecond, Logger: logger(t)})
	t.Cleanup(mgr.Close)
	checkFor(t, 10*time.Second, func() error {
		if n := ctl.calls.Load(); n < partitions {
			return fmt.Errorf("%d ISR changes proposed", n)
		}
		return nil
	})
	if most := ctl.most.Load(); most < 2 {
		t.Fatalf("at most %d ISR change in flight at once for %d partitions due together", most, partitions)
	}
}
