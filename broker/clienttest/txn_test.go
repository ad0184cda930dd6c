package clienttest

// Transactions with real clients: franz-go's exactly-once
// consume-transform-produce (GroupTransactSession) across kill -9 of a
// broker in a three-broker cluster, sarama's transactional producer,
// confluent-kafka (librdkafka) and kcat, each checked by read_committed
// consumers that must never see an aborted record.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/internal/testenv"
)

// etlWorker is one exactly-once consume-transform-produce process: a
// GroupTransactSession reading etl-in in read_committed and writing
// "out:<value>" to etl-out in the same transaction as its offsets. A fatal
// error (a fence) restarts it as a new incarnation of the same
// transactional id, as an application would.
type etlWorker struct {
	t        *testing.T
	c        *testCluster
	id       string
	txns     atomic.Int64 // committed transactions
	restarts atomic.Int64
	stop     chan struct{}
	done     chan struct{}
}

func startETLWorker(t *testing.T, c *testCluster, id string) *etlWorker {
	w := &etlWorker{t: t, c: c, id: id, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.finish)
	return w
}

func (w *etlWorker) finish() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *etlWorker) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *etlWorker) run() {
	defer close(w.done)
	for !w.stopped() {
		if err := w.session(); err != nil {
			w.restarts.Add(1)
			w.t.Logf("etl worker %s restarts after: %v", w.id, err)
		}
	}
}

// session runs one incarnation until stopped or a fatal error.
func (w *etlWorker) session() error {
	opts := []kgo.Opt{
		kgo.TransactionalID(w.id),
		kgo.TransactionTimeout(30 * time.Second),
		kgo.ConsumerGroup("etl"),
		kgo.ConsumeTopics("etl-in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(10 * time.Second),
		kgo.DefaultProduceTopic("etl-out"),
		kgo.RecordDeliveryTimeout(60 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.MaxBufferedRecords(500),
	}
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return "worker " + w.id + ": " })))
	}
	sess, err := kgo.NewGroupTransactSession(append(opts, kgo.SeedBrokers(w.c.bootstrap()...))...)
	if err != nil {
		return err
	}
	defer sess.Close()
	for !w.stopped() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fetches := sess.PollFetches(ctx)
		cancel()
		if errors.Is(fetches.Err0(), kgo.ErrClientClosed) {
			return nil
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			out := &kgo.Record{Key: slices.Clone(r.Key), Value: append([]byte("out:"), r.Value...)}
			sess.Produce(context.Background(), out, nil)
		})
		ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
		committed, err := sess.End(ctx, kgo.TryCommit)
		cancel()
		if err != nil {
			return fmt.Errorf("end: %w", err)
		}
		if committed {
			w.txns.Add(1)
		} else {
			w.t.Logf("worker %s aborted a transaction", w.id)
		}
	}
	return nil
}

// readCommittedOutput reads etl-out in read_committed from the start until
// want records arrived (and then a little more, for late duplicates).
func readCommittedOutput(t *testing.T, c *testCluster, want int, limit time.Duration) map[string]int {
	t.Helper()
	cl := c.client(kgo.ConsumeTopics("etl-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	seen := map[string]int{}
	total := 0
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var quiet time.Time
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			total++
		})
		if total >= want {
			if quiet.IsZero() {
				quiet = time.Now().Add(3 * time.Second)
			}
			if time.Now().After(quiet) {
				return seen
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("read_committed output: %d records (%d distinct) within %v, want %d", total, len(seen), limit, want)
		}
	}
}

// TestTxnFranzGoETLSurvivesKill9: two exactly-once workers move a stream
// from etl-in to etl-out while a broker (the transaction coordinator of one
// worker) is killed with SIGKILL and restarted: the read_committed output
// holds every input record exactly once, and the group's committed
// offsets are at the end of the input. With in-cluster TLS too: the
// coordinator's markers and verifications go to the other brokers'
// replication listeners over TLS.
func TestTxnFranzGoETLSurvivesKill9(t *testing.T) {
	forEachTransport(t, testTxnFranzGoETLSurvivesKill9)
}

// inputTransaction writes the records from..to-1 of etl-in in one
// transaction and commits it; an error leaves the transaction open for the
// caller to abort.
// errCannotBegin is a producer that cannot begin a transaction: kgo
// holds its producer id fatal, and only a new producer writes again.
var errCannotBegin = errors.New("the producer cannot begin a transaction")

