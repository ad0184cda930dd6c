package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// replicate copies the leader's log from the follower's end, as a follower
// fetcher would, and returns how many bytes moved.
func replicate(t *testing.T, leader, follower *Partition) int {
	t.Helper()
	moved := 0
	for follower.LogEndOffset() < leader.LogEndOffset() {
		b, err := leader.Read(follower.LogEndOffset(), 700, leader.LogEndOffset())
		if err != nil {
			t.Fatalf("leader read at %d: %v", follower.LogEndOffset(), err)
		}
		if len(b) == 0 {
			t.Fatalf("leader returned nothing at %d (end %d)", follower.LogEndOffset(), leader.LogEndOffset())
		}
		// Compaction gaps: a follower at an offset inside a gap gets the
		// next batch, which starts past its end.
		if err := follower.AppendAsFollower(context.Background(), bytes.Clone(b)); err != nil {
			t.Fatalf("AppendAsFollower at %d: %v", follower.LogEndOffset(), err)
		}
		moved += len(b)
	}
	return moved
}

func TestAppendAsFollowerKeepsLeaderBytes(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	leaderStore := openStore(t, t.TempDir(), Options{Now: clock.Now})
	followerDir := memTempDir(t)
	followerStore := openStore(t, followerDir, Options{Now: clock.Now})
	cfg := TopicConfig{MessageTimestampType: LogAppendTime, SegmentBytes: 900}
	leader := mustCreate(t, leaderStore, "rep", 0, cfg)
	follower := mustCreate(t, followerStore, "rep", 0, cfg)
	for i, epoch := range []int32{0, 0, 3, 3, 3, 7} {
		clock.now = clock.now.Add(time.Second)
		spec := batchSpec{records: 2, valueSize: 100, codec: i % 5, producerID: 11, producerEpoch: 0, baseSequence: int32(2 * i)}
		if _, err := leader.Append(context.Background(), makeBatch(t, spec), AppendOptions{LeaderEpoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	replicate(t, leader, follower)
	lb, _ := leader.Read(0, 1<<20, leader.LogEndOffset())
	fb, _ := follower.Read(0, 1<<20, follower.LogEndOffset())
	if !bytes.Equal(lb, fb) {
		t.Fatalf("follower bytes differ from the leader's (%d vs %d bytes)", len(fb), len(lb))
	}
	for epoch := int32(0); epoch <= 8; epoch++ {
		le, lo := leader.EndOffsetForLeaderEpoch(epoch)
		fe, fo := follower.EndOffsetForLeaderEpoch(epoch)
		if le != fe || lo != fo {
			t.Fatalf("epoch %d: leader says (%d, %d), follower (%d, %d)", epoch, le, lo, fe, fo)
		}
	}
	// The follower learnt the producer's sequences: as a new leader it
	// answers a resend with the original offsets.
	res, err := follower.Append(context.Background(), makeBatch(t, batchSpec{records: 2, producerID: 11, producerEpoch: 0, baseSequence: 10}), AppendOptions{LeaderEpoch: 8})
	if err != nil || !res.Duplicate || res.BaseOffset != 10 {
		t.Fatalf("resend to the new leader: %+v, %v; want duplicate at 10", res, err)
	}
	// Rejections: before the end, corrupt.
	if err := follower.AppendAsFollower(context.Background(), bytes.Clone(lb)); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("batches before the log end: %v", err)
	}
	bad := bytes.Clone(lb)
	bad[len(bad)-1] ^= 1
	if err := follower.AppendAsFollower(context.Background(), bad); !errors.Is(err, ErrCorruptMessage) {
		t.Fatalf("corrupt leader batch: %v", err)
	}
	// And it all survives a crash of the follower.
	crashed := crashCopy(t, followerDir)
	st2 := openStore(t, crashed, Options{Now: clock.Now})
	f2, _ := st2.Partition("rep", 0)
	if b, _ := f2.Read(0, 1<<20, f2.LogEndOffset()); !bytes.Equal(b, lb) {
		t.Fatal("follower log changed across a crash")
	}
	if e, end := f2.EndOffsetForLeaderEpoch(7); e != 7 || end != 12 {
		t.Fatalf("epoch 7 after the crash: %d, %d", e, end)
	}
}

func TestAppendAsFollowerAcrossCompactionGaps(t *testing.T) {
	leaderStore := openStore(t, t.TempDir(), Options{})
	followerStore := openStore(t, t.TempDir(), Options{})
	cfg := TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 300}
	leader := mustCreate(t, leaderStore, "gap", 0, cfg)
	follower := mustCreate(t, followerStore, "gap", 0, cfg)
	for i := 0; i < 12; i++ {
		mustAppend(t, leader, makeBatch(t, batchSpec{records: 1, keys: []string{[]string{"a", "b", "c"}[i%3]}, valueSize: 80}))
	}
	if err := leader.checkpoint(); err != nil {
		t.Fatal(err)
	}
	leaderStore.RunCleaner(context.Background())
	replicate(t, leader, follower)
	lb, _ := leader.Read(0, 1<<20, leader.LogEndOffset())
	fb, _ := follower.Read(0, 1<<20, follower.LogEndOffset())
	if !bytes.Equal(lb, fb) || follower.LogEndOffset() != leader.LogEndOffset() {
		t.Fatalf("follower differs after gaps: %d vs %d bytes, end %d vs %d", len(fb), len(lb), follower.LogEndOffset(), leader.LogEndOffset())
	}
	first, _ := recordbatch.ParseHeader(fb)
	if first.BaseOffset == 0 {
		t.Fatal("the compacted leader log should start with a gap; the test lost its point")
	}
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "tf", 0, TopicConfig{SegmentBytes: 300})
	for i := 0; i < 8; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 80, producerID: 3, producerEpoch: 0, baseSequence: int32(i)}))
	}
	if err := p.TruncateFullyAndStartAt(500); err != nil {
		t.Fatal(err)
	}
	if p.LogStartOffset() != 500 || p.LogEndOffset() != 500 || p.Size() != 0 || p.LatestEpoch() != -1 {
		t.Fatalf("after TruncateFullyAndStartAt(500): start %d end %d size %d epoch %d", p.LogStartOffset(), p.LogEndOffset(), p.Size(), p.LatestEpoch())
	}
	if segs, _ := filepath.Glob(filepath.Join(p.Dir(), "*.log")); len(segs) != 1 || filepath.Base(segs[0]) != segmentName(500)+logSuffix {
		t.Fatalf("segments after the reset: %v", segs)
	}
	leaderBatch := makeBatch(t, batchSpec{records: 2})
	recordbatch.SetBaseOffset(leaderBatch, 500)
	recordbatch.SetPartitionLeaderEpoch(leaderBatch, 9)
	if err := p.AppendAsFollower(context.Background(), leaderBatch); err != nil {
		t.Fatal(err)
	}
	crashed := crashCopy(t, dir)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, crashed} {
		st2 := openStore(t, d, Options{})
		p2, _ := st2.Partition("tf", 0)
		if p2.LogStartOffset() != 500 || p2.LogEndOffset() != 502 {
			t.Fatalf("%s: start %d end %d after restart, want 500 and 502", d, p2.LogStartOffset(), p2.LogEndOffset())
		}
		// The old producer state is gone with the data.
		if _, err := p2.Append(context.Background(), makeBatch(t, batchSpec{records: 1, producerID: 3, producerEpoch: 0, baseSequence: 8}), AppendOptions{}); !errors.Is(err, ErrUnknownProducerID) {
			t.Fatalf("%s: producer of the cut log: %v, want ErrUnknownProducerID", d, err)
		}
		st2.Close()
	}
}

