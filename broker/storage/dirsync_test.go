package storage

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// blockingDirSync is a directory fsync for tests: each call counts, and
// waits for release when block is set.
type blockingDirSync struct {
	calls   atomic.Int32
	entered chan struct{} // one value per call, when it starts
	release chan error    // one value per call, its result
}

func newBlockingDirSync() *blockingDirSync {
	return &blockingDirSync{entered: make(chan struct{}, 64), release: make(chan error, 64)}
}

func (b *blockingDirSync) sync(string) error {
	b.calls.Add(1)
	b.entered <- struct{}{}
	return <-b.release
}

// waitEntered waits for the next call to start.
func (b *blockingDirSync) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-b.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no directory fsync started")
	}
}

// TestDirSyncerSharesOneRound checks that callers arriving while a round
// runs are all covered by one next round (not one each), and none returns
// before a round that began after its call has ended.
func TestDirSyncerSharesOneRound(t *testing.T) {
	b := newBlockingDirSync()
	d := newDirSyncer("dir", b.sync)
	first := make(chan error, 1)
	go func() { first <- d.syncEntries() }()
	b.waitEntered(t) // round 1 runs

	const waiters = 8
	var returned atomic.Int32
	errs := make(chan error, waiters)
	for range waiters {
		go func() {
			err := d.syncEntries()
			returned.Add(1)
			errs <- err
		}()
	}
	// Let them all reach the wait (they cannot return: round 1 began
	// before their entries).
	time.Sleep(50 * time.Millisecond)
	b.release <- nil // round 1 ends
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	b.waitEntered(t) // round 2, for the eight
	time.Sleep(20 * time.Millisecond)
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d callers returned while the round covering them was still running", n)
	}
	b.release <- nil
	for range waiters {
		if err := <-errs; err != nil {
			t.Fatalf("waiter: %v", err)
		}
	}
	if n := b.calls.Load(); n != 2 {
		t.Fatalf("%d directory fsyncs for 1 + %d callers in two waves, want 2", n, waiters)
	}
}

// TestDirSyncerFailsTheCallersOfAFailedRound checks that a failed fsync
// fails the callers it was to cover, and that a caller that began after
// the failure gets a round of its own.
func TestDirSyncerFailsTheCallersOfAFailedRound(t *testing.T) {
	b := newBlockingDirSync()
	d := newDirSyncer("dir", b.sync)
	first := make(chan error, 1)
	go func() { first <- d.syncEntries() }()
	b.waitEntered(t)
	boom := errors.New("injected EIO")
	b.release <- boom
	if err := <-first; !errors.Is(err, boom) {
		t.Fatalf("caller of the failed round got %v, want %v", err, boom)
	}
	b.release <- nil
	if err := d.syncEntries(); err != nil {
		t.Fatalf("caller after the failure: %v", err)
	}
	if n := b.calls.Load(); n != 2 {
		t.Fatalf("%d directory fsyncs, want 2", n)
	}
}

// TestCreatePartitionsShareTheDataDirectoryFsync creates partitions
// concurrently while the data directory's fsync is held: they wait for it
// (none is returned before its entry is durable) and all share the next
// one.
func TestCreatePartitionsShareTheDataDirectoryFsync(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	b := newBlockingDirSync()
	st.entries = newDirSyncer(st.dir, b.sync)
	first := make(chan error, 1)
	go func() {
		_, err := st.CreatePartition("t", 0, TopicConfig{})
		first <- err
	}()
	b.waitEntered(t)
	const more = 6
	var created atomic.Int32
	errs := make(chan error, more)
	for i := range int32(more) {
		go func() {
			_, err := st.CreatePartition("t", 1+i, TopicConfig{})
			created.Add(1)
			errs <- err
		}()
	}
	// Wait until the six have written their directories and queued for
	// the data directory's fsync.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for i := range more {
			if _, err := os.Stat(fmt.Sprintf("%s/t-%d/%s", st.dir, 1+i, partitionMetaFile)); err == nil {
				n++
			}
		}
		if n == more || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := created.Load(); n != 0 {
		t.Fatalf("%d partitions returned before the data directory's fsync", n)
	}
	b.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	b.waitEntered(t)
	b.release <- nil
	for range more {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := b.calls.Load(); n != 2 {
		t.Fatalf("%d data directory fsyncs for 1 + %d partitions created together, want 2", n, more)
	}
}

// TestCreatePartitionWritesNoCheckpoint checks that a new partition's
// directory holds only its metadata and its empty segment (no checkpoint
// files, whose fsyncs cost more than the creation's own), and that a
// crash right after the creation recovers it empty and usable, with its
// settings.
func TestCreatePartitionWritesNoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{CleanupPolicy: "compact"})
	entries, err := os.ReadDir(p.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	want := []string{"00000000000000000000.log", partitionMetaFile}
	if !slices.Equal(names, want) {
		t.Fatalf("new partition directory holds %v, want %v", names, want)
	}

	st2 := openStore(t, crashCopy(t, dir), Options{})
	q, ok := st2.Partition("t", 0)
	if !ok {
		t.Fatal("partition lost in a crash after its creation")
	}
	if q.LogEndOffset() != 0 || q.LogStartOffset() != 0 {
		t.Fatalf("recovered log spans [%d, %d), want empty", q.LogStartOffset(), q.LogEndOffset())
	}
	if q.Config().CleanupPolicy != "compact" {
		t.Fatalf("recovered cleanup.policy %q, want compact", q.Config().CleanupPolicy)
	}
	res := mustAppend(t, q, makeBatch(t, batchSpec{records: 2}))
	if res.BaseOffset != 0 {
		t.Fatalf("first append after recovery at %d, want 0", res.BaseOffset)
	}

	// The first checkpoint after an append writes the recovery point and
	// the producers' snapshot the creation left out.
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, makeBatch(t, batchSpec{records: 3}))
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{recoveryPointFile, producerStateFile} {
		if _, err := os.Stat(fmt.Sprintf("%s/%s", p.Dir(), name)); err != nil {
			t.Fatalf("after an append and a checkpoint: %v", err)
		}
	}
}
