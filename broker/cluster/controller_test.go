package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// testCluster is N controllers in this process on loopback ports.
type testCluster struct {
	t      *testing.T
	voters []Voter
	dirs   map[int32]string
	racks  map[int32]string
	nodes  map[int32]*Controller
	// peerTLS, when set, runs each node's controller port over TLS.
	peerTLS map[int32]PeerTLS
	// edit, when set, changes each node's configuration.
	edit func(*Config)
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// newTestCluster starts voters 1..n (racks a, b, c, ...).
func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return newTestClusterTLS(t, n, nil)
}

// newTestClusterTLS is newTestCluster with each node's controller port
// over TLS with peerTLS[id] (none for a node it leaves out).
func newTestClusterTLS(t *testing.T, n int, peerTLS map[int32]PeerTLS) *testCluster {
	t.Helper()
	return startTestCluster(t, &testCluster{t: t, dirs: map[int32]string{}, peerTLS: peerTLS}, n)
}

// startTestCluster starts voters 1..n of tc, in tc.dirs where it names a
// node's directory and in a new temporary one where not.
func startTestCluster(t *testing.T, tc *testCluster, n int) *testCluster {
	t.Helper()
	tc.racks, tc.nodes = map[int32]string{}, map[int32]*Controller{}
	lns := map[int32]net.Listener{}
	for i := int32(1); i <= int32(n); i++ {
		lns[i] = listen(t, "127.0.0.1:0")
		tc.voters = append(tc.voters, Voter{ID: i, Addr: lns[i].Addr().String()})
		if tc.dirs[i] == "" {
			tc.dirs[i] = t.TempDir()
		}
		tc.racks[i] = string(rune('a' + (i-1)%3))
	}
	for i := int32(1); i <= int32(n); i++ {
		tc.start(i, lns[i])
	}
	t.Cleanup(func() {
		for _, c := range tc.nodes {
			c.Close()
		}
	})
	return tc
}

func (tc *testCluster) config(id int32, ln net.Listener) Config {
	cfg := tc.baseConfig(id, ln)
	if tc.edit != nil {
		tc.edit(&cfg)
	}
	return cfg
}

func (tc *testCluster) baseConfig(id int32, ln net.Listener) Config {
	return Config{
		NodeID: id, Rack: tc.racks[id], Voters: tc.voters, Listener: ln, Dir: tc.dirs[id], ClusterID: "test-cluster",
		Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9000 + id}},
		// Short enough for quick failovers, long enough that a loaded
		// 2-core CI machine does not fence live brokers or flap elections.
		HeartbeatInterval:    200 * time.Millisecond,
		Lease:                3 * time.Second,
		RebalanceInterval:    500 * time.Millisecond,
		RaftHeartbeatTimeout: 500 * time.Millisecond,
		RaftElectionTimeout:  500 * time.Millisecond,
		RaftLeaderLease:      250 * time.Millisecond,
		SnapshotThreshold:    64,
		SnapshotInterval:     200 * time.Millisecond,
		Logger:               testLogger(tc.t).With("node", id),
		TLS:                  tc.peerTLS[id],
	}
}

func (tc *testCluster) start(id int32, ln net.Listener) *Controller {
	tc.t.Helper()
	c, err := Start(tc.config(id, ln))
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.nodes[id] = c
	return c
}

// addNonVoter starts a broker that is not in the voter list.
func (tc *testCluster) addNonVoter(id int32) *Controller {
	tc.t.Helper()
	tc.dirs[id] = tc.t.TempDir()
	tc.racks[id] = string(rune('a' + (id-1)%3))
	return tc.start(id, listen(tc.t, "127.0.0.1:0"))
}

// kill stops a node abruptly (no controlled shutdown).
func (tc *testCluster) kill(id int32) {
	tc.t.Helper()
	if err := tc.nodes[id].Close(); err != nil {
		tc.t.Logf("closing node %d: %v", id, err)
	}
	delete(tc.nodes, id)
}

