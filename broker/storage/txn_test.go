package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// txnClient drives one transactional producer against a partition the way
// the broker will: StartTxnVerification before the first batch of each
// transaction here, the guard passed to the append.
type txnClient struct {
	t     testing.TB
	p     *Partition
	pid   int64
	epoch int16
	seq   int32
}

func (c *txnClient) sendErr(n int) (AppendResult, error) {
	c.t.Helper()
	guard := c.p.StartTxnVerification(c.pid, c.epoch, c.seq)
	b := makeBatch(c.t, batchSpec{records: n, valueSize: 10, producerID: c.pid, producerEpoch: c.epoch, baseSequence: c.seq, transactional: true})
	res, err := c.p.Append(context.Background(), b, AppendOptions{VerificationGuard: guard})
	if err == nil {
		c.seq += int32(n)
	}
	return res, err
}

func (c *txnClient) send(n int) AppendResult {
	c.t.Helper()
	res, err := c.sendErr(n)
	if err != nil {
		c.t.Fatalf("producer %d: transactional append: %v", c.pid, err)
	}
	return res
}

func (c *txnClient) end(commit bool, coordinatorEpoch int32) AppendResult {
	c.t.Helper()
	res, err := c.p.AppendTxnMarker(context.Background(), TxnMarker{ProducerID: c.pid, ProducerEpoch: c.epoch, CoordinatorEpoch: coordinatorEpoch, Commit: commit}, AppendOptions{})
	if err != nil {
		c.t.Fatalf("producer %d: marker: %v", c.pid, err)
	}
	return res
}

func TestTransactionalAppendRules(t *testing.T) {
	st := openStore(t, memTempDir(t), Options{})
	p := mustCreate(t, st, "rules", 0, TopicConfig{})
	txnBatch := func(pid int64, epoch int16, seq int32) []byte {
		return makeBatch(t, batchSpec{records: 2, producerID: pid, producerEpoch: epoch, baseSequence: seq, transactional: true})
	}
	ctx := context.Background()

	// Without a verification guard a transactional batch starts nothing.
	if _, err := p.Append(ctx, txnBatch(1, 0, 0), AppendOptions{}); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("unverified transactional batch: err %v, want ErrInvalidTxnState", err)
	}
	// A made-up guard is no better.
	if _, err := p.Append(ctx, txnBatch(1, 0, 0), AppendOptions{VerificationGuard: 987654}); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("transactional batch with a foreign guard: err %v, want ErrInvalidTxnState", err)
	}
	// A transactional batch needs a producer id.
	noPID := makeBatch(t, batchSpec{records: 1, transactional: true})
	if _, err := p.Append(ctx, noPID, AppendOptions{}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("transactional batch without producer id: err %v, want ErrInvalidRecord", err)
	}
	if p.LogEndOffset() != 0 {
		t.Fatalf("refused batches wrote to the log: end %d", p.LogEndOffset())
	}

	// Verified, the first batch starts the transaction; the next ones of
	// the same transaction need no guard.
	g := p.StartTxnVerification(1, 0, 0)
	if g == 0 {
		t.Fatal("no guard for a producer with no transaction here")
	}
	if p.StartTxnVerification(1, 0, 0) != g {
		t.Fatal("a second verification of the same producer got another guard")
	}
	if _, err := p.Append(ctx, txnBatch(1, 0, 0), AppendOptions{VerificationGuard: g}); err != nil {
		t.Fatalf("verified first batch: %v", err)
	}
	if got := p.StartTxnVerification(1, 0, 2); got != 0 {
		t.Fatalf("verification of a producer in a transaction here: guard %d, want 0", got)
	}
	if _, err := p.Append(ctx, txnBatch(1, 0, 2), AppendOptions{}); err != nil {
		t.Fatalf("second batch of the transaction: %v", err)
	}
	// Resent, it is a duplicate, as for idempotent producers.
	if res, err := p.Append(ctx, txnBatch(1, 0, 2), AppendOptions{}); err != nil || !res.Duplicate || res.BaseOffset != 2 {
		t.Fatalf("resent transactional batch: %+v, %v; want duplicate at 2", res, err)
	}
	// A non-transactional batch in the middle of the transaction.
	plain := makeBatch(t, batchSpec{records: 1, producerID: 1, producerEpoch: 0, baseSequence: 4})
	if _, err := p.Append(ctx, plain, AppendOptions{}); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("non-transactional batch during a transaction: err %v, want ErrInvalidTxnState", err)
	}

	// Markers: coordinator epoch 3 ends it.
	res, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 3, Commit: true}, AppendOptions{})
	if err != nil || res.BaseOffset != 4 {
		t.Fatalf("commit marker: %+v, %v; want offset 4", res, err)
	}
	// A marker from an older coordinator is a zombie's.
	if _, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 2, Commit: false}, AppendOptions{}); !errors.Is(err, ErrTransactionCoordinatorFenced) {
		t.Fatalf("marker from coordinator epoch 2 after 3: err %v, want ErrTransactionCoordinatorFenced", err)
	}
	// The coordinator aborts on timeout with a bumped producer epoch: the
	// old epoch's writes are fenced from then on, data and markers.
	if _, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: 1, ProducerEpoch: 1, CoordinatorEpoch: 3, Commit: false}, AppendOptions{}); err != nil {
		t.Fatalf("abort with a bumped epoch: %v", err)
	}
	g = p.StartTxnVerification(1, 0, 4)
	if _, err := p.Append(ctx, txnBatch(1, 0, 4), AppendOptions{VerificationGuard: g}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("transactional batch from the fenced epoch: err %v, want ErrInvalidProducerEpoch", err)
	}
	if _, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 3, Commit: true}, AppendOptions{}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("marker for the fenced epoch: err %v, want ErrInvalidProducerEpoch", err)
	}
	// The new epoch starts at sequence 0.
	g = p.StartTxnVerification(1, 1, 0)
	if _, err := p.Append(ctx, txnBatch(1, 1, 0), AppendOptions{VerificationGuard: g}); err != nil {
		t.Fatalf("first batch of the new epoch: %v", err)
	}
	if p.LogEndOffset() != 8 {
		t.Fatalf("log end %d, want 8", p.LogEndOffset())
	}
	if _, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: -1, ProducerEpoch: 0}, AppendOptions{}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("marker without producer id: err %v, want ErrInvalidRecord", err)
	}
}

