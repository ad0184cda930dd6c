package txn

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeMarkers records the markers asked for and answers with codes a test
// sets per partition (0 by default).
type fakeMarkers struct {
	mu     sync.Mutex
	calls  []Markers
	codes  map[TopicPartition]int16
	block  chan struct{} // when set, every call waits for it
	called chan Markers
}

func (f *fakeMarkers) WriteTxnMarkers(ctx context.Context, m Markers) map[TopicPartition]int16 {
	f.mu.Lock()
	f.calls = append(f.calls, m)
	block, called := f.block, f.called
	f.mu.Unlock()
	if called != nil {
		select {
		case called <- m:
		default:
		}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[TopicPartition]int16{}
	for _, tp := range m.Partitions {
		out[tp] = f.codes[tp]
	}
	return out
}

func (f *fakeMarkers) setCode(tp TopicPartition, code int16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.codes == nil {
		f.codes = map[TopicPartition]int16{}
	}
	f.codes[tp] = code
}

func (f *fakeMarkers) all() []Markers {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Markers(nil), f.calls...)
}

type fixture struct {
	t       *testing.T
	c       *Coordinator
	log     *MemoryLog
	markers *fakeMarkers
	nextPID atomic.Int64
	now     atomic.Int64 // ms
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, log: NewMemoryLog(), markers: &fakeMarkers{}}
	f.nextPID.Store(1000)
	f.now.Store(1_000_000)
	f.start()
	return f
}

func (f *fixture) config() Config {
	return Config{
		AllocateProducerID: func() (int64, error) { return f.nextPID.Add(1), nil },
		Markers:            f.markers,
		MaxTimeout:         time.Minute,
		IDExpiration:       time.Hour,
		AbortInterval:      time.Hour, // tests call AbortTimedOut themselves
		ExpiryInterval:     time.Hour,
		// An add waiting for a change in flight is answered when the
		// change ends, however late a loaded machine runs the test (the
		// 1 s default was not always enough); the test of the bound sets
		// a short one itself.
		ConcurrentWait: eventually,
		Now:            func() time.Time { return time.UnixMilli(f.now.Load()) },
	}
}

func (f *fixture) start() {
	f.t.Helper()
	c, err := New(f.config())
	if err != nil {
		f.t.Fatal(err)
	}
	f.c = c
	f.t.Cleanup(c.Close)
	c.Load(0, 5, f.log)
	f.waitReady()
}

func (f *fixture) waitReady() {
	f.t.Helper()
	deadline := time.Now().Add(eventually)
	for {
		if st, _ := f.c.Status(0); st == ShardReady {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("shard not ready within %v", eventually)
		}
		time.Sleep(time.Millisecond)
	}
}

// restart is a failover: a new coordinator loads the same log.
func (f *fixture) restart(epoch int32) {
	f.t.Helper()
	f.c.Close()
	c, err := New(f.config())
	if err != nil {
		f.t.Fatal(err)
	}
	f.c = c
	f.t.Cleanup(c.Close)
	c.Load(0, epoch, f.log)
	f.waitReady()
}

func (f *fixture) init(id string, pid int64, epoch int16) (int64, int16, int16) {
	return f.c.InitProducerID(context.Background(), 0, InitRequest{TransactionalID: id, TimeoutMs: 10_000, ProducerID: pid, ProducerEpoch: epoch})
}

// waitState polls until id reaches state.
func (f *fixture) waitState(id string, want State) Description {
	f.t.Helper()
	deadline := time.Now().Add(eventually)
	for {
		d, code := f.c.Describe(0, id)
		if code == 0 && d.State == want {
			return d
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: state %v (code %d), want %v", id, d.State, code, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantCode(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %s, want %s", what, codeName(got), codeName(want))
	}
}

var tpA, tpB = TopicPartition{"a", 0}, TopicPartition{"b", 3}

func TestCommitLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pid, epoch, code := f.init("t1", -1, -1)
	wantCode(t, "init", code, 0)
	if epoch != 0 {
		t.Fatalf("first epoch %d, want 0", epoch)
	}
	wantCode(t, "end with nothing open", f.c.EndTxn(ctx, 0, "t1", pid, epoch, true), kerr.InvalidTxnState.Code)
	wantCode(t, "add", f.c.AddPartitions(ctx, 0, "t1", pid, epoch, []TopicPartition{tpA}), 0)
	wantCode(t, "add again", f.c.AddPartitions(ctx, 0, "t1", pid, epoch, []TopicPartition{tpA, tpB}), 0)
	v := f.c.VerifyPartitions(0, "t1", pid, epoch, []TopicPartition{tpA, {"c", 1}})
	wantCode(t, "verify a", v[tpA], 0)
	wantCode(t, "verify c", v[TopicPartition{"c", 1}], kerr.InvalidTxnState.Code)
	wantCode(t, "verify old epoch", f.c.VerifyPartitions(0, "t1", pid, epoch-1, []TopicPartition{tpA})[tpA], kerr.ProducerFenced.Code)
	wantCode(t, "commit", f.c.EndTxn(ctx, 0, "t1", pid, epoch, true), 0)
	d := f.waitState("t1", CompleteCommit)
	if len(d.Partitions) != 0 || d.StartTime != -1 {
		t.Fatalf("completed transaction keeps %v, start %d", d.Partitions, d.StartTime)
	}
	calls := f.markers.all()
	if len(calls) != 1 || !calls[0].Commit || calls[0].CoordinatorEpoch != 5 || len(calls[0].Partitions) != 2 || calls[0].ProducerID != pid {
		t.Fatalf("markers %+v", calls)
	}
	wantCode(t, "commit retried", f.c.EndTxn(ctx, 0, "t1", pid, epoch, true), 0)
	wantCode(t, "abort after commit", f.c.EndTxn(ctx, 0, "t1", pid, epoch, false), kerr.InvalidTxnState.Code)

	// The log replays to the same state.
	f.restart(6)
	d = f.waitState("t1", CompleteCommit)
	if d.ProducerID != pid || d.ProducerEpoch != epoch {
		t.Fatalf("after reload %+v", d)
	}
}

func TestInitFencesAndAbortsOngoing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pid, e0, _ := f.init("t", -1, -1)
	wantCode(t, "add", f.c.AddPartitions(ctx, 0, "t", pid, e0, []TopicPartition{tpA}), 0)
	// A new incarnation of the producer: the open transaction is aborted
	// at a fenced epoch, and the producer is asked to retry.
	_, _, code := f.init("t", -1, -1)
	wantCode(t, "init during a transaction", code, kerr.ConcurrentTransactions.Code)
	f.waitState("t", CompleteAbort)
	abort := f.markers.all()[0]
	if abort.Commit || abort.ProducerEpoch != e0+1 {
		t.Fatalf("abort markers %+v, want abort at epoch %d", abort, e0+1)
	}
	pid2, e2, code := f.init("t", -1, -1)
	wantCode(t, "init retried", code, 0)
	if pid2 != pid || e2 != e0+2 {
		t.Fatalf("after fencing: pid %d epoch %d, want %d epoch %d", pid2, e2, pid, e0+2)
	}
	// The zombie is fenced everywhere.
	wantCode(t, "zombie add", f.c.AddPartitions(ctx, 0, "t", pid, e0, []TopicPartition{tpB}), kerr.ProducerFenced.Code)
	wantCode(t, "zombie end", f.c.EndTxn(ctx, 0, "t", pid, e0, true), kerr.ProducerFenced.Code)
	wantCode(t, "wrong pid", f.c.AddPartitions(ctx, 0, "t", pid+7, e2, []TopicPartition{tpB}), kerr.InvalidProducerIDMapping.Code)
	// KIP-360: an epoch bump asked with the current epoch; a retry with
	// the previous epoch gets the same answer; an older one is fenced.
	_, e3, code := f.init("t", pid, e2)
	wantCode(t, "kip-360 bump", code, 0)
	if e3 != e2+1 {
		t.Fatalf("bump gave epoch %d, want %d", e3, e2+1)
	}
	_, e3again, code := f.init("t", pid, e2)
	wantCode(t, "kip-360 retry", code, 0)
	if e3again != e3 {
		t.Fatalf("retried bump gave epoch %d, want %d", e3again, e3)
	}
	_, _, code = f.init("t", pid, e0)
	wantCode(t, "kip-360 stale", code, kerr.ProducerFenced.Code)
	_, _, code = f.init("t", pid+9, 0)
	wantCode(t, "kip-360 other pid", code, kerr.ProducerFenced.Code)
}