func TestHighWatermarkSurvivesRestart(t *testing.T) {
	dir := memTempDir(t)
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "hwp", 0, TopicConfig{})
	for i := 0; i < 5; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2}))
	}
	p.SetHighWatermark(6)
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	crashed := crashCopy(t, dir)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, crashed} {
		st2 := openStore(t, d, Options{})
		p2, _ := st2.Partition("hwp", 0)
		if p2.HighWatermark() != 6 {
			t.Fatalf("%s: high watermark after restart %d, want 6", d, p2.HighWatermark())
		}
		st2.Close()
	}
	// A store that never had SetHighWatermark keeps the single-node rule.
	if _, err := os.Stat(filepath.Join(dir, "hwp-0", highWatermarkFile)); err != nil {
		t.Fatalf("high-watermark file: %v", err)
	}
}

func TestRecoverySkipsControllerDirectory(t *testing.T) {
	dir := memTempDir(t)
	if err := os.MkdirAll(filepath.Join(dir, "controller", "raft"), 0o755); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, dir, Options{})
	if n := len(st.Partitions()); n != 0 {
		t.Fatalf("%d partitions from a controller directory", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "controller", "raft")); err != nil {
		t.Fatalf("the controller directory was touched: %v", err)
	}
}

// A replica that has moved on to a newer leader epoch refuses leader
// appends made under an older one (a produce that looked up the old
// leadership just before it ended), data and transaction markers alike,
// and writes nothing; appends at the fenced epoch or later go through, and
// a lower fence does not undo a higher one.
func TestFenceLeaderEpochRefusesOlderLeaderAppends(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{})
	ctx := context.Background()
	if _, err := p.Append(ctx, makeBatch(t, batchSpec{records: 2}), AppendOptions{LeaderEpoch: 3}); err != nil {
		t.Fatalf("append before any fence: %v", err)
	}
	p.FenceLeaderEpoch(5)
	p.FenceLeaderEpoch(4)
	end := p.LogEndOffset()
	for _, epoch := range []int32{-1, 0, 3, 4} {
		if _, err := p.Append(ctx, makeBatch(t, batchSpec{}), AppendOptions{LeaderEpoch: epoch}); !errors.Is(err, ErrFencedLeaderEpoch) {
			t.Errorf("append at epoch %d after a fence at 5: %v, want %v", epoch, err, ErrFencedLeaderEpoch)
		}
	}
	if _, err := p.AppendTxnMarker(ctx, TxnMarker{ProducerID: 7, ProducerEpoch: 0, Commit: true}, AppendOptions{LeaderEpoch: 4}); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Errorf("marker at epoch 4 after a fence at 5: %v, want %v", err, ErrFencedLeaderEpoch)
	}
	if got := p.LogEndOffset(); got != end {
		t.Fatalf("refused appends moved the log end from %d to %d", end, got)
	}
	res, err := p.Append(ctx, makeBatch(t, batchSpec{}), AppendOptions{LeaderEpoch: 5})
	if err != nil || res.BaseOffset != end {
		t.Fatalf("append at the fenced epoch: offset %d, %v; want offset %d", res.BaseOffset, err, end)
	}
	if e := p.LatestEpoch(); e != 5 {
		t.Fatalf("newest epoch %d, want 5", e)
	}
}