// TestVerificationGuardClearedByMarker is KIP-890's race: the leader
// verifies a produce with the coordinator, the transaction is aborted
// (marker) before the produce is appended, and the late produce must not
// start a transaction that nobody will ever end.
func TestVerificationGuardClearedByMarker(t *testing.T) {
	st := openStore(t, memTempDir(t), Options{})
	p := mustCreate(t, st, "race", 0, TopicConfig{})
	ctx := context.Background()
	g := p.StartTxnVerification(7, 0, 0)
	if _, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: 7, ProducerEpoch: 0, CoordinatorEpoch: 1}, AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	late := makeBatch(t, batchSpec{records: 1, producerID: 7, producerEpoch: 0, baseSequence: 0, transactional: true})
	if _, err := p.Append(ctx, late, AppendOptions{VerificationGuard: g}); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("produce verified before the abort marker: err %v, want ErrInvalidTxnState", err)
	}
	if got := p.OngoingTransactions(); len(got) != 0 {
		t.Fatalf("hanging transaction: %+v", got)
	}
	// Verification is per producer; a batch verified after the marker goes.
	g2 := p.StartTxnVerification(7, 0, 0)
	if g2 == g || g2 == 0 {
		t.Fatalf("new verification guard %d (old %d)", g2, g)
	}
	if _, err := p.Append(ctx, late, AppendOptions{VerificationGuard: g2}); err != nil {
		t.Fatal(err)
	}
	// A batch with a higher sequence cannot start the transaction before
	// the one verified first, even where the producer has no sequence
	// history (its epoch was just bumped by an abort).
	if _, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: 8, ProducerEpoch: 1, CoordinatorEpoch: 1}, AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	g3 := p.StartTxnVerification(8, 1, 0)
	if p.StartTxnVerification(8, 1, 5) != g3 {
		t.Fatal("concurrent verifications of one producer got different guards")
	}
	if _, err := p.Append(ctx, makeBatch(t, batchSpec{records: 1, producerID: 8, producerEpoch: 1, baseSequence: 5, transactional: true}), AppendOptions{VerificationGuard: g3}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("later batch first: err %v, want ErrOutOfOrderSequence", err)
	}
	if _, err := p.Append(ctx, makeBatch(t, batchSpec{records: 1, producerID: 8, producerEpoch: 1, baseSequence: 0, transactional: true}), AppendOptions{VerificationGuard: g3}); err != nil {
		t.Fatalf("the batch verified first: %v", err)
	}
}