func TestTimeoutAbortsAndMarkersRetry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pid, e, _ := f.init("t", -1, -1)
	wantCode(t, "add", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA, tpB}), 0)
	f.c.AbortTimedOut()
	f.waitState("t", Ongoing) // not yet due
	f.markers.setCode(tpB, kerr.NotLeaderForPartition.Code)
	f.now.Add(10_001)
	f.c.AbortTimedOut()
	// tpB's leader refuses: the round retries it until it succeeds.
	deadline := time.Now().Add(eventually)
	for len(f.markers.all()) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("markers not retried")
		}
		time.Sleep(time.Millisecond)
	}
	if d, _ := f.c.Describe(0, "t"); d.State != PrepareAbort {
		t.Fatalf("state %v while a marker is missing, want PrepareAbort", d.State)
	}
	wantCode(t, "end while aborting", f.c.EndTxn(ctx, 0, "t", pid, e+1, false), kerr.ConcurrentTransactions.Code)
	f.markers.setCode(tpB, 0)
	f.waitState("t", CompleteAbort)
	for _, m := range f.markers.all()[1:] {
		if len(m.Partitions) != 1 || m.Partitions[0] != tpB {
			t.Fatalf("retry sent %v, want only %v", m.Partitions, tpB)
		}
	}
	wantCode(t, "timed-out producer commits", f.c.EndTxn(ctx, 0, "t", pid, e, true), kerr.ProducerFenced.Code)
}

func TestDecidedTransactionResumesAfterFailover(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.markers.block = make(chan struct{})
	f.markers.called = make(chan Markers, 1)
	pid, e, _ := f.init("t", -1, -1)
	wantCode(t, "add", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA}), 0)
	wantCode(t, "commit", f.c.EndTxn(ctx, 0, "t", pid, e, true), 0)
	<-f.markers.called
	// The coordinator dies with the markers unsent; its successor (a new
	// leader epoch) finds PrepareCommit in the log and finishes. The
	// blocked call ends unanswered with the old shard's context: answered
	// (the block closed), the old round could write CompleteCommit before
	// the restart and leave the successor nothing to resume.
	f.markers.mu.Lock()
	f.markers.block = nil
	f.markers.mu.Unlock()
	f.restart(9)
	f.waitState("t", CompleteCommit)
	last := f.markers.all()[len(f.markers.all())-1]
	if !last.Commit || last.CoordinatorEpoch != 9 {
		t.Fatalf("resumed markers %+v, want commit at coordinator epoch 9", last)
	}
}

func TestFailedWriteStopsShardAndReloads(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pid, e, _ := f.init("t", -1, -1)
	// Wrapped so that the warning it logs reads as the fault injected
	// here, not as a write that timed out.
	f.log.FailAppends(fmt.Errorf("injected log fault: %w", context.DeadlineExceeded))
	wantCode(t, "add with a failing log", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA}), kerr.CoordinatorNotAvailable.Code)
	if st, _ := f.c.Status(0); st != ShardStopped {
		t.Fatalf("shard %v after a failed write, want stopped", st)
	}
	wantCode(t, "add on a stopped shard", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA}), kerr.CoordinatorLoadInProgress.Code)
	f.log.FailAppends(nil)
	f.c.Load(0, 5, f.log)
	f.waitReady()
	wantCode(t, "add after reload", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA}), 0)

	// A refusal before appending leaves the shard serving.
	f.log.FailAppends(ErrNotAppended)
	wantCode(t, "add refused", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpB}), kerr.CoordinatorNotAvailable.Code)
	if st, _ := f.c.Status(0); st != ShardReady {
		t.Fatalf("shard %v after a refused write, want ready", st)
	}
}

