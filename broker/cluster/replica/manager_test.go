package replica

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/metadata"
)

// memLogs is a broker's "disk": it outlives the broker's processes in a
// test, so a restarted broker finds its log as it left it.
type memLogs struct {
	mu   sync.Mutex
	logs map[TopicPartition]*memLog
}

func (m *memLogs) Open(topic string, partition int32, _ metadata.TopicID, _ map[string]string) (PartitionLog, error) {
	return m.get(TopicPartition{topic, partition}), nil
}

func (m *memLogs) Delete(topic string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tp := range m.logs {
		if tp.Topic == topic {
			delete(m.logs, tp)
		}
	}
	return nil
}

func (m *memLogs) DeletePartition(tp TopicPartition) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.logs, tp)
	return nil
}

func (m *memLogs) Held() []TopicPartition {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Keys(m.logs))
}

func (m *memLogs) has(tp TopicPartition) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.logs[tp]
	return ok
}

func (m *memLogs) get(tp TopicPartition) *memLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.logs == nil {
		m.logs = map[TopicPartition]*memLog{}
	}
	l, ok := m.logs[tp]
	if !ok {
		l = &memLog{}
		m.logs[tp] = l
	}
	return l
}

// node is one in-process broker: controller, replica manager, and a
// Kafka listener answering follower fetches.
type node struct {
	id    int32
	disk  *memLogs
	ctl   *cluster.Controller
	mgr   *Manager
	kafka *fakeLeader
}

type testBrokers struct {
	t      *testing.T
	voters []cluster.Voter
	dirs   map[int32]string
	disks  map[int32]*memLogs
	nodes  map[int32]*node

	mu          sync.Mutex
	leaderships map[int32]int // leadership gains minus losses, per broker
}

func logger(t *testing.T) *slog.Logger {
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func newTestBrokers(t *testing.T, n int) *testBrokers {
	tb := &testBrokers{t: t, dirs: map[int32]string{}, disks: map[int32]*memLogs{}, nodes: map[int32]*node{}, leaderships: map[int32]int{}}
	lns := map[int32]net.Listener{}
	for i := int32(1); i <= int32(n); i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		tb.voters = append(tb.voters, cluster.Voter{ID: i, Addr: ln.Addr().String()})
		tb.dirs[i] = t.TempDir()
		tb.disks[i] = &memLogs{}
	}
	for i := int32(1); i <= int32(n); i++ {
		tb.start(i, lns[i])
	}
	t.Cleanup(func() {
		for id := range tb.nodes {
			tb.stop(id)
		}
	})
	return tb
}

func (tb *testBrokers) start(id int32, ln net.Listener) *node {
	tb.t.Helper()
	kafka := newFakeLeader(tb.t)
	ctl, err := cluster.Start(cluster.Config{
		NodeID: id, Rack: string(rune('a' + id - 1)), Voters: tb.voters, Listener: ln, Dir: tb.dirs[id], ClusterID: "c",
		ReplicationAddr:   kafka.addr(),
		HeartbeatInterval: 200 * time.Millisecond, Lease: 3 * time.Second, RebalanceInterval: 500 * time.Millisecond,
		RaftHeartbeatTimeout: 500 * time.Millisecond, RaftElectionTimeout: 500 * time.Millisecond, RaftLeaderLease: 250 * time.Millisecond,
		Logger: logger(tb.t).With("node", id),
	})
	if err != nil {
		tb.t.Fatal(err)
	}
	mgr := StartManager(ManagerConfig{
		Control: ctl, Logs: tb.disks[id], LagTimeMax: 2 * time.Second, DefaultMinISR: 2, ISRInterval: 50 * time.Millisecond,
		Fetch: FetcherConfig{MaxWait: 200 * time.Millisecond, Backoff: 50 * time.Millisecond},
		OnLeadership: func(_ TopicPartition, leader bool, _ int32) {
			tb.mu.Lock()
			defer tb.mu.Unlock()
			if leader {
				tb.leaderships[id]++
			} else {
				tb.leaderships[id]--
			}
		},
		Logger: logger(tb.t).With("node", id),
	})
	kafka.mu.Lock()
	kafka.lookup = mgr.Lookup
	kafka.mu.Unlock()
	n := &node{id: id, disk: tb.disks[id], ctl: ctl, mgr: mgr, kafka: kafka}
	tb.nodes[id] = n
	return n
}