func inputTransaction(ctx context.Context, in *kgo.Client, from, to int) error {
	if err := in.BeginTransaction(); err != nil {
		return fmt.Errorf("%w: %w", errCannotBegin, err)
	}
	var failed atomic.Pointer[error]
	for j := from; j < to; j++ {
		in.Produce(ctx, &kgo.Record{Key: fmt.Appendf(nil, "%d", j), Value: fmt.Appendf(nil, "v%d", j)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	// EndTransaction does not flush.
	if err := in.Flush(ctx); err != nil {
		return err
	}
	if err := failed.Load(); err != nil {
		return *err
	}
	return in.EndTransaction(ctx, kgo.TryCommit)
}

func testTxnFranzGoETLSurvivesKill9(t *testing.T, inClusterTLS bool) {
	c := startClusterTLS(t, 3, inClusterTLS)
	c.createTopic("etl-in", 3)
	c.createTopic("etl-out", 3)
	const n = 3000

	// The input, committed in transactions of 50 by its own producer
	// while the workers run (so they work across the fault).
	inputOpts := []kgo.Opt{kgo.SeedBrokers(c.bootstrap()...), kgo.TransactionalID("etl-source"), kgo.DefaultProduceTopic("etl-in"),
		kgo.TransactionTimeout(30 * time.Second), kgo.RecordDeliveryTimeout(60 * time.Second)}
	produced := make(chan error, 1)
	go func() {
		ctx := context.Background()
		in, err := kgo.NewClient(inputOpts...)
		if err != nil {
			produced <- err
			return
		}
		defer func() { in.Close() }()
		for i := 0; i < n; i += 50 {
			// A record refused during the fault is what an application
			// meets too. franz-go v1.22 can fail it with "unknown broker"
			// when the killed broker also coordinated this producer: while
			// the coordinator is down, AddPartitionsToTxn retries in a
			// tight loop, each round resolving the coordinator from kgo's
			// cache (the killed broker, still in its broker list) and then
			// looking that node up again to send; a metadata refresh that
			// lands between the two (the first after the broker was
			// fenced, which no longer lists it) makes the second lookup
			// fetch Metadata twice, fail with the non-retryable "unknown
			// broker", and the sink calls the producer id fatal. The
			// coordinator was named while it was alive: a broker names
			// only nodes its own Metadata lists (FindCoordinator resolves
			// the endpoint from the same state; broker/server's
			// named_nodes_test.go pins the partition leaders and the
			// controller). The application aborts and writes the range
			// again, with a new producer when kgo calls the producer id
			// fatal (the new producer's InitProducerId fences the old one
			// and aborts its transaction). Aborted records are invisible
			// to the read_committed workers, so the exactly-once check
			// below is unchanged.
			var err error
			for attempt := 1; attempt <= 8; attempt++ {
				if err = inputTransaction(ctx, in, i, i+50); err == nil {
					break
				}
				t.Logf("input transaction at %d, attempt %d, aborted: %v", i, attempt, err)
				// The abort can succeed and leave kgo holding the producer
				// id fatal: every BeginTransaction after it fails (seen
				// under load, attempts 2 to 8 all refused so), so a
				// producer that cannot begin is replaced too.
				if abortErr := in.EndTransaction(ctx, kgo.TryAbort); abortErr != nil || errors.Is(err, errCannotBegin) {
					t.Logf("input transaction at %d: a new producer takes over (abort: %v)", i, abortErr)
					in.Close()
					fresh, newErr := kgo.NewClient(inputOpts...)
					if newErr != nil {
						err = fmt.Errorf("%w; a new producer: %w", err, newErr)
						break
					}
					in = fresh
				}
				time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
			}
			if err != nil {
				produced <- fmt.Errorf("input transaction at %d: %w", i, err)
				return
			}
			time.Sleep(40 * time.Millisecond)
		}
		produced <- nil
	}()

	w1 := startETLWorker(t, c, "etl-worker-1")
	w2 := startETLWorker(t, c, "etl-worker-2")
	waitFor(t, "the workers commit transactions", 90*time.Second, func() bool { return w1.txns.Load()+w2.txns.Load() >= 10 })

	victim := c.txnCoordinatorOf("etl-worker-1")
	t.Logf("kill -9 broker %d (coordinator of etl-worker-1)", victim)
	c.kill9(victim)
	time.Sleep(4 * time.Second)
	c.restart(victim)

	select {
	case err := <-produced:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the input producer did not finish")
	}
	stopLog := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopLog:
				return
			case <-time.After(5 * time.Second):
				t.Logf("progress: worker 1 %d txns (%d restarts), worker 2 %d txns (%d restarts)", w1.txns.Load(), w1.restarts.Load(), w2.txns.Load(), w2.restarts.Load())
			}
		}
	}()
	defer close(stopLog)
	seen := readCommittedOutput(t, c, n, 3*time.Minute)
	var dups, missing []string
	for i := range n {
		v := fmt.Sprintf("out:v%d", i)
		switch seen[v] {
		case 0:
			missing = append(missing, v)
		case 1:
		default:
			dups = append(dups, fmt.Sprintf("%s x%d", v, seen[v]))
		}
	}
	if len(seen) != n || len(dups) > 0 || len(missing) > 0 {
		t.Fatalf("read_committed output: %d distinct records, want %d; duplicates %v; missing %d (first %v)",
			len(seen), n, head(dups), len(missing), head(missing))
	}
	w1.finish()
	w2.finish()
	t.Logf("transactions committed: worker 1 %d, worker 2 %d; restarts %d, %d", w1.txns.Load(), w2.txns.Load(), w1.restarts.Load(), w2.restarts.Load())
	adm, done := c.freshAdmin()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, "etl")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "etl-in")
	if err != nil {
		t.Fatal(err)
	}
	// Each input partition ends with a COMMIT marker, which a consumer's
	// position reaches only by reading past it: the committed offset is
	// the marker's or the end.
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := offs.Lookup("etl-in", e.Partition)
		if !ok || o.At < e.Offset-1 || o.At > e.Offset {
			t.Errorf("etl-in[%d]: committed %+v, end %d", e.Partition, o, e.Offset)
		}
	})
}