// A verification a replica started while it led, whose append never came
// (it lost the leadership first), ends with the transaction's marker
// replicated to it: when it leads again, the producer's next transaction
// starts with its own sequence, not against the stale entry's lower one.
func TestStaleVerificationEndsWithReplicatedMarker(t *testing.T) {
	st := openStore(t, memTempDir(t), Options{FlushPolicy: FlushNone})
	ctx := context.Background()
	p := mustCreate(t, st, "p", 0, TopicConfig{})
	other := mustCreate(t, st, "other", 0, TopicConfig{})
	stale := p.StartTxnVerification(5, 0, 0)
	// The transaction went to the other leader, and was committed there.
	c := &txnClient{t: t, p: other, pid: 5}
	c.send(3)
	c.end(true, 0)
	data, err := other.Read(0, 1<<20, other.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendAsFollower(ctx, data); err != nil {
		t.Fatal(err)
	}
	// p leads again; the producer's next transaction starts at sequence 3.
	g := p.StartTxnVerification(5, 0, 3)
	if g == stale {
		t.Fatalf("the guard of the verification that never appended (%d) is still in force", stale)
	}
	b := makeBatch(t, batchSpec{records: 1, producerID: 5, producerEpoch: 0, baseSequence: 3, transactional: true})
	if _, err := p.Append(ctx, b, AppendOptions{VerificationGuard: g}); err != nil {
		t.Fatalf("the next transaction's first batch: %v", err)
	}
}

func TestLastStableOffsetFollowsMarkersAndHighWatermark(t *testing.T) {
	st := openStore(t, memTempDir(t), Options{FlushPolicy: FlushNone})
	p := mustCreate(t, st, "lso", 0, TopicConfig{})
	a := &txnClient{t: t, p: p, pid: 10}
	b := &txnClient{t: t, p: p, pid: 20}
	mustAppend(t, p, makeBatch(t, batchSpec{records: 2})) // 0-1
	if got := p.LastStableOffset(); got != 2 {
		t.Fatalf("no transactions: LSO %d, want the high watermark 2", got)
	}
	a.send(2)                                             // 2-3
	b.send(1)                                             // 4
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1})) // 5
	if got := p.LastStableOffset(); got != 2 {
		t.Fatalf("two open transactions from 2: LSO %d, want 2", got)
	}
	a.end(true, 0) // marker at 6
	if got := p.LastStableOffset(); got != 4 {
		t.Fatalf("a committed, b open from 4: LSO %d, want 4", got)
	}
	b.end(false, 0) // 7
	if got, hw := p.LastStableOffset(), p.HighWatermark(); got != 8 || hw != 8 {
		t.Fatalf("all decided: LSO %d, HW %d; want 8", got, hw)
	}
	// With replication, a marker the high watermark has not passed still
	// holds the LSO at its transaction's start: a failover could take the
	// marker back.
	p.SetHighWatermark(8)
	a.send(1) // 8
	a.end(false, 0)
	if got := p.LastStableOffset(); got != 8 {
		t.Fatalf("marker at 9 above the high watermark 8: LSO %d, want 8", got)
	}
	p.SetHighWatermark(9)
	if got := p.LastStableOffset(); got != 8 {
		t.Fatalf("marker at 9, high watermark 9: LSO %d, want 8", got)
	}
	p.SetHighWatermark(10)
	if got := p.LastStableOffset(); got != 10 {
		t.Fatalf("marker below the high watermark: LSO %d, want 10", got)
	}
	want := []AbortedTxn{{ProducerID: 20, FirstOffset: 4, LastOffset: 7, LastStableOffset: 8}, {ProducerID: 10, FirstOffset: 8, LastOffset: 9, LastStableOffset: 10}}
	if got := p.AbortedTransactions(0, 10); !reflect.DeepEqual(got, want) {
		t.Fatalf("aborted transactions %+v, want %+v", got, want)
	}
}