// A follower cut back to a new leader's log while its sync round runs,
// and written again at the same offsets, does not count the new data as
// durable on the strength of that round: the round's fsyncs may have run
// before the new data was written.
func TestSyncRoundAcrossTruncationCountsNothingRewritten(t *testing.T) {
	old := openStore(t, t.TempDir(), Options{})
	oldLeader := mustCreate(t, old, "t", 0, TopicConfig{})
	for range 10 {
		mustAppend(t, oldLeader, makeBatch(t, batchSpec{records: 1}))
	}
	newLeader := mustCreate(t, old, "t", 1, TopicConfig{})
	for range 15 {
		mustAppend(t, newLeader, makeBatch(t, batchSpec{records: 1, valueSize: 7}))
	}
	read := func(p *Partition, from int64) []byte {
		b, err := p.Read(from, 1<<20, p.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(b)
	}

	st := openStore(t, t.TempDir(), Options{})
	// Each fsync waits until the test releases it; once the test ends
	// they pass (the store's Close syncs too).
	type call struct{ release chan struct{} }
	calls := make(chan call, 16)
	var ended atomic.Bool
	st.syncData = func(f *os.File) error {
		if !ended.Load() {
			c := call{make(chan struct{})}
			calls <- c
			<-c.release
		}
		return fdatasync(f)
	}
	t.Cleanup(func() {
		ended.Store(true)
		for {
			select {
			case c := <-calls:
				close(c.release)
			case <-time.After(100 * time.Millisecond):
				return
			}
		}
	})
	nextSync := func() call {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no sync round started")
			return call{}
		}
	}
	follower := mustCreate(t, st, "t", 0, TopicConfig{})
	wait1, err := follower.WriteAsFollower(read(oldLeader, 0))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- wait1(context.Background()) }()
	round1 := nextSync() // the round's target is 10; its fsync is under way
	if err := follower.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	wait2, err := follower.WriteAsFollower(read(newLeader, 5))
	if err != nil {
		t.Fatal(err)
	}
	close(round1.release)
	if err := <-errc; !errors.Is(err, ErrStorage) {
		t.Fatalf("the wait for the truncated write: %v, want ErrStorage (discarded)", err)
	}
	round2 := nextSync()
	if d := follower.durable.Load(); d > 5 {
		t.Fatalf("durable end %d after the round that began before the truncation to 5", d)
	}
	close(round2.release)
	if err := wait2(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, end := follower.durable.Load(), follower.LogEndOffset(); d != 15 || end != 15 {
		t.Fatalf("durable end %d, log end %d, want 15", d, end)
	}
}