func head(s []string) []string {
	sort.Strings(s)
	return s[:min(len(s), 10)]
}

// txnCoordinatorOf asks the cluster which broker coordinates a
// transactional id.
func (c *testCluster) txnCoordinatorOf(id string) int32 {
	c.t.Helper()
	var node int32 = -1
	waitFor(c.t, "the transaction coordinator of "+id, 30*time.Second, func() bool {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...))
		if err != nil {
			return false
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType, req.CoordinatorKey = 1, id
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 {
			return false
		}
		node = resp.NodeID
		return true
	})
	return node
}

// checkCommittedOnly checks what a read_committed consumer read: the
// committed values c-0 .. c-<want-1> once each, and no aborted value
// (a-...).
func checkCommittedOnly(t *testing.T, who string, got []string, wantCommitted int) {
	t.Helper()
	seen := map[string]int{}
	for _, v := range got {
		if strings.HasPrefix(v, "a-") {
			t.Fatalf("%s read an aborted record %q (read_committed)", who, v)
		}
		seen[v]++
	}
	for i := range wantCommitted {
		if v := fmt.Sprintf("c-%d", i); seen[v] != 1 {
			t.Fatalf("%s read %q %d times, want once; got %v", who, v, seen[v], got)
		}
	}
	if len(got) != wantCommitted {
		t.Fatalf("%s read %d records, want %d: %v", who, len(got), wantCommitted, got)
	}
}

// franzReadCommitted reads a topic from the start in read_committed until
// want records arrived and then a quiet second more (all of the topic was
// written before: anything extra would come then).
func franzReadCommitted(t *testing.T, b *testBroker, topic string, want int) []string {
	t.Helper()
	ctx := testContext(t, 60*time.Second)
	cl := b.client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	var out []string
	var quiet time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
		if len(out) >= want {
			if quiet.IsZero() {
				quiet = time.Now().Add(time.Second)
			}
			if time.Now().After(quiet) {
				return out
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("reading %s in read_committed: %d records, want %d: %v", topic, len(out), want, out)
		}
	}
}