// restart starts a killed voter again from its directory and address.
func (tc *testCluster) restart(id int32) *Controller {
	tc.t.Helper()
	addr := tc.voters[slices.IndexFunc(tc.voters, func(v Voter) bool { return v.ID == id })].Addr
	var ln net.Listener
	checkFor(tc.t, 5*time.Second, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return tc.start(id, ln)
}

// checkFor polls fn until it returns nil or the deadline passes.
func checkFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tc *testCluster) waitForLeader() *Controller {
	tc.t.Helper()
	var leader *Controller
	checkFor(tc.t, 10*time.Second, func() error {
		for _, c := range tc.nodes {
			if c.IsActive() {
				leader = c
				return nil
			}
		}
		return errors.New("no active controller")
	})
	return leader
}

// waitForState waits until every running node's state satisfies fn.
func (tc *testCluster) waitForState(what string, fn func(*metadata.State) error) {
	tc.t.Helper()
	checkFor(tc.t, 10*time.Second, func() error {
		for id, c := range tc.nodes {
			if err := fn(c.State()); err != nil {
				return fmt.Errorf("node %d: %s: %w", id, what, err)
			}
		}
		return nil
	})
}

func registered(ids ...int32) func(*metadata.State) error {
	return func(st *metadata.State) error {
		for _, id := range ids {
			b, ok := st.Brokers[id]
			if !ok || b.Fenced {
				return fmt.Errorf("broker %d not registered and unfenced", id)
			}
		}
		return nil
	}
}