// TestWriteAsFollowerKeepsNoReferenceToBatches: once WriteAsFollower
// returns, the follower's log, producer state, transactions and epochs
// are what the leader's batches said, whatever then happens to the
// buffer they came in: a follower reads every fetch response into the
// same buffer. One copy of the leader's log (transactional batches, a
// commit marker, several epochs) is written from a buffer that is
// scribbled over right after each write, before its durability wait; it
// ends up as the leader's log, as does a copy written from untouched
// buffers.
func TestWriteAsFollowerKeepsNoReferenceToBatches(t *testing.T) {
	ctx := context.Background()
	leader := mustCreate(t, openStore(t, t.TempDir(), Options{}), "reuse", 0, TopicConfig{SegmentBytes: 2000})
	txnAppend := func(pid int64, seq int32, n int, epoch int32) {
		t.Helper()
		guard := leader.StartTxnVerification(pid, 0, seq)
		spec := batchSpec{records: n, valueSize: 150, producerID: pid, producerEpoch: 0, baseSequence: seq, transactional: true}
		if _, err := leader.Append(ctx, makeBatch(t, spec), AppendOptions{LeaderEpoch: epoch, VerificationGuard: guard}); err != nil {
			t.Fatal(err)
		}
	}
	for i, epoch := range []int32{0, 0, 2, 2, 5} {
		txnAppend(21, int32(3*i), 3, epoch)
	}
	if _, err := leader.AppendTxnMarker(ctx, TxnMarker{ProducerID: 21, ProducerEpoch: 0, Commit: true}, AppendOptions{LeaderEpoch: 5}); err != nil {
		t.Fatal(err)
	}
	txnAppend(22, 0, 2, 5) // left open: the last stable offset stops before it
	leader.SetHighWatermark(leader.LogEndOffset())
	want, err := leader.Read(0, 1<<20, leader.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	followerStore := openStore(t, t.TempDir(), Options{})
	reused := mustCreate(t, followerStore, "reused", 0, TopicConfig{SegmentBytes: 2000})
	fresh := mustCreate(t, followerStore, "fresh", 0, TopicConfig{SegmentBytes: 2000})
	buf := make([]byte, 0, 1<<20)
	for reused.LogEndOffset() < leader.LogEndOffset() {
		b, err := leader.Read(reused.LogEndOffset(), 600, leader.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if err := fresh.AppendAsFollower(ctx, bytes.Clone(b)); err != nil {
			t.Fatal(err)
		}
		buf = append(buf[:0], b...)
		wait, err := reused.WriteAsFollower(buf)
		if err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] = 0xA5
		}
		if err := wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*Partition{reused, fresh} {
		p.SetHighWatermark(p.LogEndOffset())
		got, err := p.Read(0, 1<<20, p.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes differ from the leader's %d", p.Topic(), len(got), len(want))
		}
		if p.LastStableOffset() != leader.LastStableOffset() {
			t.Fatalf("%s: last stable offset %d, the leader's %d", p.Topic(), p.LastStableOffset(), leader.LastStableOffset())
		}
		for epoch := int32(0); epoch <= 6; epoch++ {
			le, lo := leader.EndOffsetForLeaderEpoch(epoch)
			fe, fo := p.EndOffsetForLeaderEpoch(epoch)
			if le != fe || lo != fo {
				t.Fatalf("%s, epoch %d: leader says (%d, %d), follower (%d, %d)", p.Topic(), epoch, le, lo, fe, fo)
			}
		}
		lp, fp := leader.Producers(), p.Producers()
		if len(lp) != len(fp) {
			t.Fatalf("%s: %d producers, the leader %d", p.Topic(), len(fp), len(lp))
		}
		for i := range lp {
			if lp[i].ProducerID != fp[i].ProducerID || lp[i].LastSequence != fp[i].LastSequence || lp[i].CurrentTxnStartOffset != fp[i].CurrentTxnStartOffset {
				t.Fatalf("%s: producer %+v, the leader's %+v", p.Topic(), fp[i], lp[i])
			}
		}
	}
}

// FetchState reads what the three separate reads do, through appends at
// two epochs, a DeleteRecords, a truncation and a full reset.
func TestFetchStateIsTheThreeReads(t *testing.T) {
	st := openStore(t, memTempDir(t), Options{})
	p := mustCreate(t, st, "fs", 0, TopicConfig{SegmentBytes: 300})
	check := func(step string, wantEnd int64, wantEpoch int32, wantStart int64) {
		t.Helper()
		end, epoch, start := p.FetchState()
		if end != p.LogEndOffset() || epoch != p.LatestEpoch() || start != p.LogStartOffset() {
			t.Fatalf("%s: FetchState (%d, %d, %d), the three reads (%d, %d, %d)", step, end, epoch, start, p.LogEndOffset(), p.LatestEpoch(), p.LogStartOffset())
		}
		if end != wantEnd || epoch != wantEpoch || start != wantStart {
			t.Fatalf("%s: FetchState (%d, %d, %d), want (%d, %d, %d)", step, end, epoch, start, wantEnd, wantEpoch, wantStart)
		}
	}
	check("empty", 0, -1, 0)
	for i, epoch := range []int32{2, 2, 5, 5} {
		b := makeBatch(t, batchSpec{records: 2, valueSize: 80})
		recordbatch.SetBaseOffset(b, int64(2*i))
		recordbatch.SetPartitionLeaderEpoch(b, epoch)
		if err := p.AppendAsFollower(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	check("appended", 8, 5, 0)
	p.SetHighWatermark(8)
	if _, err := p.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	check("records deleted", 8, 5, 3)
	if err := p.TruncateTo(4); err != nil {
		t.Fatal(err)
	}
	check("truncated", 4, 2, 3)
	if err := p.TruncateFullyAndStartAt(50); err != nil {
		t.Fatal(err)
	}
	check("reset", 50, -1, 50)
}