func TestReadCommitted(t *testing.T) {
	st := openStore(t, memTempDir(t), Options{FlushPolicy: FlushNone})
	p := mustCreate(t, st, "rc", 0, TopicConfig{})
	a := &txnClient{t: t, p: p, pid: 1}
	b := &txnClient{t: t, p: p, pid: 2}
	a.send(3)                                             // 0-2 aborted below
	b.send(2)                                             // 3-4 committed below
	a.end(false, 0)                                       // 5
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1})) // 6
	b.end(true, 0)                                        // 7
	b.send(1)                                             // 8, open

	unc, err := p.ReadIsolated(0, 1<<20, ReadUncommitted)
	if err != nil {
		t.Fatal(err)
	}
	if unc.HighWatermark != 9 || unc.LastStableOffset != 8 || unc.AbortedTransactions != nil {
		t.Fatalf("read_uncommitted: %+v", unc)
	}
	if last := lastOffsetIn(t, unc.Records); last != 8 {
		t.Fatalf("read_uncommitted stops at %d, want 8 (the high watermark)", last)
	}
	rc, err := p.ReadIsolated(0, 1<<20, ReadCommitted)
	if err != nil {
		t.Fatal(err)
	}
	if last := lastOffsetIn(t, rc.Records); last != 7 {
		t.Fatalf("read_committed stops at %d, want 7 (below the LSO 8)", last)
	}
	want := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 5, LastStableOffset: 3}}
	if !reflect.DeepEqual(rc.AbortedTransactions, want) {
		t.Fatalf("aborted transactions %+v, want %+v", rc.AbortedTransactions, want)
	}
	// A fetch past the aborted transaction lists nothing.
	rc, err = p.ReadIsolated(6, 1<<20, ReadCommitted)
	if err != nil || len(rc.AbortedTransactions) != 0 || lastOffsetIn(t, rc.Records) != 7 {
		t.Fatalf("fetch from 6: %+v, %v", rc, err)
	}
	// At the LSO there is nothing to read yet, and the waiter waits.
	rc, err = p.ReadIsolated(8, 1<<20, ReadCommitted)
	if err != nil || len(rc.Records) != 0 {
		t.Fatalf("fetch at the LSO: %d bytes, %v", len(rc.Records), err)
	}
	ch := p.WaitIsolated(context.Background(), 8, ReadCommitted)
	select {
	case <-ch:
		t.Fatal("read_committed wait at the LSO returned before the LSO moved")
	default:
	}
	if c := p.WaitIsolated(context.Background(), 8, ReadUncommitted); !isClosed(c) {
		t.Fatal("read_uncommitted wait below the high watermark did not return at once")
	}
	b.end(true, 0) // 9
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("read_committed wait not woken by the commit")
	}
	// ListOffsets.
	for _, tc := range []struct {
		ts        int64
		isolation Isolation
		want      int64
	}{
		{-1, ReadCommitted, 10},
		{-1, ReadUncommitted, 10},
		{-2, ReadCommitted, 0},
	} {
		if got, _, err := p.ListOffset(tc.ts, tc.isolation); err != nil || got != tc.want {
			t.Fatalf("ListOffset(%d, %d) = %d, %v; want %d", tc.ts, tc.isolation, got, err, tc.want)
		}
	}
	a.send(1) // 10, open
	if got, _, _ := p.ListOffset(-1, ReadCommitted); got != 10 {
		t.Fatalf("latest read_committed with a transaction open at 10: %d", got)
	}
	if got, _, _ := p.ListOffset(-1, ReadUncommitted); got != 11 {
		t.Fatalf("latest read_uncommitted: %d, want 11", got)
	}
	// A timestamp lookup answers only below the limit.
	if got, _, _ := p.ListOffset(1_700_000_000_000, ReadCommitted); got != 0 {
		t.Fatalf("timestamp lookup read_committed: %d, want 0", got)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func lastOffsetIn(t testing.TB, b []byte) int64 {
	t.Helper()
	last := int64(-1)
	for len(b) > 0 {
		h, err := recordbatch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		last = h.LastOffset()
		b = b[h.Size():]
	}
	return last
}

// txnView is everything the partition says about transactions, for
// comparing two replicas or a partition before and after a restart.
type txnView struct {
	LEO, LSO  int64
	Ongoing   []OngoingTxn
	Aborted   []AbortedTxn
	Producers []ProducerState
}

func viewOf(p *Partition) txnView {
	v := txnView{LEO: p.LogEndOffset(), LSO: p.LastStableOffset(), Ongoing: p.OngoingTransactions(),
		Aborted: p.AbortedTransactions(p.LogStartOffset(), p.LogEndOffset()), Producers: p.Producers()}
	for i := range v.Ongoing {
		v.Ongoing[i].StartTime = 0 // the clock of the replica that appended
	}
	return v
}

func TestFollowerRebuildsTransactionState(t *testing.T) {
	st := openStore(t, memTempDir(t), Options{FlushPolicy: FlushNone})
	leader := mustCreate(t, st, "leader", 0, TopicConfig{SegmentBytes: 500})
	follower := mustCreate(t, st, "follower", 0, TopicConfig{SegmentBytes: 500})
	a := &txnClient{t: t, p: leader, pid: 1}
	b := &txnClient{t: t, p: leader, pid: 2}
	copyLog := func() {
		t.Helper()
		from := follower.LogEndOffset()
		data, err := leader.Read(from, 1<<20, leader.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 {
			if err := follower.AppendAsFollower(context.Background(), data); err != nil {
				t.Fatal(err)
			}
		}
	}
	for round := 0; round < 4; round++ {
		a.send(2)
		b.send(1)
		copyLog()
		a.end(round%2 == 0, int32(round))
		mustAppend(t, leader, makeBatch(t, batchSpec{records: 1, valueSize: 100}))
		copyLog()
		b.end(round%3 == 0, int32(round))
	}
	b.send(1)
	copyLog()
	lv, fv := viewOf(leader), viewOf(follower)
	if !reflect.DeepEqual(lv, fv) {
		t.Fatalf("follower's transaction state differs from the leader's:\nleader   %+v\nfollower %+v", lv, fv)
	}
	if len(lv.Aborted) == 0 || len(lv.Ongoing) != 1 {
		t.Fatalf("test did not exercise aborts and an open transaction: %+v", lv)
	}
	// The follower can lead: the fencing state came with the bytes.
	if _, err := follower.AppendTxnMarker(context.Background(), TxnMarker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 1}, AppendOptions{}); !errors.Is(err, ErrTransactionCoordinatorFenced) {
		t.Fatalf("follower taking a marker from an old coordinator: err %v", err)
	}
}

// TestTruncateToRebuildsProducerState settles the question docs/broker-
// cluster.md left open: after TruncateTo, a producer's retry of a batch that
// was cut must be appended again, never answered as a duplicate with
// offsets that now hold other data. The snapshot case is the one the
// earlier code got wrong: a snapshot taken after data that a truncation
// then cut was still used by a later truncation (or a restart) once the
// log had grown past it again with different data.
func TestTruncateToRebuildsProducerState(t *testing.T) {
	for _, tc := range []struct {
		name string
		// restart instead of a second TruncateTo (crash, no checkpoint)
		crash bool
	}{
		{"second truncation", false},
		{"crash after the log grew back", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := memTempDir(t)
			st := openStore(t, dir, Options{FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
			p := mustCreate(t, st, "tt", 0, TopicConfig{SegmentBytes: 300})
			ctx := context.Background()
			for i := 0; i < 10; i++ { // producer 5: offsets 0-19
				mustAppend(t, p, makeBatch(t, batchSpec{records: 2, producerID: 5, producerEpoch: 0, baseSequence: int32(2 * i)}))
			}
			if err := p.checkpoint(); err != nil { // snapshot at 20
				t.Fatal(err)
			}
			// Leader change: this replica's 10-19 were never committed.
			if err := p.TruncateTo(10); err != nil {
				t.Fatal(err)
			}
			// The new leader's log has producer 6's data there.
			var leaderBytes []byte
			for i := 0; i < 8; i++ {
				b := makeBatch(t, batchSpec{records: 2, producerID: 6, producerEpoch: 0, baseSequence: int32(2 * i)})
				recordbatch.SetBaseOffset(b, int64(10+2*i))
				leaderBytes = append(leaderBytes, b...)
			}
			if err := p.AppendAsFollower(ctx, leaderBytes); err != nil { // 10-25
				t.Fatal(err)
			}
			if tc.crash {
				crashed := crashCopy(t, dir)
				st2 := openStore(t, crashed, Options{FlushPolicy: FlushNone})
				p, _ = st2.Partition("tt", 0)
			} else if err := p.TruncateTo(24); err != nil {
				t.Fatal(err)
			}
			// Producer 5 retries its batch 10-11 (sequence 10): it is not in
			// the log, so it must be written, not taken for a duplicate.
			res, err := p.Append(ctx, makeBatch(t, batchSpec{records: 2, producerID: 5, producerEpoch: 0, baseSequence: 10}), AppendOptions{})
			if err != nil {
				t.Fatalf("retry of a cut batch: %v", err)
			}
			if res.Duplicate {
				t.Fatalf("retry of a cut batch answered as a duplicate at %d-%d, offsets that hold producer 6's data", res.BaseOffset, res.LastOffset)
			}
			// Producer 6's batches in the log are duplicates if resent.
			res, err = p.Append(ctx, makeBatch(t, batchSpec{records: 2, producerID: 6, producerEpoch: 0, baseSequence: 8}), AppendOptions{})
			if err != nil || !res.Duplicate || res.BaseOffset != 18 {
				t.Fatalf("resend of producer 6's batch at 18: %+v, %v", res, err)
			}
		})
	}
}

// TestTruncateTransactions: truncation inside and across segments puts
// producer state, ongoing transactions, the LSO and the aborted index back
// as they were when the log ended there.
func TestTruncateTransactions(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
	p := mustCreate(t, st, "tx", 0, TopicConfig{SegmentBytes: 400})
	clients := []*txnClient{{t: t, p: p, pid: 1}, {t: t, p: p, pid: 2}, {t: t, p: p, pid: 3}}
	views := map[int64]txnView{} // log end -> view then
	views[0] = viewOf(p)
	step := 0
	for round := 0; round < 6; round++ {
		for i, c := range clients {
			c.send(1 + i)
			views[p.LogEndOffset()] = viewOf(p)
			if (round+i)%2 == 0 {
				c.end((round+i)%4 == 0, int32(round))
				views[p.LogEndOffset()] = viewOf(p)
			}
			step++
			if step == 7 {
				if err := p.checkpoint(); err != nil { // a snapshot mid-way
					t.Fatal(err)
				}
			}
		}
	}
	if len(p.segments) < 4 {
		t.Fatalf("test wants several segments, has %d", len(p.segments))
	}
	var ends []int64
	for end := range views {
		ends = append(ends, end)
	}
	// Truncate from the end down, checking every batch boundary.
	for end := p.LogEndOffset(); end > 0; {
		prev := int64(-1)
		for _, e := range ends {
			if e < end && e > prev {
				prev = e
			}
		}
		if err := p.TruncateTo(prev); err != nil {
			t.Fatal(err)
		}
		if got, want := viewOf(p), views[prev]; !reflect.DeepEqual(got, want) {
			t.Fatalf("after TruncateTo(%d):\ngot  %+v\nwant %+v", prev, got, want)
		}
		// The index files agree with memory.
		for _, s := range p.segments {
			ix, err := loadTxnIndex(s.txnIndexPath(), s.base, max(s.next, s.base+1), false)
			if err != nil || len(ix.entries) != len(s.txn.entries) {
				t.Fatalf("after TruncateTo(%d): %s holds %d entries (%v), memory %d", prev, s.txnIndexPath(), len(ix.entries), err, len(s.txn.entries))
			}
		}
		end = prev
		if end == 0 {
			break
		}
		if end < 40 {
			// Also as after a crash: the state must come back the same.
			crashed := crashCopy(t, dir)
			st2, err := Open(crashed, Options{Logger: quietLogger(), FlushPolicy: FlushNone})
			if err != nil {
				t.Fatal(err)
			}
			p2, _ := st2.Partition("tx", 0)
			if got, want := viewOf(p2), views[prev]; !reflect.DeepEqual(got, want) {
				t.Fatalf("restart after TruncateTo(%d):\ngot  %+v\nwant %+v", prev, got, want)
			}
			st2.Close()
		}
	}
}

func TestTransactionStateSurvivesRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := map[bool]string{false: "clean", true: "kill -9"}[crash]
		t.Run(name, func(t *testing.T) {
			dir := memTempDir(t)
			st := openStore(t, dir, Options{FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
			p := mustCreate(t, st, "rs", 0, TopicConfig{SegmentBytes: 300})
			a, b := &txnClient{t: t, p: p, pid: 1}, &txnClient{t: t, p: p, pid: 2}
			for i := 0; i < 5; i++ {
				a.send(2)
				b.send(1)
				a.end(i%2 == 0, 4)
				if i == 2 {
					if err := p.checkpoint(); err != nil {
						t.Fatal(err)
					}
				}
			}
			b.end(false, 4)
			b.send(1)
			want := viewOf(p)
			wantStart := p.OngoingTransactions()[0].StartTime
			var d string
			if crash {
				d = crashCopy(t, dir)
			} else {
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				d = dir
			}
			st2 := openStore(t, d, Options{FlushPolicy: FlushNone})
			p2, _ := st2.Partition("rs", 0)
			if got := viewOf(p2); !reflect.DeepEqual(got, want) {
				t.Fatalf("after restart:\ngot  %+v\nwant %+v", got, want)
			}
			if !crash && p2.OngoingTransactions()[0].StartTime != wantStart {
				t.Fatalf("ongoing transaction's start time %d after a clean restart, want %d", p2.OngoingTransactions()[0].StartTime, wantStart)
			}
			// Fencing state survives: an old coordinator's marker is refused.
			if _, err := p2.AppendTxnMarker(context.Background(), TxnMarker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 3}, AppendOptions{}); !errors.Is(err, ErrTransactionCoordinatorFenced) {
				t.Fatalf("marker from coordinator epoch 3 after restart: err %v", err)
			}
		})
	}
}

// TestProducerStateSnapshotV0 reads a snapshot written before transactions
// existed (version 0), as an upgraded broker finds it.
func TestProducerStateSnapshotV0(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "v0", 0, TopicConfig{})
	mustAppend(t, p, makeBatch(t, batchSpec{records: 3, producerID: 9, producerEpoch: 2, baseSequence: 0}))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// The version 0 layout, by hand: magic, version, offset, count, then
	// id, epoch, last append, batch count, batches; CRC.
	var b []byte
	b = append(b, "TRPS"...)
	b = append(b, 0, 0)
	b = appendBE(b, 3, 8)
	b = appendBE(b, 1, 4)
	b = appendBE(b, 9, 8)
	b = appendBE(b, 2, 2)
	b = appendBE(b, time.Now().UnixMilli(), 8)
	b = append(b, 1)
	b = appendBE(b, 0, 4)
	b = appendBE(b, 2, 4)
	b = appendBE(b, 0, 8)
	b = appendBE(b, 2, 8)
	b = appendBE(b, int64(crc32c(b)), 4)
	if err := os.WriteFile(filepath.Join(dir, "v0-0", producerStateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	ps, off, err := decodeProducerStates(b)
	if err != nil || off != 3 || ps.m[9] == nil || ps.m[9].epoch != 2 || ps.m[9].txnFirstOffset != -1 || ps.m[9].coordinatorEpoch != -1 {
		t.Fatalf("decoding v0: %v, offset %d, %+v", err, off, ps.m[9])
	}
	st2 := openStore(t, dir, Options{})
	p2, _ := st2.Partition("v0", 0)
	res, err := p2.Append(context.Background(), makeBatch(t, batchSpec{records: 3, producerID: 9, producerEpoch: 2, baseSequence: 0}), AppendOptions{})
	if err != nil || !res.Duplicate {
		t.Fatalf("resend after loading a v0 snapshot: %+v, %v; want a duplicate", res, err)
	}
	// The next checkpoint after a change writes version 1.
	mustAppend(t, p2, makeBatch(t, batchSpec{records: 1, producerID: 9, producerEpoch: 2, baseSequence: 3}))
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
	nb, err := os.ReadFile(filepath.Join(dir, "v0-0", producerStateFile))
	if err != nil || nb[5] != snapshotVersion {
		t.Fatalf("snapshot after restart: version %d, %v", nb[5], err)
	}
}

func appendBE(b []byte, v int64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(uint64(v)>>(8*i)))
	}
	return b
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func TestProducersAndOngoingTransactions(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_800_000_000_000)}
	st := openStore(t, memTempDir(t), Options{Now: clock.Now, FlushPolicy: FlushNone})
	p := mustCreate(t, st, "dp", 0, TopicConfig{})
	mustAppend(t, p, makeBatch(t, batchSpec{records: 2, producerID: 3, producerEpoch: 1, baseSequence: 0}))
	a := &txnClient{t: t, p: p, pid: 4, epoch: 2}
	a.send(3)
	clock.now = clock.now.Add(time.Minute)
	a.send(1)
	want := []ProducerState{
		{ProducerID: 3, ProducerEpoch: 1, LastSequence: 1, LastTimestamp: 1_700_000_000_001, CoordinatorEpoch: -1, CurrentTxnStartOffset: -1},
		{ProducerID: 4, ProducerEpoch: 2, LastSequence: 3, LastTimestamp: 1_700_000_000_000, CoordinatorEpoch: -1, CurrentTxnStartOffset: 2},
	}
	if got := p.Producers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Producers:\ngot  %+v\nwant %+v", got, want)
	}
	wantTxn := []OngoingTxn{{ProducerID: 4, ProducerEpoch: 2, FirstOffset: 2, StartTime: 1_800_000_000_000}}
	if got := p.OngoingTransactions(); !reflect.DeepEqual(got, wantTxn) {
		t.Fatalf("OngoingTransactions: %+v, want %+v", got, wantTxn)
	}
	// An ongoing transaction keeps its producer past producer.id.expiration.ms.
	clock.now = clock.now.Add(48 * time.Hour)
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1}))
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	got := p.Producers()
	if len(got) != 1 || got[0].ProducerID != 4 {
		t.Fatalf("after expiry: %+v; want only the producer with an open transaction", got)
	}
}