func TestExpireIDs(t *testing.T) {
	f := newFixture(t)
	pid, e, _ := f.init("idle", -1, -1)
	_, _, _ = f.init("busy", -1, -1)
	f.now.Add(time.Hour.Milliseconds())
	wantCode(t, "add", f.c.AddPartitions(context.Background(), 0, "busy", pid+1, e, []TopicPartition{tpA}), 0)
	f.c.ExpireIDs()
	if _, code := f.c.Describe(0, "idle"); code != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("idle id still known (%s)", codeName(code))
	}
	f.waitState("busy", Ongoing)
	f.restart(6)
	if _, code := f.c.Describe(0, "idle"); code != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("expired id back after reload (%s)", codeName(code))
	}
	// A new InitProducerId starts it afresh with a new producer id.
	pid2, e2, code := f.init("idle", -1, -1)
	wantCode(t, "init after expiry", code, 0)
	if pid2 == pid || e2 != 0 {
		t.Fatalf("after expiry pid %d epoch %d", pid2, e2)
	}
}

func TestRequestValidation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, _, code := f.c.InitProducerID(ctx, 0, InitRequest{TransactionalID: "t", TimeoutMs: 61_000, ProducerID: -1, ProducerEpoch: -1})
	wantCode(t, "timeout above max", code, kerr.InvalidTransactionTimeout.Code)
	_, _, code = f.c.InitProducerID(ctx, 0, InitRequest{TransactionalID: "t", TimeoutMs: 0, ProducerID: -1, ProducerEpoch: -1})
	wantCode(t, "zero timeout", code, kerr.InvalidTransactionTimeout.Code)
	_, _, code = f.c.InitProducerID(ctx, 3, InitRequest{TransactionalID: "t", TimeoutMs: 1000, ProducerID: -1, ProducerEpoch: -1})
	wantCode(t, "partition not led", code, kerr.NotCoordinator.Code)
	wantCode(t, "add unknown id", f.c.AddPartitions(ctx, 0, "nobody", 1, 0, []TopicPartition{tpA}), kerr.InvalidProducerIDMapping.Code)
	if _, code := f.c.Describe(0, "nobody"); code != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("describe unknown: %s", codeName(code))
	}
}

func TestListFilters(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p1, e1, _ := f.init("one", -1, -1)
	_, _, _ = f.init("two", -1, -1)
	wantCode(t, "add", f.c.AddPartitions(ctx, 0, "one", p1, e1, []TopicPartition{tpA}), 0)
	f.now.Add(500)
	all, _ := f.c.List(ListFilter{MinDurationMs: -1})
	if len(all) != 2 || all[0].TransactionalID != "one" {
		t.Fatalf("list all: %+v", all)
	}
	ongoing, _ := f.c.List(ListFilter{States: []State{Ongoing}, MinDurationMs: -1})
	if len(ongoing) != 1 || ongoing[0].TransactionalID != "one" {
		t.Fatalf("list ongoing: %+v", ongoing)
	}
	long, _ := f.c.List(ListFilter{MinDurationMs: 1000})
	if len(long) != 0 {
		t.Fatalf("list open >= 1s: %+v", long)
	}
	byPID, _ := f.c.List(ListFilter{ProducerIDs: []int64{p1}, MinDurationMs: 400})
	if len(byPID) != 1 {
		t.Fatalf("list by producer id: %+v", byPID)
	}
}

