package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/replica"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

func logger(t testing.TB, id int32) *slog.Logger {
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name(), "node", id)
	}
	return slog.New(slog.DiscardHandler)
}

func checkFor(t testing.TB, timeout time.Duration, fn func() error) {
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

// brokers are N nodes with real storage in temp dirs, on loopback.
type brokers struct {
	t      testing.TB
	voters string
	addrs  map[int32]string
	dirs   map[int32]string
	stores map[int32]*storage.Store
	nodes  map[int32]*Node
}

func newBrokers(t testing.TB, n int) *brokers {
	b := &brokers{t: t, addrs: map[int32]string{}, dirs: map[int32]string{}, stores: map[int32]*storage.Store{}, nodes: map[int32]*Node{}}
	lns := map[int32]net.Listener{}
	for i := int32(1); i <= int32(n); i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], b.addrs[i], b.dirs[i] = ln, ln.Addr().String(), t.TempDir()
		if b.voters != "" {
			b.voters += ","
		}
		b.voters += fmt.Sprintf("%d@%s", i, ln.Addr())
	}
	// Voters wait for a quorum to register: start them together.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := int32(1); i <= int32(n); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, n, err := b.open(i, lns[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			b.stores[i], b.nodes[i] = st, n
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for id := range b.nodes {
			b.crash(id)
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *brokers) start(id int32, ctlLn net.Listener) {
	b.t.Helper()
	st, n, err := b.open(id, ctlLn)
	if err != nil {
		b.t.Fatal(err)
	}
	b.stores[id], b.nodes[id] = st, n
}

func (b *brokers) open(id int32, ctlLn net.Listener) (*storage.Store, *Node, error) {
	st, err := storage.Open(b.dirs[id], storage.Options{Logger: logger(b.t, id)})
	if err != nil {
		return nil, nil, err
	}
	cfg := &config.Config{
		NodeID: id, Rack: string(rune('a' + id - 1)), ListenersSpec: fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", 9000+id), DataDir: b.dirs[id],
		ClusterID: "node-test", ControllerQuorumVoters: b.voters, MinInsyncReplicas: 2, DefaultReplicationFactor: 3,
	}
	replLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := Start(ctx, Options{
		Config: cfg, Store: st, Logger: logger(b.t, id), ReplicationListener: replLn, LagTimeMax: 2 * time.Second,
		ISRInterval: 50 * time.Millisecond, Fetch: replica.FetcherConfig{MaxWait: 200 * time.Millisecond, Backoff: 50 * time.Millisecond},
		Tune: func(c *cluster.Config) {
			c.Listener = ctlLn
			c.HeartbeatInterval, c.Lease, c.RebalanceInterval = 200*time.Millisecond, 3*time.Second, 500*time.Millisecond
			c.RaftHeartbeatTimeout, c.RaftElectionTimeout, c.RaftLeaderLease = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
		},
	})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, n, nil
}

// crash stops a node without a controlled shutdown and closes its files.
func (b *brokers) crash(id int32) {
	b.nodes[id].Close()
	b.stores[id].Close()
	delete(b.nodes, id)
}

func (b *brokers) restart(id int32) {
	b.t.Helper()
	var ln net.Listener
	checkFor(b.t, 5*time.Second, func() error {
		var err error
		ln, err = net.Listen("tcp", b.addrs[id])
		return err
	})
	b.start(id, ln)
}