// TestCompactionOfTransactions follows Kafka's cleaner rules: aborted
// records go (and map no key, so they never hide a committed record of the
// same key), a marker stays while any batch of its transaction does and
// then delete.retention.ms more, an ABORT marker's index entry stays with
// it, and producers' last batches stay.
func TestCompactionOfTransactions(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	dir := memTempDir(t)
	st := openStore(t, dir, Options{Now: clock.Now, FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
	p := mustCreate(t, st, "ctx", 0, TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 200, DeleteRetentionMs: time.Hour, MinCleanableDirtyRatio: 0.01})
	ctx := context.Background()
	send := func(pid int64, seq *int32, key, value string) {
		t.Helper()
		g := p.StartTxnVerification(pid, 0, *seq)
		b := makeBatch(t, batchSpec{records: 1, keys: []string{key}, values: [][]byte{[]byte(value)}, producerID: pid, producerEpoch: 0, baseSequence: *seq, transactional: true})
		if _, err := p.Append(ctx, b, AppendOptions{VerificationGuard: g}); err != nil {
			t.Fatal(err)
		}
		*seq++
	}
	end := func(pid int64, commit bool) int64 {
		t.Helper()
		res, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: pid, Commit: commit}, AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.BaseOffset
	}
	var seqA, seqB int32
	send(2, &seqB, "a", "b-committed") // 0
	commitB := end(2, true)            // 1
	send(1, &seqA, "a", "a-aborted")   // 2: later than b's "a", but aborted
	send(1, &seqA, "x", "a-aborted-x") // 3
	abortA := end(1, false)            // 4
	send(1, &seqA, "y", "a-last")      // 5: producer 1's last batch
	end(1, true)                       // 6
	send(2, &seqB, "z", "b-last")      // 7
	end(2, true)                       // 8
	for i := 0; i < 4; i++ {           // roll past all of it
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{fmt.Sprintf("f%d", i)}, valueSize: 150}))
	}
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	wantVisible := map[string]bool{"b-committed": true, "a-last": true, "b-last": true}
	check := func(stage string, wantMarkers map[int64]bool, wantAborted int) {
		t.Helper()
		if got := committedValues(t, p); !reflect.DeepEqual(got, wantVisible) {
			t.Fatalf("%s: read_committed sees %v, want %v", stage, got, wantVisible)
		}
		markers := map[int64]bool{}
		for _, h := range readAll(t, p, 0, p.HighWatermark()) {
			if h.IsControl() {
				markers[h.BaseOffset] = true
			}
		}
		for off, want := range wantMarkers {
			if markers[off] != want {
				t.Fatalf("%s: marker at %d present %v, want %v (markers %v)", stage, off, markers[off], want, markers)
			}
		}
		if got := p.AbortedTransactions(0, p.LogEndOffset()); len(got) != wantAborted {
			t.Fatalf("%s: aborted index %+v, want %d entries", stage, got, wantAborted)
		}
		checkTxnIndexFiles(t, p)
	}
	check("before compaction", map[int64]bool{commitB: true, abortA: true}, 1)
	// The aborted records go; the marker stays, now with a horizon.
	st.RunCleaner(ctx)
	for _, h := range readAll(t, p, 0, p.HighWatermark()) {
		if !h.IsControl() && h.ProducerID == 1 && h.BaseOffset < abortA {
			t.Fatalf("aborted batch at %d survived compaction (%d records)", h.BaseOffset, h.RecordCount)
		}
	}
	check("first pass", map[int64]bool{commitB: true, abortA: true}, 1)
	// b's committed "a" is superseded by a plain record; its marker then
	// has no transaction data left either.
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"a"}, values: [][]byte{[]byte("plain-a")}}))
	for i := 4; i < 7; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{fmt.Sprintf("f%d", i)}, valueSize: 150}))
	}
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	st.RunCleaner(ctx)
	delete(wantVisible, "b-committed")
	check("second pass, before the horizon", map[int64]bool{commitB: true, abortA: true}, 1)
	clock.now = clock.now.Add(2 * time.Hour)
	st.RunCleaner(ctx)
	check("past the horizon", map[int64]bool{commitB: false, abortA: false}, 0)
	// The producers' last batches and markers stay: their state rebuilds
	// from the log alone.
	crashed := crashCopy(t, dir)
	if err := os.Remove(filepath.Join(crashed, "ctx-0", producerStateFile)); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, crashed, Options{Now: clock.Now, FlushPolicy: FlushNone})
	p2, _ := st2.Partition("ctx", 0)
	if got, want := viewOf(p2), viewOf(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("state rebuilt from the compacted log:\ngot  %+v\nwant %+v", got, want)
	}
	g := p2.StartTxnVerification(1, 0, seqA)
	b := makeBatch(t, batchSpec{records: 1, keys: []string{"n"}, producerID: 1, producerEpoch: 0, baseSequence: seqA, transactional: true})
	if _, err := p2.Append(ctx, b, AppendOptions{VerificationGuard: g}); err != nil {
		t.Fatalf("producer 1's next sequence after compaction and a rebuild: %v", err)
	}
}

