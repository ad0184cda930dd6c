package server

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/txn"
)

// txnCoordinatorOf asks broker via for the coordinator of a transactional
// id, creating __transaction_state on first use.
func (c *inProcessCluster) txnCoordinatorOf(via int32, id string) int32 {
	c.t.Helper()
	var node int32
	waitCluster(c.t, 30*time.Second, func() error {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorType, req.CoordinatorKey = 3, 1, id
		resp := roundTrip[*kmsg.FindCoordinatorResponse](c.t, c.servers[via], req)
		if resp.ErrorCode != 0 {
			return fmt.Errorf("FindCoordinator: error %d", resp.ErrorCode)
		}
		node = resp.NodeID
		return nil
	})
	return node
}

func (c *inProcessCluster) seeds(except ...int32) []string {
	var out []string
	for id, s := range c.servers {
		if !slices.Contains(except, id) {
			out = append(out, s.Addr().String())
		}
	}
	slices.Sort(out)
	return out
}

// TestClusterTransactionSurvivesCoordinatorCrash: markers reach partition
// leaders on other brokers, and a transaction open when its coordinator's
// broker crashes is found Ongoing, with its partitions, by the coordinator
// that takes over its partition of __transaction_state (loaded from the
// replicated log), and committed through it: read_committed consumers see
// each committed record once, nothing else. (A crash while the EndTxn is
// in flight leaves its outcome unknown to the client, which must abort:
// the ETL test in broker/clienttest covers that.)
func TestClusterTransactionSurvivesCoordinatorCrash(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("tx", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const id = "cluster-producer"
	coord := c.txnCoordinatorOf(1, id)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("tx"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(60*time.Second),
		kgo.RetryTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var want []string
	txn := func(prefix string, commit bool, beforeEnd func()) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range int32(3) {
			r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%s-%d", prefix, p)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("producing %s: %v", r.Value, err)
			}
			if commit {
				want = append(want, string(r.Value))
			}
		}
		if beforeEnd != nil {
			beforeEnd()
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("ending %s: %v", prefix, err)
		}
	}
	txn("first", true, nil)
	txn("aborted", false, nil)
	survivor := int32(1)
	if coord == 1 {
		survivor = 2
	}
	txn("second", true, func() {
		t.Logf("crashing broker %d, the transaction coordinator", coord)
		c.servers[coord].node.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = c.servers[coord].Shutdown(sctx)
		// The partition of __transaction_state moves to a broker that
		// loads the open transaction from its replica of the log.
		waitCluster(t, 30*time.Second, func() error {
			next := c.txnCoordinatorOf(survivor, id)
			if next == coord {
				return fmt.Errorf("broker %d still coordinates %s", coord, id)
			}
			p, _ := c.servers[next].txnPartitionFor(id)
			d, code := c.servers[next].txn.Describe(p, id)
			if code != 0 || d.State.String() != "Ongoing" || len(d.Partitions) != 3 {
				return fmt.Errorf("new coordinator %d: %+v (code %d)", next, d, code)
			}
			return nil
		})
	})

	rc, got := readCommitted(ctx, t, c.seeds(coord), "tx", len(want))
	// Nothing more arrives (the aborted records stay hidden).
	extra, cancelExtra := context.WithTimeout(ctx, time.Second)
	fs := rc.PollFetches(extra)
	cancelExtra()
	fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed: %v, want %v", got, want)
	}
}