func TestPartitionForMatchesJava(t *testing.T) {
	// Java: Math.abs("my-txn".hashCode()) % 50 etc.
	for _, tc := range []struct {
		id   string
		want int32
	}{
		{"", 0},
		{"a", 97 % 50},
		{"my-transactional-id", javaHash("my-transactional-id") % 50},
		{"\U0001F600", javaHash("\U0001F600") % 50},
	} {
		if got := PartitionFor(tc.id, 50); got != tc.want {
			t.Errorf("PartitionFor(%q) = %d, want %d", tc.id, got, tc.want)
		}
	}
}

// javaHash is String.hashCode over UTF-16, then Utils.abs, written the
// slow way (utf16 package) to check PartitionFor's inline loop.
func javaHash(s string) int32 {
	var h int32
	for _, u := range utf16Encode(s) {
		h = 31*h + int32(u)
	}
	if h < 0 {
		h = -h
	}
	return h
}

func TestRecordRoundTrip(t *testing.T) {
	m := &txnMeta{id: "x", producerID: 7, lastProducerID: 3, epoch: 2, timeoutMs: 900, state: Ongoing,
		partitions: map[TopicPartition]struct{}{tpA: {}, tpB: {}, {"a", 1}: {}}, startTime: 10, lastUpdate: 20}
	id, got, err := decodeRecord(Record{Key: txnKey("x"), Value: txnValue(m)})
	if err != nil || id != "x" {
		t.Fatal(id, err)
	}
	if got.producerID != 7 || got.lastProducerID != 3 || got.epoch != 2 || got.timeoutMs != 900 || got.state != Ongoing ||
		len(got.partitions) != 3 || got.startTime != 10 || got.lastUpdate != 20 {
		t.Fatalf("round trip: %+v", got)
	}
	// Kafka's own version-0 values read too.
	v := kmsg.NewTxnMetadataValue()
	v.ProducerID, v.ProducerEpoch, v.State = 9, 1, kmsg.TransactionState(CompleteAbort)
	_, got, err = decodeRecord(Record{Key: txnKey("k"), Value: v.AppendTo(nil)})
	if err != nil || got.state != CompleteAbort || got.lastProducerID != -1 {
		t.Fatalf("v0 value: %+v %v", got, err)
	}
	if _, _, err := decodeRecord(Record{Key: []byte{0, 1}, Value: nil}); err == nil {
		t.Fatal("a bad key decoded")
	}
}