// TestRetentionDropsWholeSegmentsWithTheirTxnIndex: retention deletes a
// segment with its aborted-transaction index; an open transaction that
// began in a deleted segment holds the LSO at the new log start.
func TestRetentionDropsWholeSegmentsWithTheirTxnIndex(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{FlushPolicy: FlushNone})
	p := mustCreate(t, st, "ret", 0, TopicConfig{SegmentBytes: 200, RetentionBytes: 600, RetentionMs: -1})
	open := &txnClient{t: t, p: p, pid: 9}
	open.send(1) // 0, never ended
	for i := int64(1); i <= 6; i++ {
		c := &txnClient{t: t, p: p, pid: i}
		c.send(1)
		c.end(false, 0)
	}
	before, err := filepath.Glob(filepath.Join(dir, "ret-0", "*"+txnIndexSuffix))
	if err != nil || len(before) < 3 {
		t.Fatalf("want aborts indexed in several segments, have %v (%v)", before, err)
	}
	st.RunCleaner(context.Background())
	start := p.LogStartOffset()
	if start == 0 {
		t.Fatal("retention deleted nothing")
	}
	after, _ := filepath.Glob(filepath.Join(dir, "ret-0", "*"+txnIndexSuffix))
	for _, path := range after {
		base, _ := parseSegmentName(strings.TrimSuffix(filepath.Base(path), txnIndexSuffix) + logSuffix)
		if base < start {
			t.Fatalf("%s outlived its segment (log start %d)", path, start)
		}
	}
	if len(after) >= len(before) {
		t.Fatalf("transaction indexes before %d, after retention %d", len(before), len(after))
	}
	for _, a := range p.AbortedTransactions(start, p.LogEndOffset()) {
		if a.LastOffset < start {
			t.Fatalf("aborted transaction %+v listed below the log start %d", a, start)
		}
	}
	if got := p.LastStableOffset(); got != start {
		t.Fatalf("LSO %d with a transaction open from 0 and the log starting at %d; want the log start", got, start)
	}
}