// readCommitted reads topic from its start with read_committed through
// seeds until it has n records (failing when ctx ends first), and returns
// their values and the client, closed when the test ends.
func readCommitted(ctx context.Context, t *testing.T, seeds []string, topic string, n int) (*kgo.Client, []string) {
	t.Helper()
	rc, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	var got []string
	for len(got) < n {
		fs := rc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed got %v, want %d records", got, n)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return rc, got
}

// waitCommitted waits until the coordinator of transactional id id (in
// its partition of __transaction_state) holds its transaction complete.
func (c *inProcessCluster) waitCommitted(t *testing.T, id string, txnPartition int32) {
	t.Helper()
	waitCluster(t, 30*time.Second, func() error {
		now := c.txnCoordinatorOf(1, id)
		d, code := c.servers[now].txn.Describe(txnPartition, id)
		if code != 0 || d.State != txn.CompleteCommit {
			return fmt.Errorf("coordinator %d: %+v (code %d), want CompleteCommit", now, d, code)
		}
		return nil
	})
}

// moveLeadership makes another replica of topic-index its leader, with no
// broker stopped: the replicas are reordered so that one first becomes
// preferred, and a preferred election is asked for until it leads.
func (c *inProcessCluster) moveLeadership(topic string, index int32) (from, to int32) {
	c.t.Helper()
	p, ok := c.servers[1].lookupPartition(topic, index)
	if !ok {
		c.t.Fatalf("%s-%d unknown to broker 1", topic, index)
	}
	from = p.leader
	replicas := slices.DeleteFunc(slices.Clone(p.replicas), func(id int32) bool { return id == from })
	to = replicas[0]
	replicas = append(replicas, from)
	areq := kmsg.NewAlterPartitionAssignmentsRequest()
	at := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	at.Topic = topic
	ap := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	ap.Partition, ap.Replicas = index, replicas
	at.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{ap}
	areq.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{at}
	aresp := roundTrip[*kmsg.AlterPartitionAssignmentsResponse](c.t, c.servers[1], &areq)
	if aresp.ErrorCode != 0 || aresp.Topics[0].Partitions[0].ErrorCode != 0 {
		c.t.Fatalf("reordering %s-%d's replicas to %v refused: %v / %v", topic, index, replicas,
			kerr.ErrorForCode(aresp.ErrorCode), kerr.ErrorForCode(aresp.Topics[0].Partitions[0].ErrorCode))
	}
	waitCluster(c.t, 30*time.Second, func() error {
		if l, _ := c.leader(topic, index); l == to {
			return nil
		}
		ereq := kmsg.NewElectLeadersRequest()
		ereq.Version = 2
		et := kmsg.NewElectLeadersRequestTopic()
		et.Topic, et.Partitions = topic, []int32{index}
		ereq.Topics = []kmsg.ElectLeadersRequestTopic{et}
		eresp := roundTrip[*kmsg.ElectLeadersResponse](c.t, c.servers[1], &ereq)
		l, _ := c.leader(topic, index)
		return fmt.Errorf("%s-%d led by %d, want %d (ElectLeaders: %v %+v)", topic, index, l, to, kerr.ErrorForCode(eresp.ErrorCode), eresp.Topics)
	})
	return from, to
}

// holdNextTxnWrite holds the next write to partition of
// __transaction_state, on whichever broker coordinates it then (its
// leadership may have moved since the test looked), before it reaches the
// replica manager: held receives that broker's id when it is held, release
// lets it go on (after a minute it goes on by itself).
func (c *inProcessCluster) holdNextTxnWrite(partition int32) (held <-chan int32, release func()) {
	c.t.Helper()
	heldCh, releaseCh := make(chan int32, 1), make(chan struct{})
	var once atomic.Bool
	for id, s := range c.servers {
		hold := func(p int32) {
			if p != partition || !once.CompareAndSwap(false, true) {
				return
			}
			heldCh <- id
			select {
			case <-releaseCh:
			case <-time.After(time.Minute):
			}
		}
		s.beforeTxnWrite.Store(&hold)
	}
	var released atomic.Bool
	release = func() {
		if released.CompareAndSwap(false, true) {
			close(releaseCh)
			for _, s := range c.servers {
				s.beforeTxnWrite.Store(nil)
			}
		}
	}
	c.t.Cleanup(release)
	return heldCh, release
}

// TestClusterCommitSurvivesCoordinatorMovingMidCommit: the coordinator's
// write of a commit decision (PrepareCommit) is held before it reaches the
// log while the leadership of the transactional id's partition of
// __transaction_state moves to another broker, no broker stopped. The held
// write is then refused (the leader epoch moved on), the EndTxn answered
// NOT_COORDINATOR, and franz-go's producer finds the new coordinator and
// commits there: EndTransaction returns no error, the new coordinator
// completes the commit, read_committed consumers see the records, and the
// producer's next transaction commits through the new coordinator.
func TestClusterCommitSurvivesCoordinatorMovingMidCommit(t *testing.T) {
	c := startInProcessCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	p := newHeldCommitProducer(ctx, t, c, "moving-coordinator")
	p.produce("first")

	// The next write of the id's partition on the coordinator, the
	// EndTxn's PrepareCommit, waits until the leadership has moved.
	holder, ended, release := p.commitHeld()
	from, to := c.moveLeadership(txn.StateTopic, p.txnPartition)
	if from != holder {
		t.Fatalf("broker %d held the write, broker %d led %s-%d", holder, from, txn.StateTopic, p.txnPartition)
	}
	t.Logf("%s-%d moved from broker %d to %d with the PrepareCommit write held", txn.StateTopic, p.txnPartition, from, to)
	release()
	if err := <-ended; err != nil {
		t.Fatalf("EndTransaction across the move: %v", err)
	}
	p.commitNextAndRead("second")
}

// TestClusterSlowTransactionLogCommitCompletes: the coordinator's write of
// a commit decision is held 3 s, three times the producer's request
// timeout (franz-go with a 1 s RequestTimeoutOverhead), as a
// __transaction_state leader too slow to replicate would. franz-go gives
// up reading, sends the EndTxn again, and is answered
// CONCURRENT_TRANSACTIONS (retriable) while the write is in flight and
// the markers are written; then the retry of a completed commit, 0. The
// commit completes, read_committed consumers see the records, and the
// producer's next transaction commits.
func TestClusterSlowTransactionLogCommitCompletes(t *testing.T) {
	c := startInProcessCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	p := newHeldCommitProducer(ctx, t, c, "slow-log", kgo.RequestTimeoutOverhead(time.Second))
	p.produce("slow")
	coord, ended, release := p.commitHeld()
	// The write is slower than the producer's request timeout: three
	// times it.
	time.Sleep(3 * time.Second)
	release()
	if err := <-ended; err != nil {
		t.Fatalf("EndTransaction with the decision's write held 3 s: %v", err)
	}
	t.Logf("broker %d held the commit decision's write 3 s", coord)
	p.commitNextAndRead("next")
}

// heldCommitProducer is a transactional franz-go producer to the three
// partitions of topic tx (created here), whose commit decisions a test
// holds at the coordinator's write (holdNextTxnWrite).
type heldCommitProducer struct {
	ctx          context.Context
	t            *testing.T
	c            *inProcessCluster
	id           string
	txnPartition int32 // the id's partition of __transaction_state
	cl           *kgo.Client
	want         []string // every record of a committed transaction
}

func newHeldCommitProducer(ctx context.Context, t *testing.T, c *inProcessCluster, id string, opts ...kgo.Opt) *heldCommitProducer {
	t.Helper()
	c.createReplicated("tx", 3)
	c.txnCoordinatorOf(1, id) // creates __transaction_state
	txnPartition, _ := c.servers[1].txnPartitionFor(id)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("tx"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(60 * time.Second),
		kgo.RetryTimeout(60 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &heldCommitProducer{ctx: ctx, t: t, c: c, id: id, txnPartition: txnPartition, cl: cl}
}

// produce begins a transaction and writes prefix-0..2, one per partition.
func (p *heldCommitProducer) produce(prefix string) {
	p.t.Helper()
	if err := p.cl.BeginTransaction(); err != nil {
		p.t.Fatal(err)
	}
	for i := range int32(3) {
		r := &kgo.Record{Partition: i, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
		if err := p.cl.ProduceSync(p.ctx, r).FirstErr(); err != nil {
			p.t.Fatalf("producing %s: %v", r.Value, err)
		}
		p.want = append(p.want, string(r.Value))
	}
}

// commitHeld commits in the background with the coordinator's next write
// of the id's partition held, and returns once it is held: the broker
// holding it, the commit's result to come, and the release of the write.
func (p *heldCommitProducer) commitHeld() (holder int32, ended <-chan error, release func()) {
	p.t.Helper()
	held, release := p.c.holdNextTxnWrite(p.txnPartition)
	done := make(chan error, 1)
	go func() { done <- p.cl.EndTransaction(p.ctx, kgo.TryCommit) }()
	select {
	case holder = <-held:
	case err := <-done:
		p.t.Fatalf("EndTransaction returned (%v) before the coordinator wrote its decision", err)
	case <-p.ctx.Done():
		p.t.Fatal("the coordinator never wrote the commit decision")
	}
	return holder, done, release
}

// commitNextAndRead waits until the coordinator completed the commit, then
// commits one more transaction (prefix) and checks that read_committed
// consumers read every committed record.
func (p *heldCommitProducer) commitNextAndRead(prefix string) {
	p.t.Helper()
	p.c.waitCommitted(p.t, p.id, p.txnPartition)
	p.produce(prefix)
	if err := p.cl.EndTransaction(p.ctx, kgo.TryCommit); err != nil {
		p.t.Fatalf("committing the next transaction: %v", err)
	}
	_, got := readCommitted(p.ctx, p.t, p.c.seeds(), "tx", len(p.want))
	slices.Sort(got)
	want := slices.Sorted(slices.Values(p.want))
	if !slices.Equal(got, want) {
		p.t.Fatalf("read_committed: %v, want %v", got, want)
	}
}