// TestAddWaitsForTheChangeInFlight: an AddPartitionsToTxn that arrives
// while the last transaction's markers are being written, or while
// another add of the same transaction is written, waits for it and is
// answered then, instead of CONCURRENT_TRANSACTIONS (which clients back
// off 20 ms or more on); past ConcurrentWait it is still that answer.
func TestAddWaitsForTheChangeInFlight(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.markers.block = make(chan struct{})
	f.markers.called = make(chan Markers, 1)
	pid, e, _ := f.init("t", -1, -1)
	wantCode(t, "add", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA}), 0)
	wantCode(t, "commit", f.c.EndTxn(ctx, 0, "t", pid, e, true), 0)
	<-f.markers.called
	added := make(chan int16, 1)
	go func() { added <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpB}) }()
	select {
	case code := <-added:
		t.Fatalf("the next transaction's add answered %s while the last one's markers were unwritten", codeName(code))
	case <-time.After(100 * time.Millisecond):
	}
	var appends [][]Record
	f.log.mu.Lock()
	f.log.appended = func(rs []Record) { appends = append(appends, rs) }
	f.log.mu.Unlock()
	close(f.markers.block)
	select {
	case code := <-added:
		wantCode(t, "add once the markers are written", code, 0)
	case <-time.After(eventually):
		t.Fatal("the waiting add was not answered after the markers were written")
	}
	if d := f.waitState("t", Ongoing); len(d.Partitions) != 1 || d.Partitions[0] != tpB {
		t.Fatalf("the next transaction holds %v, want [%v]", d.Partitions, tpB)
	}
	// The Complete record and the next transaction's start are one write,
	// in that order, and the log replays to the started transaction.
	f.log.mu.Lock()
	f.log.appended = nil
	got := appends
	f.log.mu.Unlock()
	if len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("writes after the markers: %d (%v), want one of two records", len(got), got)
	}
	for i, want := range []State{CompleteCommit, Ongoing} {
		if _, m, err := decodeRecord(got[0][i]); err != nil || m.state != want {
			t.Fatalf("record %d of the write: %+v, %v; want %v", i, m, err, want)
		}
	}
	f.restart(6)
	if d := f.waitState("t", Ongoing); len(d.Partitions) != 1 || d.Partitions[0] != tpB {
		t.Fatalf("after a reload the next transaction holds %v, want [%v]", d.Partitions, tpB)
	}

	// A write of the same transaction in flight: the log stalls the
	// first add; two more wait for it, and then one write adds both.
	f.log.mu.Lock()
	writes := len(f.log.records)
	first := make(chan int16, 1)
	go func() { first <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{{"c", 1}}) }()
	deadline := time.Now().Add(eventually)
	for {
		f.c.mu.Lock()
		sh := f.c.shards[0]
		f.c.mu.Unlock()
		sh.mu.Lock()
		pending := sh.txns["t"].pending
		sh.mu.Unlock()
		if pending != noState {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first add's write never started")
		}
		time.Sleep(time.Millisecond)
	}
	waiting := make(chan int16, 2)
	go func() { waiting <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{{"d", 2}}) }()
	go func() { waiting <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{{"e", 4}, tpB}) }()
	for deadline := time.Now().Add(eventually); ; {
		f.c.mu.Lock()
		sh := f.c.shards[0]
		f.c.mu.Unlock()
		sh.mu.Lock()
		queued := len(sh.txns["t"].queued)
		sh.mu.Unlock()
		if queued == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d partitions queued behind the first add, want 3", queued)
		}
		time.Sleep(time.Millisecond)
	}
	f.log.mu.Unlock()
	wantCode(t, "first add", <-first, 0)
	wantCode(t, "add after waiting", <-waiting, 0)
	wantCode(t, "add after waiting", <-waiting, 0)
	if d, _ := f.c.Describe(0, "t"); len(d.Partitions) != 4 {
		t.Fatalf("transaction holds %v, want b-3, c-1, d-2 and e-4", d.Partitions)
	}
	f.log.mu.Lock()
	if n := len(f.log.records) - writes; n != 2 {
		t.Errorf("three adds at once made %d writes, want 2", n)
	}
	f.log.mu.Unlock()

	// Past the bound, the answer is CONCURRENT_TRANSACTIONS as before.
	f.c.cfg.ConcurrentWait = 20 * time.Millisecond
	f.markers.mu.Lock()
	f.markers.block = make(chan struct{})
	f.markers.mu.Unlock()
	defer close(f.markers.block)
	wantCode(t, "commit", f.c.EndTxn(ctx, 0, "t", pid, e, true), 0)
	<-f.markers.called
	wantCode(t, "add while markers stall", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA}), kerr.ConcurrentTransactions.Code)
}