// TestTruncateReplaysFromTheSegmentSnapshot: a truncation whose cut lies
// below the checkpoint's snapshot rebuilds from the snapshot taken when the
// last remaining segment was rolled in, reading only that segment, not the
// whole log (shown by damaging the first segment, which a replay from the
// start could not read past).
func TestTruncateReplaysFromTheSegmentSnapshot(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
	p := mustCreate(t, st, "seg", 0, TopicConfig{SegmentBytes: 300})
	a, b := &txnClient{t: t, p: p, pid: 1}, &txnClient{t: t, p: p, pid: 2}
	views := map[int64]txnView{}
	for i := 0; i < 12; i++ {
		a.send(1)
		b.send(1)
		views[p.LogEndOffset()] = viewOf(p)
		a.end(i%2 == 0, 0)
		views[p.LogEndOffset()] = viewOf(p)
	}
	if err := p.checkpoint(); err != nil { // snapshot at the log end
		t.Fatal(err)
	}
	if len(p.segments) < 4 {
		t.Fatalf("want several segments, have %d", len(p.segments))
	}
	first := p.segments[0].logPath()
	f, err := os.OpenFile(first, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, 8); err != nil { // the first batch's length
		t.Fatal(err)
	}
	f.Close()
	last := p.segments[len(p.segments)-1]
	cut := int64(-1)
	for end := range views {
		if end > last.base && end < p.LogEndOffset() && (cut < 0 || end < cut) {
			cut = end
		}
	}
	if cut < 0 {
		t.Fatalf("no batch boundary inside the last segment (base %d, end %d)", last.base, p.LogEndOffset())
	}
	if err := p.TruncateTo(cut); err != nil {
		t.Fatalf("TruncateTo(%d) in the last segment: %v", cut, err)
	}
	if got, want := viewOf(p), views[cut]; !reflect.DeepEqual(got, want) {
		t.Fatalf("after TruncateTo(%d):\ngot  %+v\nwant %+v", cut, got, want)
	}
}

