package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
)

// failingGate is a syncData hook whose calls wait for release and then
// fail: a failed fsync that a test can hold while a follower reads.
type failingGate struct {
	entered chan struct{}
	release chan struct{}
	err     error
}

func (g *failingGate) sync(*os.File) error {
	g.entered <- struct{}{}
	<-g.release
	return g.err
}

// copyToFollower reads the leader's log from the follower's end up to the
// leader's log end, as a follower fetch does (the leader serves followers
// past its durable end), and appends it to the follower.
func copyToFollower(t *testing.T, leader, follower *Partition) {
	t.Helper()
	b, err := leader.Read(follower.LogEndOffset(), 1<<20, leader.LogEndOffset())
	if err != nil {
		t.Fatalf("follower read: %v", err)
	}
	if len(b) == 0 {
		return
	}
	if err := follower.AppendAsFollower(context.Background(), b); err != nil {
		t.Fatalf("follower append: %v", err)
	}
}

// batchAt returns the bytes of the batch that starts at offset.
func batchAt(t *testing.T, p *Partition, offset int64) []byte {
	t.Helper()
	b, err := p.Read(offset, 1, p.LogEndOffset())
	if err != nil {
		t.Fatalf("reading offset %d: %v", offset, err)
	}
	return b
}

// TestSyncFailureAfterFollowerReadNeverReusesOffsets: a leader's write is
// read by a follower while its fsync runs; the fsync fails and the leader
// cuts the write off (group policy). The leader must not give those
// offsets to other records at the same leader epoch: the follower holds
// the cut records there, and since the epochs agree no divergence check
// would find the difference. It may write them again only at a newer
// epoch, which a follower's epoch check tells apart.
func TestSyncFailureAfterFollowerReadNeverReusesOffsets(t *testing.T) {
	const epoch = 3
	lst := openStore(t, t.TempDir(), Options{})
	fst := openStore(t, t.TempDir(), Options{})
	leader := mustCreate(t, lst, "div", 0, TopicConfig{})
	follower := mustCreate(t, fst, "div", 0, TopicConfig{})

	if _, err := leader.Append(context.Background(), makeBatch(t, batchSpec{records: 2}), AppendOptions{LeaderEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	copyToFollower(t, leader, follower)

	gate := &failingGate{entered: make(chan struct{}, 8), release: make(chan struct{}), err: errors.New("injected EIO")}
	lst.syncData = gate.sync
	_, wait, err := leader.Write(makeBatch(t, batchSpec{records: 3, valueSize: 10}), AppendOptions{LeaderEpoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	<-gate.entered // the leader's fsync runs; the follower is woken at the write
	copyToFollower(t, leader, follower)
	close(gate.release)
	if err := wait(context.Background()); !errors.Is(err, ErrStorage) {
		t.Fatalf("write whose fsync failed: %v, want ErrStorage", err)
	}
	if got := leader.LogEndOffset(); got != 2 {
		t.Fatalf("leader log end after the failed fsync %d, want 2 (cut back to the durable end)", got)
	}
	if got := follower.LogEndOffset(); got != 5 {
		t.Fatalf("follower log end %d, want 5 (it copied the write before the fsync failed)", got)
	}
	lst.syncData = fdatasync // the disk works again

	// A leader append at the same epoch would sit at offset 2, where the
	// follower holds the cut records under the same epoch.
	res, err := leader.Append(context.Background(), makeBatch(t, batchSpec{records: 1, valueSize: 50}), AppendOptions{LeaderEpoch: epoch})
	if err == nil {
		l, f := batchAt(t, leader, res.BaseOffset), batchAt(t, follower, res.BaseOffset)
		le, _ := leader.EndOffsetForLeaderEpoch(epoch)
		fe, _ := follower.EndOffsetForLeaderEpoch(epoch)
		t.Fatalf("the leader gave offset %d to a new record at leader epoch %d after the follower copied another there: leader epoch %d, follower epoch %d, same bytes %v",
			res.BaseOffset, epoch, le, fe, bytes.Equal(l, f))
	}
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("leader append at the epoch of the cut: %v, want ErrStorage", err)
	}

	// Leading again at a newer epoch is safe: the follower's epoch check
	// finds where the logs part and truncates there.
	leader.AssignLeaderEpochStart(epoch + 1)
	res, err = leader.Append(context.Background(), makeBatch(t, batchSpec{records: 1, valueSize: 50}), AppendOptions{LeaderEpoch: epoch + 1})
	if err != nil || res.BaseOffset != 2 {
		t.Fatalf("leader append at the next epoch: %+v, %v; want offset 2", res, err)
	}
	e, end := leader.EndOffsetForLeaderEpoch(follower.LatestEpoch())
	if e != epoch || end != 2 {
		t.Fatalf("the leader's end of epoch %d is (%d, %d), want (%d, 2)", epoch, e, end, epoch)
	}
	if err := follower.TruncateTo(end); err != nil {
		t.Fatal(err)
	}
	copyToFollower(t, leader, follower)
	if !bytes.Equal(batchAt(t, leader, 2), batchAt(t, follower, 2)) || leader.LogEndOffset() != follower.LogEndOffset() {
		t.Fatalf("after the follower's truncation the logs differ (ends %d and %d)", leader.LogEndOffset(), follower.LogEndOffset())
	}
}

// TestSyncFailureNobodyReadKeepsTheEpoch: when no reader went past the
// durable end (a partition without followers), nobody holds the cut
// records, so the leader writes on at the same epoch once fsync works:
// a single replica refuses writes only while its disk fails.
func TestSyncFailureNobodyReadKeepsTheEpoch(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "alone", 0, TopicConfig{})
	if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 2}), AppendOptions{LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	// A consumer reads up to the high watermark, never past the durable end.
	if _, err := p.Read(0, 1<<20, p.HighWatermark()); err != nil {
		t.Fatal(err)
	}
	st.syncData = func(*os.File) error { return errors.New("injected EIO") }
	if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 3}), AppendOptions{LeaderEpoch: 1}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append with a failing fsync: %v, want ErrStorage", err)
	}
	st.syncData = fdatasync
	res, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{LeaderEpoch: 1})
	if err != nil || res.BaseOffset != 2 {
		t.Fatalf("append once fsync works: %+v, %v; want offset 2", res, err)
	}
}