// TestAnsweredAddLeavesNothingQueued: an add that waited behind another
// add's write and is answered because a later write took its partitions
// leaves nothing in the queue. A partition left there rode into the next
// transaction: the Complete record of this one started a transaction the
// producer never began, with partitions it never added to it.
func TestAnsweredAddLeavesNothingQueued(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pid, e, _ := f.init("t", -1, -1)
	wantCode(t, "add", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA}), 0)
	f.c.mu.Lock()
	sh := f.c.shards[0]
	f.c.mu.Unlock()
	txnOf := func(look func(m *txnMeta) bool) bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return look(sh.txns["t"])
	}
	waitFor := func(what string, cond func(m *txnMeta) bool) {
		t.Helper()
		for deadline := time.Now().Add(eventually); !txnOf(cond); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, eventually)
			}
		}
	}

	// The first add's write stalls; two more queue behind it.
	f.log.mu.Lock()
	first := make(chan int16, 1)
	go func() { first <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{{"c", 1}}) }()
	waitFor("the first add's write started", func(m *txnMeta) bool { return m.pending == Ongoing })
	waiting := make(chan int16, 2)
	go func() { waiting <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{{"d", 2}}) }()
	go func() { waiting <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{{"e", 4}}) }()
	waitFor("two adds queued", func(m *txnMeta) bool { return len(m.queued) == 2 })
	// Both waiters wake when the first write ends; one writes both
	// partitions, and that write is held until the other has looked
	// and found a write in flight (it queues its partition again).
	var writes atomic.Int32
	f.log.appended = func([]Record) {
		if writes.Add(1) != 2 {
			return
		}
		for deadline := time.Now().Add(eventually); !txnOf(func(m *txnMeta) bool { return len(m.queued) > 0 }); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("the second waiter did not queue again within %v", eventually)
				return
			}
		}
	}
	f.log.mu.Unlock()
	wantCode(t, "first add", <-first, 0)
	wantCode(t, "add after waiting", <-waiting, 0)
	wantCode(t, "add after waiting", <-waiting, 0)
	f.log.mu.Lock()
	f.log.appended = nil
	f.log.mu.Unlock()
	if txnOf(func(m *txnMeta) bool { return len(m.queued) != 0 }) {
		t.Errorf("partitions still queued after every add was answered")
	}

	// The commit completes the transaction, and starts none.
	wantCode(t, "commit", f.c.EndTxn(ctx, 0, "t", pid, e, true), 0)
	waitFor("the commit's markers written", func(m *txnMeta) bool { return m.pending == noState })
	d, _ := f.c.Describe(0, "t")
	if d.State != CompleteCommit || len(d.Partitions) != 0 {
		t.Fatalf("after the commit: %v holding %v, want CompleteCommit holding none", d.State, d.Partitions)
	}
}