func (tc *testCluster) follower() *Controller {
	for _, c := range tc.nodes {
		if !c.IsActive() {
			return c
		}
	}
	tc.t.Fatal("no follower")
	return nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParseVoters(t *testing.T) {
	got, err := ParseVoters("1@127.0.0.1:19095, 2@127.0.0.2:19095,3@[::1]:19095")
	if err != nil || len(got) != 3 || got[2] != (Voter{ID: 3, Addr: "[::1]:19095"}) {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"", "1", "x@127.0.0.1:1", "1@nohost", "1@a:1,1@b:1", "1@a:1,2@a:1", "-1@a:1"} {
		if _, err := ParseVoters(bad); err == nil {
			t.Errorf("ParseVoters(%q) accepted", bad)
		}
	}
}

func TestThreeVotersBootstrapRegisterAndCreateTopics(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	tc.waitForState("cluster id", func(st *metadata.State) error {
		if st.ClusterID != "test-cluster" {
			return fmt.Errorf("cluster id %q", st.ClusterID)
		}
		return nil
	})
	// Proposals from a follower are forwarded to the active controller.
	f := tc.follower()
	top, err := f.CreateTopic(ctxT(t), "orders", 6, 3, map[string]string{"retention.ms": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]int{}
	for i, p := range top.Partitions() {
		racks := map[string]bool{}
		for _, r := range p.Replicas {
			racks[tc.racks[r]] = true
		}
		if len(racks) != 3 || p.Leader != p.Replicas[0] || len(p.ISR) != 3 {
			t.Fatalf("partition %d: %+v", i, p)
		}
		leaders[p.Leader]++
	}
	if leaders[1] != 2 || leaders[2] != 2 || leaders[3] != 2 {
		t.Fatalf("leaders not balanced: %v", leaders)
	}
	if _, err := f.CreateTopic(ctxT(t), "orders", 1, 1, nil); !errors.Is(err, metadata.ErrTopicExists) {
		t.Fatalf("duplicate topic through the RPC: %v", err)
	}
	if _, err := f.CreateTopic(ctxT(t), "big", 1, 4, nil); err == nil {
		t.Fatal("rf 4 on 3 brokers accepted")
	}
	// A creation retried after an unknown outcome (the first try's answer
	// lost) carries the id the asking node drew: it answers the topic the
	// first try made, not TOPIC_ALREADY_EXISTS.
	retried := rpcRequest{Op: opCreateTopic, Topic: &topicRequest{Name: "retried", Partitions: 2, ReplicationFactor: 3, ID: newTopicID()}}
	first, err := decodeAs[*metadata.Topic](f.onLeader(ctxT(t), retried))
	if err != nil {
		t.Fatal(err)
	}
	second, err := decodeAs[*metadata.Topic](f.onLeader(ctxT(t), retried))
	if err != nil || second.ID != first.ID || !slices.Equal(second.Partition(1).Replicas, first.Partition(1).Replicas) {
		t.Fatalf("the retried creation: %+v, %v; the first made %+v", second, err, first)
	}
	// Growing it and deleting it, retried the same way: the retry of a
	// growth the state shows answers the topic, as the lost answer would
	// have; a first try that asks for no growth is refused as Kafka does.
	grow := rpcRequest{Op: opCreatePartitions, Topic: &topicRequest{Name: "retried", Partitions: 3}}
	if _, err := decodeAs[*metadata.Topic](f.onLeader(ctxT(t), grow)); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeAs[*metadata.Topic](f.onLeader(ctxT(t), grow)); !errors.Is(err, metadata.ErrInvalidPartitions) {
		t.Fatalf("growing to the count it has, first try: %v", err)
	}
	grow.Retry = true
	if grown, err := decodeAs[*metadata.Topic](f.onLeader(ctxT(t), grow)); err != nil || grown.NumPartitions() != 3 {
		t.Fatalf("the retried growth: %+v, %v", grown, err)
	}
	deletion, err := metadata.Encode(metadata.DeleteTopic{Name: "retried", ID: first.ID})
	if err != nil {
		t.Fatal(err)
	}
	del := rpcRequest{Op: opApply, Command: deletion}
	if _, err := f.onLeader(ctxT(t), del); err != nil {
		t.Fatal(err)
	}
	if _, err := f.onLeader(ctxT(t), del); !errors.Is(err, metadata.ErrUnknownTopicOrPartition) {
		t.Fatalf("deleting it again, first try: %v", err)
	}
	del.Retry = true
	if _, err := f.onLeader(ctxT(t), del); err != nil {
		t.Fatalf("the retried deletion: %v", err)
	}
	// The name reused: a retried deletion of the first topic leaves the
	// new one alone.
	reborn, err := f.CreateTopic(ctxT(t), "retried", 1, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.onLeader(ctxT(t), del); err != nil {
		t.Fatalf("the retried deletion after the name was reused: %v", err)
	}
	if _, err := f.onLeader(ctxT(t), rpcRequest{Op: opApply, Command: deletion}); !errors.Is(err, metadata.ErrUnknownTopicOrPartition) {
		t.Fatalf("deleting the first topic by id once its name is reused: %v", err)
	}
	tc.waitForState("the reused name kept", func(st *metadata.State) error {
		if t, ok := st.Topic("retried"); !ok || t.ID != reborn.ID {
			return fmt.Errorf("topic %+v", t)
		}
		return nil
	})
	tc.waitForState("topic replicated", func(st *metadata.State) error {
		if _, ok := st.Topic("orders"); !ok {
			return errors.New("no topic")
		}
		return nil
	})

	// Every replica of the state machine holds the same bytes at the same
	// index (heartbeats keep the index moving: retry until they line up).
	checkFor(t, 10*time.Second, func() error {
		var want []byte
		var index int64 = -1
		for id, c := range tc.nodes {
			st := c.State()
			b, err := metadata.MarshalState(st)
			if err != nil {
				return err
			}
			switch {
			case index < 0:
				index, want = st.Index, b
			case st.Index != index:
				return fmt.Errorf("node %d at index %d, another at %d", id, st.Index, index)
			case !bytes.Equal(b, want):
				t.Fatalf("replicas differ at index %d:\n%s\n%s", index, b, want)
			}
		}
		return nil
	})

	// Producer ids are unique across nodes.
	seen := map[int64]bool{}
	for _, c := range tc.nodes {
		first, err := c.AllocateProducerIDs(ctxT(t), 100)
		if err != nil {
			t.Fatal(err)
		}
		if seen[first] {
			t.Fatalf("producer id block %d handed out twice", first)
		}
		seen[first] = true
	}

	// AlterPartition epoch checks survive the RPC.
	p := top.Partition(0)
	leader := tc.nodes[p.Leader]
	newISR := []int32{p.Leader}
	got, err := leader.AlterPartition(ctxT(t), "orders", 0, p.LeaderEpoch, p.PartitionEpoch, newISR)
	if err != nil || len(got.ISR) != 1 {
		t.Fatalf("shrink ISR: %+v %v", got, err)
	}
	if _, err := leader.AlterPartition(ctxT(t), "orders", 0, p.LeaderEpoch, p.PartitionEpoch, newISR); !errors.Is(err, metadata.ErrInvalidUpdateVersion) {
		t.Fatalf("stale partition epoch through the RPC: %v", err)
	}
}

func TestKillActiveControllerFencesAndMovesLeaders(t *testing.T) {
	tc := newTestCluster(t, 3)
	old := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	top, err := old.CreateTopic(ctxT(t), "t", 3, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldID := old.NodeID()
	var led []int32
	for i, p := range top.Partitions() {
		if p.Leader == oldID {
			led = append(led, i)
		}
	}
	if len(led) == 0 {
		t.Fatalf("node %d leads none of %d partitions", oldID, top.NumPartitions())
	}
	tc.kill(oldID)
	start := time.Now()
	next := tc.waitForLeader()
	if next.NodeID() == oldID {
		t.Fatal("dead node still leader")
	}
	t.Logf("new active controller %d after %v", next.NodeID(), time.Since(start))
	tc.waitForState("dead broker fenced and its leaderships moved", func(st *metadata.State) error {
		if b := st.Brokers[oldID]; !b.Fenced {
			return fmt.Errorf("broker %d not fenced", oldID)
		}
		for _, i := range led {
			p := st.Topics["t"].Partition(i)
			if p.Leader == oldID || p.Leader == metadata.NoLeader || p.LeaderEpoch != 1 || slices.Contains(p.ISR, oldID) {
				return fmt.Errorf("partition %d: %+v", i, p)
			}
		}
		return nil
	})
	t.Logf("leaderships moved %v after the kill", time.Since(start))
	// The cluster still takes proposals with two voters.
	if _, err := next.CreateTopic(ctxT(t), "after", 1, 2, nil); err != nil {
		t.Fatal(err)
	}

	// The old node comes back: it re-registers, its leaders re-admit it,
	// and the preferred-leader rebalance gives it its partitions back.
	back := tc.restart(oldID)
	if err := back.WaitRegistered(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Caught up: the returning node's own state already has everything
	// committed before it came back.
	if _, ok := back.State().Topic("after"); !ok || back.State().Brokers[oldID] == nil {
		t.Fatal("WaitRegistered returned before the metadata caught up")
	}
	tc.waitForState("returned broker registered", registered(oldID))
	for _, i := range led {
		checkFor(t, 10*time.Second, func() error {
			// Read a node that stayed up: the returning node replays the
			// log and shows old states (this partition in sync) for a while.
			st := next.State()
			p := st.Topics["t"].Partition(i)
			if slices.Contains(p.ISR, oldID) {
				return nil
			}
			_, err := tc.nodes[p.Leader].AlterPartition(ctxT(t), "t", int32(i), p.LeaderEpoch, p.PartitionEpoch, append(slices.Clone(p.ISR), oldID))
			return err
		})
	}
	tc.waitForState("preferred leaders restored", func(st *metadata.State) error {
		for _, i := range led {
			if p := st.Topics["t"].Partition(i); p.Leader != oldID {
				return fmt.Errorf("partition %d: %+v; broker %d: %+v", i, p, oldID, *st.Brokers[oldID])
			}
		}
		return nil
	})
}

func TestNonVoterFollowsTheMetadataLog(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	four := tc.addNonVoter(4)
	if err := four.WaitRegistered(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	tc.waitForState("four brokers", registered(1, 2, 3, 4))
	if _, err := tc.nodes[1].CreateTopic(ctxT(t), "wide", 4, 1, nil); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		top, ok := four.State().Topic("wide")
		if !ok {
			return errors.New("non-voter has not seen the topic")
		}
		for _, p := range top.Partitions() {
			if p.Leader == 4 {
				return nil
			}
		}
		return fmt.Errorf("no partition of %d placed on the non-voter", top.NumPartitions())
	})
	if four.IsActive() {
		t.Fatal("a non-voter became the active controller")
	}
}

func TestControlledShutdownMovesLeadership(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	c := tc.nodes[2]
	if _, err := c.CreateTopic(ctxT(t), "t", 6, 3, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctxT(t), "single", 3, 1, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	left, err := c.ControlledShutdown(ctx)
	// "single" has one replica per partition: the one on broker 2 cannot
	// move, so it is not waited for.
	if left != 0 || err != nil {
		t.Fatalf("left %d err %v; want every movable leadership moved", left, err)
	}
	tc.waitForState("broker 2 shutting down", func(st *metadata.State) error {
		if !st.Brokers[2].ShuttingDown {
			return errors.New("broker 2 not marked shutting down")
		}
		return nil
	})
	st := c.State()
	singles := 0
	for _, p := range st.Topics["single"].Partitions() {
		if slices.Equal(p.Replicas, []int32{2}) {
			singles++
			if p.Leader != 2 {
				t.Fatalf("single-replica partition on broker 2 lost its leader: %+v", p)
			}
		}
	}
	if singles != 1 {
		t.Fatalf("%d partitions of single placed on broker 2, want 1", singles)
	}
	for i, p := range st.Topics["t"].Partitions() {
		if p.Leader == 2 || slices.Contains(p.ISR, 2) {
			t.Fatalf("t-%d still on broker 2: %+v", i, p)
		}
	}
	if !st.Brokers[2].ShuttingDown {
		t.Fatal("broker 2 not marked shutting down")
	}
}

func TestRestartKeepsMetadata(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	if _, err := tc.nodes[1].CreateTopic(ctxT(t), "durable", 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	tc.waitForState("topic everywhere", func(st *metadata.State) error {
		if _, ok := st.Topic("durable"); !ok {
			return errors.New("missing")
		}
		return nil
	})
	// Fill the log past the snapshot threshold (heartbeats are not
	// logged); snapshots keep it bounded.
	for range 2 * tc.nodes[1].cfg.SnapshotThreshold {
		if _, err := tc.nodes[1].AllocateProducerIDs(ctxT(t), 1); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 20*time.Second, func() error {
		for id, c := range tc.nodes {
			first, err := c.store.FirstIndex()
			if err != nil {
				return err
			}
			snaps, err := filepath.Glob(filepath.Join(tc.dirs[id], "snapshots", "*", "state.bin"))
			if err != nil {
				return err
			}
			if len(snaps) == 0 || first <= 1 {
				return fmt.Errorf("node %d: %d snapshots, log starts at %d", id, len(snaps), first)
			}
		}
		return nil
	})
	for _, id := range []int32{1, 2, 3} {
		tc.kill(id)
	}
	for _, id := range []int32{1, 2, 3} {
		tc.restart(id)
	}
	tc.waitForLeader()
	tc.waitForState("topic after restart", func(st *metadata.State) error {
		if _, ok := st.Topic("durable"); !ok {
			return errors.New("topic lost across a full restart")
		}
		return nil
	})
}

// TestClusterOfOne: a node with no voters configured is the only voter of
// its own quorum; on restart it binds a new port, keeps its metadata and
// corrects its own address in the Raft configuration.
func TestClusterOfOne(t *testing.T) {
	dir := t.TempDir()
	start := func() *Controller {
		t.Helper()
		cfg := Config{
			NodeID: 7, Bind: "127.0.0.1:0", Dir: dir,
			Listeners:         []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9092}},
			HeartbeatInterval: 200 * time.Millisecond, Lease: 3 * time.Second,
			Logger: testLogger(t),
		}
		c, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.WaitRegistered(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	if v := c.Voters(); len(v) != 1 || v[0].ID != 7 || v[0].Addr != c.Addr() {
		t.Fatalf("voters %+v, address %s", v, c.Addr())
	}
	checkFor(t, 10*time.Second, func() error {
		if id, ok := c.ActiveController(); !ok || id != 7 || !c.IsActive() {
			return fmt.Errorf("active controller %d (known %v)", id, ok)
		}
		if c.State().ClusterID == "" {
			return errors.New("no cluster id in the metadata yet")
		}
		return nil
	})
	clusterID := c.State().ClusterID
	if _, err := c.CreateTopic(ctxT(t), "solo", 2, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctxT(t), "pair", 1, 2, nil); err == nil {
		t.Fatal("replication factor 2 accepted with one broker")
	}
	if left, err := c.ControlledShutdown(ctxT(t)); err != nil || left != 0 {
		t.Fatalf("controlled shutdown of the only broker: %d leaderships left, %v", left, err)
	}
	oldAddr := c.Addr()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = start()
	if c.Addr() == oldAddr {
		t.Logf("the kernel gave the same port again (%s)", oldAddr)
	}
	checkFor(t, 10*time.Second, func() error {
		st := c.State()
		p, ok := st.Partition("solo", 1)
		if !ok || p.Leader != 7 {
			return fmt.Errorf("solo-1 after restart: %+v (found %v)", p, ok)
		}
		if st.ClusterID != clusterID {
			return fmt.Errorf("cluster id %q after restart, was %q", st.ClusterID, clusterID)
		}
		f := c.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		servers := f.Configuration().Servers
		if len(servers) != 1 || string(servers[0].Address) != c.Addr() {
			return fmt.Errorf("raft configuration %+v, this node listens on %s", servers, c.Addr())
		}
		return nil
	})
}

// A broker reported unreachable is fenced at once when nothing listens on
// its replication port any more, and left alone while something does.
func TestUnreachableBrokerIsFencedWhenItsListenerIsGone(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	// Broker 4 is a non-voter with a replication listener, as a real
	// broker registers it.
	repl := listen(t, "127.0.0.1:0")
	tc.dirs[4], tc.racks[4] = t.TempDir(), "a"
	cfg := tc.config(4, listen(t, "127.0.0.1:0"))
	cfg.ReplicationAddr = repl.Addr().String()
	four, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.nodes[4] = four
	tc.waitForState("broker 4 registered", registered(4))
	reporter := tc.nodes[1]
	if fenced, err := reporter.ReportUnreachable(ctxT(t), 4); err != nil || fenced {
		t.Fatalf("broker 4 listening: fenced %v, err %v; want not fenced", fenced, err)
	}
	if fenced, err := reporter.ReportUnreachable(ctxT(t), tc.waitForLeader().NodeID()); err != nil || fenced {
		t.Fatalf("the active controller reported: fenced %v, err %v", fenced, err)
	}
	// Kill broker 4: its controller and its replication listener go. Its
	// lease (3 s here) has not run out when the report comes.
	tc.kill(4)
	repl.Close()
	fenced, err := reporter.ReportUnreachable(ctxT(t), 4)
	if err != nil || !fenced {
		t.Fatalf("broker 4 gone: fenced %v, err %v; want fenced by the probe", fenced, err)
	}
	tc.waitForState("broker 4 fenced", func(st *metadata.State) error {
		if b := st.Brokers[4]; b == nil || !b.Fenced {
			return errors.New("broker 4 not fenced")
		}
		return nil
	})
}