// stop kills a broker abruptly: no controlled shutdown.
func (tb *testBrokers) stop(id int32) {
	n := tb.nodes[id]
	n.mgr.Close()
	n.kafka.close()
	n.ctl.Close()
	delete(tb.nodes, id)
}

func (tb *testBrokers) restart(id int32) *node {
	tb.t.Helper()
	addr := tb.voters[id-1].Addr
	var ln net.Listener
	checkFor(tb.t, 5*time.Second, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return tb.start(id, ln)
}

func (tb *testBrokers) any() *node {
	for _, n := range tb.nodes {
		return n
	}
	tb.t.Fatal("no broker running")
	return nil
}

// produce appends a batch on the partition's leader and waits for acks=all.
func (tb *testBrokers) produce(tp TopicPartition, records int, tag string) (leader int32, err error) {
	tb.t.Helper()
	for _, n := range tb.nodes {
		tr, _, ok := n.mgr.Leader(tp.Topic, tp.Partition)
		if !ok {
			continue
		}
		if err := tr.CheckAcksAll(); err != nil {
			return n.id, err
		}
		log := n.disk.get(tp)
		log.appendLeader(tb.t, tr.Epoch(), records, tag)
		tr.Appended(log.LogEndOffset())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return n.id, tr.WaitReplicated(ctx, log.LogEndOffset()-1)
	}
	return -1, errors.New("no leader")
}

func (tb *testBrokers) produceEventually(tp TopicPartition, records int, tag string) int32 {
	tb.t.Helper()
	var leader int32
	checkFor(tb.t, 15*time.Second, func() error {
		var err error
		leader, err = tb.produce(tp, records, tag)
		return err
	})
	return leader
}

func TestReplicationFailoverAndRejoin(t *testing.T) {
	if testing.Short() {
		t.Skip("three in-process brokers with lease timeouts")
	}
	tb := newTestBrokers(t, 3)
	tp := TopicPartition{"orders", 0}
	checkFor(t, 10*time.Second, func() error {
		_, err := tb.any().ctl.CreateTopic(context.Background(), tp.Topic, 1, 3, nil)
		if errors.Is(err, metadata.ErrTopicExists) {
			return nil
		}
		return err
	})

	// acks=all with all three in sync.
	first := tb.produceEventually(tp, 5, "a")
	for range 3 {
		tb.produceEventually(tp, 3, "b")
	}
	leaderLog := tb.disks[first].get(tp)
	for id := range tb.nodes {
		if got, want := tb.disks[id].get(tp).contents(), leaderLog.contents(); got != want {
			t.Fatalf("after acks=all, broker %d has\n%s\nleader has\n%s", id, got, want)
		}
	}
	acked := leaderLog.LogEndOffset()

	// The leader dies; an unreplicated write lands in its log just before.
	tb.stop(first)
	leaderLog.appendLeader(t, leaderLog.LatestEpoch(), 4, "unreplicated")
	if !strings.Contains(leaderLog.contents(), hex.EncodeToString([]byte("unreplicated"))) {
		t.Fatal("the unreplicated batch is not visible in the log dump")
	}

	// A new leader from the ISR takes over and acks=all works with two.
	second := tb.produceEventually(tp, 2, "c")
	if second == first {
		t.Fatal("dead broker still leading")
	}
	st := tb.nodes[second].ctl.State()
	p, _ := st.Partition(tp.Topic, tp.Partition)
	if p.LeaderEpoch < 1 || slices.Contains(p.ISR, first) {
		t.Fatalf("after failover: %+v", p)
	}
	if got := tb.disks[second].get(tp).LogEndOffset(); got < acked+2 {
		t.Fatalf("new leader log ends at %d, acknowledged data reached %d", got, acked)
	}

	// The old leader returns: it truncates its unreplicated suffix,
	// catches up and is back in the ISR.
	tb.restart(first)
	checkFor(t, 15*time.Second, func() error {
		st := tb.nodes[second].ctl.State()
		p, _ := st.Partition(tp.Topic, tp.Partition)
		if !slices.Contains(p.ISR, first) {
			return fmt.Errorf("broker %d not back in the ISR: %+v", first, p)
		}
		return nil
	})
	tb.produceEventually(tp, 1, "d")
	checkFor(t, 10*time.Second, func() error {
		var want string
		for id := range tb.nodes {
			got := tb.disks[id].get(tp).contents()
			if want == "" {
				want = got
			} else if got != want {
				return fmt.Errorf("logs differ:\nbroker %d: %s\nother:    %s", id, got, want)
			}
		}
		return nil
	})
	if c := tb.disks[first].get(tp).contents(); strings.Contains(c, hex.EncodeToString([]byte("unreplicated"))) {
		t.Fatalf("the unreplicated suffix survived: %s", c)
	}
}

func TestTopicDeletionAndLeadershipCallbacks(t *testing.T) {
	if testing.Short() {
		t.Skip("three in-process brokers")
	}
	tb := newTestBrokers(t, 3)
	checkFor(t, 10*time.Second, func() error {
		_, err := tb.any().ctl.CreateTopic(context.Background(), "gone", 3, 3, nil)
		return err
	})
	tb.produceEventually(TopicPartition{"gone", 0}, 1, "x")
	// Each broker leads one partition (placement balances leaders), and
	// the callback saw exactly that.
	checkFor(t, 10*time.Second, func() error {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for id := int32(1); id <= 3; id++ {
			if tb.leaderships[id] != 1 {
				return fmt.Errorf("leaderships per broker %v", tb.leaderships)
			}
		}
		return nil
	})
	if err := tb.any().ctl.DeleteTopic(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		for id, n := range tb.nodes {
			for p := range int32(3) {
				if n.disk.has(TopicPartition{"gone", p}) {
					return fmt.Errorf("broker %d still has gone-%d", id, p)
				}
			}
		}
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for id, n := range tb.leaderships {
			if n != 0 {
				return fmt.Errorf("broker %d still leads %d partitions", id, n)
			}
		}
		return nil
	})
}