// TestAbortDropsAddsQueuedAtTheFencedEpoch: an add queued behind another
// add's write, whose waiter has not run again when a timeout abort (or an
// InitProducerId) aborts the transaction with an epoch bump. The queued
// partitions belong to the fenced epoch: the abort's Complete record must
// not start a transaction with them (one the producer never began, at an
// epoch it does not hold), and the waiter is answered PRODUCER_FENCED.
func TestAbortDropsAddsQueuedAtTheFencedEpoch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		abort func(f *fixture)
	}{
		{"timeout", func(f *fixture) { f.c.AbortTimedOut() }},
		{"init", func(f *fixture) {
			_, _, code := f.init("t", -1, -1)
			wantCode(f.t, "init during the transaction", code, kerr.ConcurrentTransactions.Code)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			// The waiter is held after it woke, before it takes the
			// shard's lock again.
			woke, hold := make(chan struct{}, 1), make(chan struct{})
			f.c.afterSettledWake = func() {
				select {
				case woke <- struct{}{}:
				default:
				}
				<-hold
			}
			released := false
			release := func() {
				if !released {
					released = true
					close(hold)
				}
			}
			t.Cleanup(release)
			pid, e, _ := f.init("t", -1, -1)
			wantCode(t, "add", f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{tpA}), 0)
			f.c.mu.Lock()
			sh := f.c.shards[0]
			f.c.mu.Unlock()
			waitFor := func(what string, cond func(m *txnMeta) bool) {
				t.Helper()
				for deadline := time.Now().Add(eventually); ; time.Sleep(time.Millisecond) {
					sh.mu.Lock()
					ok := cond(sh.txns["t"])
					sh.mu.Unlock()
					if ok {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: not within %v", what, eventually)
					}
				}
			}

			// The first add's write stalls; a second add queues behind it.
			f.log.mu.Lock()
			first := make(chan int16, 1)
			go func() { first <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{{"c", 1}}) }()
			waitFor("the first add's write started", func(m *txnMeta) bool { return m.pending == Ongoing })
			queued := make(chan int16, 1)
			go func() { queued <- f.c.AddPartitions(ctx, 0, "t", pid, e, []TopicPartition{{"d", 2}}) }()
			waitFor("the second add queued", func(m *txnMeta) bool { return len(m.queued) == 1 })
			f.now.Add(10_001) // past the transaction's timeout
			f.log.mu.Unlock()
			wantCode(t, "first add", <-first, 0)
			select {
			case <-woke:
			case <-time.After(eventually):
				t.Fatal("the queued add did not wake when the first write ended")
			}

			tc.abort(f)
			waitFor("the abort's markers written", func(m *txnMeta) bool { return m.pending == noState })
			d, _ := f.c.Describe(0, "t")
			if d.State != CompleteAbort || len(d.Partitions) != 0 || d.ProducerEpoch != e+1 {
				t.Fatalf("after the abort: %v holding %v at epoch %d, want CompleteAbort holding none at epoch %d",
					d.State, d.Partitions, d.ProducerEpoch, e+1)
			}
			release()
			wantCode(t, "the queued add, at the fenced epoch", <-queued, kerr.ProducerFenced.Code)
			sh.mu.Lock()
			left := len(sh.txns["t"].queued)
			sh.mu.Unlock()
			if left != 0 {
				t.Errorf("%d partitions still queued after every add was answered", left)
			}
			f.restart(6)
			if d := f.waitState("t", CompleteAbort); len(d.Partitions) != 0 || d.ProducerEpoch != e+1 {
				t.Fatalf("after a reload: %v holding %v at epoch %d", d.State, d.Partitions, d.ProducerEpoch)
			}
		})
	}
}

// stallingLog is a MemoryLog whose appends wait for release, or for
// their context to end; one whose context ended is reported on cut.
type stallingLog struct {
	*MemoryLog
	started chan struct{}
	release chan struct{}
	cut     chan error
}

func (l *stallingLog) Append(ctx context.Context, records []Record) error {
	select {
	case l.started <- struct{}{}:
	default:
	}
	select {
	case <-l.release:
	case <-ctx.Done():
	}
	// Looked at once released, so a cancellation before the release is
	// seen whichever case the select took.
	if err := ctx.Err(); err != nil {
		l.cut <- err
		return err
	}
	return l.MemoryLog.Append(ctx, records)
}

// TestExpiryWriteIsNotCutByStop: an id's tombstone goes through the
// shard's one write path, as its other writes do: a write in flight when
// the shard stops (its leadership moved) is waited for, not cancelled
// half-way, which would leave it unknown whether it was appended.
func TestExpiryWriteIsNotCutByStop(t *testing.T) {
	f := newFixture(t)
	_, _, code := f.init("idle", -1, -1)
	wantCode(t, "init", code, 0)
	log := &stallingLog{MemoryLog: f.log, started: make(chan struct{}, 1), release: make(chan struct{}), cut: make(chan error, 1)}
	f.c.Load(0, 6, log)
	f.waitReady()
	f.now.Add(time.Hour.Milliseconds())
	expired := make(chan struct{})
	go func() {
		defer close(expired)
		f.c.ExpireIDs()
	}()
	select {
	case <-log.started:
	case <-time.After(eventually):
		t.Fatal("the tombstone's write did not start")
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		f.c.Unload(0)
	}()
	<-stopped
	close(log.release)
	<-expired
	select {
	case err := <-log.cut:
		t.Fatalf("the tombstone's write was cancelled by the stop: %v", err)
	default:
	}
	recs := f.log.Records()
	if last := recs[len(recs)-1]; last.Value != nil {
		t.Fatalf("last record %v, want the tombstone of the idle id", last)
	}
}