// TestTxnSarama: sarama's transactional producer commits and aborts; a
// sarama read_committed consumer, a franz-go one and kcat with
// isolation.level=read_committed see exactly the committed records.
func TestTxnSarama(t *testing.T) {
	b := startBroker(t)
	b.createTopic(t, "sarama-txn", 2, nil)
	cfg := saramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = "sarama-txn-producer"
	cfg.Producer.Transaction.Timeout = 30 * time.Second
	cfg.Producer.Retry.Max = 10
	cfg.Net.MaxOpenRequests = 1
	prod, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	committed := 0
	send := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			v := fmt.Sprintf("%s-%d", prefix, i)
			if prefix == "c" {
				v = fmt.Sprintf("c-%d", committed)
				committed++
			}
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "sarama-txn", Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("sending %s: %v", v, err)
			}
		}
	}
	for round := range 3 {
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		send("c", 10)
		if err := prod.CommitTxn(); err != nil {
			t.Fatalf("commit %d: %v", round, err)
		}
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		send(fmt.Sprintf("a-%d", round), 7)
		if err := prod.AbortTxn(); err != nil {
			t.Fatalf("abort %d: %v", round, err)
		}
	}

	got := franzReadCommitted(t, b, "sarama-txn", committed)
	checkCommittedOnly(t, "franz-go", got, committed)

	ccfg := saramaConfig()
	ccfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cons, err := sarama.NewConsumer([]string{b.addr}, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var viaSarama []string
	for _, p := range []int32{0, 1} {
		pc, err := cons.ConsumePartition("sarama-txn", p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		quiet := time.After(3 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				viaSarama = append(viaSarama, string(m.Value))
				quiet = time.After(time.Second)
			case err := <-pc.Errors():
				t.Fatalf("sarama consumer: %v", err)
			case <-quiet:
				break read
			}
		}
		pc.Close()
	}
	checkCommittedOnly(t, "sarama", viaSarama, committed)

	if haveKcat() {
		out := run(t, 30*time.Second, "", "/usr/bin/kcat", "-C", "-b", b.addr, "-t", "sarama-txn", "-o", "beginning", "-e",
			"-X", "isolation.level=read_committed", "-f", "%s\n")
		checkCommittedOnly(t, "kcat", strings.Fields(out), committed)
		// kcat read_uncommitted sees the aborted records too: the check
		// above is not vacuous.
		all := run(t, 30*time.Second, "", "/usr/bin/kcat", "-C", "-b", b.addr, "-t", "sarama-txn", "-o", "beginning", "-e",
			"-X", "isolation.level=read_uncommitted", "-f", "%s\n")
		if n := len(strings.Fields(all)); n != committed+21 {
			t.Fatalf("kcat read_uncommitted read %d records, want %d", n, committed+21)
		}
	} else {
		testenv.Missing(t, "kcat not installed (Debian package kcat): run make tools")
	}
}

// TestTxnConfluentKafka: librdkafka's transactional producer through
// python3-confluent-kafka (init_transactions, commit, abort, and a
// send_offsets_to_transaction consume-transform-produce), and its
// read_committed consumer; a franz-go read_committed consumer agrees.
func TestTxnConfluentKafka(t *testing.T) {
	requirePython(t, "confluent_kafka", "python3-confluent-kafka")
	b := startBroker(t)
	b.createTopic(t, "ck-txn", 2, nil)
	b.createTopic(t, "ck-txn-out", 2, nil)
	script := `
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
addr = sys.argv[1]
p = Producer({'bootstrap.servers': addr, 'transactional.id': 'ck-producer', 'transaction.timeout.ms': 30000})
p.init_transactions(30)
committed = 0
for rnd in range(3):
    p.begin_transaction()
    for i in range(10):
        p.produce('ck-txn', key=b'k', value=('c-%d' % committed).encode())
        committed += 1
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce('ck-txn', key=b'k', value=('a-%d-%d' % (rnd, i)).encode())
    p.flush(30)
    p.abort_transaction(30)

# read_committed consumer: only the committed ones.
c = Consumer({'bootstrap.servers': addr, 'group.id': 'ck-etl', 'auto.offset.reset': 'earliest',
              'enable.auto.commit': False, 'isolation.level': 'read_committed'})
c.subscribe(['ck-txn'])
seen = []
deadline = time.time() + 30
while len(seen) < committed and time.time() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        print('consumer error', m.error()); sys.exit(1)
    seen.append(m.value().decode())
for v in seen:
    if v.startswith('a-'):
        print('aborted record read', v); sys.exit(1)
if sorted(seen) != sorted('c-%d' % i for i in range(committed)):
    print('read', seen); sys.exit(1)

# Exactly-once step: transform what was read into ck-txn-out with the
# consumer's offsets in the same transaction.
p.begin_transaction()
for v in seen:
    p.produce('ck-txn-out', value=('out-' + v).encode())
assignment = c.assignment()
positions = c.position(assignment)
p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 30)
p.commit_transaction(30)
c.close()
print(committed)
`
	out := run(t, 120*time.Second, "", python, "-c", script, b.addr)
	if strings.TrimSpace(out) != "30" {
		t.Fatalf("confluent-kafka script printed %q, want 30", out)
	}
	got := franzReadCommitted(t, b, "ck-txn", 30)
	checkCommittedOnly(t, "franz-go", got, 30)
	outs := franzReadCommitted(t, b, "ck-txn-out", 30)
	if len(outs) != 30 {
		t.Fatalf("ck-txn-out: %v", outs)
	}
	// The group's offsets committed in the transaction are the input's
	// end (markers included).
	ctx := testContext(t, 10*time.Second)
	offs, err := b.admin(t).FetchOffsets(ctx, "ck-etl")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := b.admin(t).ListEndOffsets(ctx, "ck-txn")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		if o, ok := offs.Lookup("ck-txn", e.Partition); e.Offset > 0 && (!ok || o.At > e.Offset || o.At <= 0) {
			t.Errorf("ck-txn[%d]: transactional offset %+v, end %d", e.Partition, o, e.Offset)
		}
	})
}