// TestMinISRFollowsDynamicConfigs checks that min.insync.replicas changed
// on a running cluster applies to partitions already led: the cluster-wide
// dynamic value over the broker's start-up value, the topic's own value
// over both, and each removal falls back to the next.
func TestMinISRFollowsDynamicConfigs(t *testing.T) {
	if testing.Short() {
		t.Skip("three in-process brokers")
	}
	tb := newTestBrokers(t, 3)
	tp := TopicPartition{"settings", 0}
	checkFor(t, 10*time.Second, func() error {
		_, err := tb.any().ctl.CreateTopic(context.Background(), tp.Topic, 1, 3, nil)
		if errors.Is(err, metadata.ErrTopicExists) {
			return nil
		}
		return err
	})
	tb.produceEventually(tp, 1, "start-up min ISR 2")

	ctx := context.Background()
	expect := func(what string, refused bool) {
		t.Helper()
		checkFor(t, 10*time.Second, func() error {
			_, err := tb.produce(tp, 1, what)
			switch {
			case refused && !errors.Is(err, ErrNotEnoughReplicas):
				return fmt.Errorf("%s: produce = %v, want ErrNotEnoughReplicas", what, err)
			case !refused && err != nil:
				return fmt.Errorf("%s: produce = %v", what, err)
			}
			return nil
		})
	}
	if err := tb.any().ctl.SetBrokerConfigs(ctx, metadata.ClusterDefault, map[string]string{MinISRConfig: "4"}); err != nil {
		t.Fatal(err)
	}
	expect("cluster-wide min ISR 4 on three replicas", true)
	if _, err := tb.any().ctl.SetTopicConfigs(ctx, tp.Topic, map[string]string{MinISRConfig: "1"}); err != nil {
		t.Fatal(err)
	}
	expect("the topic's min ISR 1", false)
	if _, err := tb.any().ctl.SetTopicConfigs(ctx, tp.Topic, nil); err != nil {
		t.Fatal(err)
	}
	expect("the topic's value removed: cluster-wide 4 again", true)
	if err := tb.any().ctl.SetBrokerConfigs(ctx, metadata.ClusterDefault, nil); err != nil {
		t.Fatal(err)
	}
	expect("the cluster-wide value removed: the start-up 2", false)
}