// TestCoordinatorTransactionalWrites: the group coordinator writes a
// producer's TxnOffsetCommit records without sequence numbers; they open
// the transaction with a guard like a client's batch, never count as
// duplicates of each other, and respect the producer epoch.
func TestCoordinatorTransactionalWrites(t *testing.T) {
	st := openStore(t, memTempDir(t), Options{})
	p := mustCreate(t, st, "offsets", 0, TopicConfig{})
	ctx := context.Background()
	batch := func(epoch int16) []byte {
		return makeBatch(t, batchSpec{records: 1, producerID: 9, producerEpoch: epoch, baseSequence: -1, transactional: true})
	}
	if _, err := p.Append(ctx, batch(2), AppendOptions{}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("a client batch without a sequence: err %v, want ErrInvalidRecord", err)
	}
	if _, err := p.Append(ctx, batch(2), AppendOptions{FromCoordinator: true}); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("an unverified coordinator batch: err %v, want ErrInvalidTxnState", err)
	}
	guard := p.StartTxnVerification(9, 2, -1)
	first, err := p.Append(ctx, batch(2), AppendOptions{FromCoordinator: true, VerificationGuard: guard})
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Append(ctx, batch(2), AppendOptions{FromCoordinator: true})
	if err != nil || second.Duplicate || second.BaseOffset != first.BaseOffset+1 {
		t.Fatalf("second write of the transaction: %+v %v", second, err)
	}
	if _, err := p.Append(ctx, batch(1), AppendOptions{FromCoordinator: true}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("an older epoch: err %v, want ErrInvalidProducerEpoch", err)
	}
	p.SetHighWatermark(p.LogEndOffset())
	if lso := p.LastStableOffset(); lso != first.BaseOffset {
		t.Fatalf("last stable offset %d with the transaction open, want %d", lso, first.BaseOffset)
	}
	if _, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: 9, ProducerEpoch: 2, Commit: true}, AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	p.SetHighWatermark(p.LogEndOffset())
	if lso := p.LastStableOffset(); lso != p.LogEndOffset() {
		t.Fatalf("last stable offset %d after the commit, want %d", lso, p.LogEndOffset())
	}
}