func batch(t testing.TB, tag string, n int) []byte {
	t.Helper()
	var recs []byte
	for i := range n {
		recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: int32(i), Value: fmt.Appendf(nil, "%s-%d", tag, i)})
	}
	out, err := recordbatch.Encode(recordbatch.Header{LastOffsetDelta: int32(n - 1), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: int32(n)}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// produce sends one batch with acks=all to whichever node leads.
func (b *brokers) produce(topic string, tag string) (int32, storage.AppendResult, error) {
	for id, n := range b.nodes {
		if _, ok := n.LeaderEpoch(topic, 0); !ok {
			continue
		}
		p, ok := b.stores[id].Partition(topic, 0)
		if !ok {
			return id, storage.AppendResult{}, errors.New("leader without a log")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := n.Produce(ctx, topic, 0, -1, func(epoch int32) (storage.AppendResult, error) {
			return p.Append(ctx, batch(b.t, tag, 3), storage.AppendOptions{LeaderEpoch: epoch})
		})
		return id, res, err
	}
	return -1, storage.AppendResult{}, replica.ErrNotLeader
}

func (b *brokers) produceEventually(topic, tag string) int32 {
	b.t.Helper()
	var leader int32
	checkFor(b.t, 15*time.Second, func() error {
		var err error
		leader, _, err = b.produce(topic, tag)
		return err
	})
	return leader
}

func (b *brokers) logBytes(id int32, topic string) []byte {
	p, ok := b.stores[id].Partition(topic, 0)
	if !ok {
		return nil
	}
	data, err := p.Read(p.LogStartOffset(), 1<<24, p.LogEndOffset())
	if err != nil {
		return []byte(err.Error())
	}
	return data
}

func (b *brokers) sameLogs(topic string) error {
	var want []byte
	for id := range b.nodes {
		got := b.logBytes(id, topic)
		if want == nil {
			want = got
		} else if !bytes.Equal(got, want) {
			return fmt.Errorf("broker %d's log (%d bytes) differs from another's (%d bytes)", id, len(got), len(want))
		}
	}
	return nil
}

func TestAcksAllFailoverAndRejoinOnRealStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("three in-process brokers with lease timeouts")
	}
	b := newBrokers(t, 3)
	var any *Node
	for _, n := range b.nodes {
		any = n
	}
	if _, err := any.Metadata.CreateTopic(context.Background(), "orders", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	first := b.produceEventually("orders", "a")
	for i := range 5 {
		if _, _, err := b.produce("orders", fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	// acks=all returned: every replica has every batch, byte for byte.
	checkFor(t, 5*time.Second, func() error { return b.sameLogs("orders") })
	acked := b.logBytes(first, "orders")

	// The leader crashes right after writing a batch nobody replicated.
	p, _ := b.stores[first].Partition("orders", 0)
	epoch, _ := b.nodes[first].LeaderEpoch("orders", 0)
	b.nodes[first].Close() // stop replicating first
	if _, err := p.Append(context.Background(), batch(t, "unreplicated", 2), storage.AppendOptions{LeaderEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	b.stores[first].Close()
	delete(b.nodes, first)

	start := time.Now()
	second := b.produceEventually("orders", "c")
	t.Logf("first acks=all produce on the new leader %v after the crash", time.Since(start))
	if second == first {
		t.Fatal("crashed broker still leads")
	}
	if got := b.logBytes(second, "orders"); !bytes.HasPrefix(got, acked) {
		t.Fatal("the new leader lost acknowledged batches")
	}

	// The old leader restarts from its disk: it must drop the unreplicated
	// batch, catch up, and rejoin the ISR.
	b.restart(first)
	checkFor(t, 15*time.Second, func() error {
		p, _ := b.nodes[second].Controller.State().Partition("orders", 0)
		if len(p.ISR) != 3 {
			return fmt.Errorf("ISR %v", p.ISR)
		}
		return nil
	})
	b.produceEventually("orders", "d")
	checkFor(t, 10*time.Second, func() error { return b.sameLogs("orders") })
	if bytes.Contains(b.logBytes(first, "orders"), []byte("unreplicated")) {
		t.Fatal("the unreplicated batch survived on the old leader")
	}
}

func TestControlledShutdownKeepsProducing(t *testing.T) {
	if testing.Short() {
		t.Skip("three in-process brokers")
	}
	b := newBrokers(t, 3)
	var any *Node
	for _, n := range b.nodes {
		any = n
	}
	if _, err := any.Metadata.CreateTopic(context.Background(), "t", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	leader := b.produceEventually("t", "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.nodes[leader].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b.stores[leader].Close()
	delete(b.nodes, leader)
	// Leadership moved before the broker stopped: the next acks=all
	// produce succeeds without waiting for a lease to lapse.
	start := time.Now()
	next, _, err := b.produce("t", "b")
	for i := 0; err != nil && i < 50; i++ { // metadata reaches the new leader's manager within milliseconds
		time.Sleep(10 * time.Millisecond)
		next, _, err = b.produce("t", "b")
	}
	if err != nil {
		t.Fatalf("produce after a controlled shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second || next == leader { // well under the 3 s lease
		t.Fatalf("new leader %d after %v", next, took)
	}
	checkFor(t, 5*time.Second, func() error {
		p, _ := b.nodes[next].Controller.State().Partition("t", 0)
		if p.Leader == leader || len(p.ISR) != 2 {
			return fmt.Errorf("partition after controlled shutdown: %+v", p)
		}
		return nil
	})
}
