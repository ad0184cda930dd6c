package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/internal/testenv"
)

// deletedFiles lists the files under dir (at any depth) waiting for their
// delayed deletion: segment files with the ".deleted" suffix and whatever
// is in a deleted partition's "*-delete" directory. A file the deleter
// removes during the walk is not listed.
func deletedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, deletedFileSuffix) || strings.Contains(path, deletedSuffix+string(filepath.Separator)) ||
			(info.IsDir() && strings.HasSuffix(path, deletedSuffix)) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	return out
}

// waitUntil polls cond every few milliseconds for at most limit.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// compactableLog writes keys that later records overwrite, over several
// segments, and checkpoints, so that a cleaner pass rewrites its first
// segments: the first segment only holds keys rewritten later ("gone-*",
// which compaction empties and drops) and the second keeps some.
func compactableLog(t *testing.T, p *Partition) {
	t.Helper()
	for i := range 4 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, keys: []string{"gone-a", "gone-b"}, valueSize: 150, timestamp: 1_700_000_000_000 + int64(i)}))
	}
	for i := range 4 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, keys: []string{"kept-" + string(rune('a'+i)), "gone-a"}, valueSize: 150}))
	}
	for range 4 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, keys: []string{"gone-a", "gone-b"}, valueSize: 150}))
	}
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1, keys: []string{"last"}, valueSize: 10}))
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
}

// TestSliceOfADeletedSegmentSendsItsBytes: a fetch's slices, located
// before retention, DeleteRecords, compaction or a topic deletion took
// their segments out of the log, send exactly the bytes they were made
// of while file.delete.delay.ms runs; the segments are out of the log at
// once (reads no longer find them), their files wait under ".deleted"
// names (a "*-delete" directory for a topic), PendingDeletion counts
// them, and the store's Close removes them.
func TestSliceOfADeletedSegmentSendsItsBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  TopicConfig
		fill func(t *testing.T, p *Partition)
		// remove takes the first segments out of the log.
		remove func(t *testing.T, st *Store, p *Partition)
		// gone checks that the log no longer holds the bytes it had.
		gone func(t *testing.T, st *Store, p *Partition, before []byte)
	}{{
		name: "retention",
		cfg:  TopicConfig{SegmentBytes: 1000, RetentionBytes: 2000, RetentionMs: -1},
		remove: func(t *testing.T, st *Store, p *Partition) {
			st.RunCleaner(context.Background())
		},
		gone: func(t *testing.T, _ *Store, p *Partition, _ []byte) {
			if p.LogStartOffset() == 0 {
				t.Fatal("retention deleted nothing")
			}
			if _, err := p.Read(0, 1<<20, p.LogEndOffset()); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read of a deleted segment: %v, want ErrOffsetOutOfRange", err)
			}
		},
	}, {
		name: "DeleteRecords",
		cfg:  TopicConfig{SegmentBytes: 1000},
		remove: func(t *testing.T, _ *Store, p *Partition) {
			if _, err := p.DeleteRecordsBefore(p.LogEndOffset() - 2); err != nil {
				t.Fatal(err)
			}
		},
		gone: func(t *testing.T, _ *Store, p *Partition, _ []byte) {
			if _, err := p.Read(0, 1<<20, p.LogEndOffset()); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read below the new log start: %v, want ErrOffsetOutOfRange", err)
			}
		},
	}, {
		name: "compaction",
		cfg:  TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 1200},
		fill: compactableLog,
		remove: func(t *testing.T, st *Store, p *Partition) {
			st.RunCleaner(context.Background())
		},
		gone: func(t *testing.T, _ *Store, p *Partition, before []byte) {
			now, err := p.Read(0, 1<<20, p.LogEndOffset())
			if err != nil {
				t.Fatal(err)
			}
			if len(now) >= len(before) {
				t.Fatalf("compaction left %d of %d bytes", len(now), len(before))
			}
		},
	}, {
		name: "topic deletion",
		cfg:  TopicConfig{SegmentBytes: 1000},
		remove: func(t *testing.T, st *Store, _ *Partition) {
			if err := st.DeleteTopic("t"); err != nil {
				t.Fatal(err)
			}
		},
		gone: func(t *testing.T, st *Store, p *Partition, _ []byte) {
			if _, ok := st.Partition("t", 0); ok {
				t.Fatal("a deleted partition is still listed")
			}
			if _, err := p.Read(0, 1<<20, 100); !errors.Is(err, ErrClosed) {
				t.Fatalf("read of a deleted partition: %v, want ErrClosed", err)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openStore(t, dir, Options{})
			cfg := tc.cfg
			cfg.FileDeleteDelay = time.Hour // never elapses here
			p := mustCreate(t, st, "t", 0, cfg)
			if tc.fill != nil {
				tc.fill(t, p)
			} else {
				for i := range 20 {
					mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 100 + i}))
				}
			}
			if segs := len(p.segments); segs < 3 {
				t.Fatalf("%d segments, want several", segs)
			}
			want, err := p.Read(0, 1<<20, p.LogEndOffset())
			if err != nil {
				t.Fatal(err)
			}
			slices, ok, err := p.ReadSlices(0, 1<<20, p.LogEndOffset())
			if err != nil || !ok || len(slices) < 3 {
				t.Fatalf("%d slices, ok %v, %v", len(slices), ok, err)
			}

			tc.remove(t, st, p)
			tc.gone(t, st, p, want)
			if got := sendSlices(t, slices); !bytes.Equal(got, want) {
				t.Fatalf("the slices sent %d bytes that differ from the %d read before the deletion", len(got), len(want))
			}

			if segs, bytes := st.PendingDeletion(); segs == 0 || bytes == 0 {
				t.Fatalf("pending deletion: %d segments, %d bytes; want the deleted ones", segs, bytes)
			}
			if tc.name != "compaction" && len(deletedFiles(t, dir)) == 0 {
				t.Fatal("no file waits for its deletion")
			}

			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if left := deletedFiles(t, dir); len(left) > 0 {
				t.Fatalf("left after Close: %v", left)
			}
			if segs, bytes := st.PendingDeletion(); segs != 0 || bytes != 0 {
				t.Fatalf("pending deletion after Close: %d segments, %d bytes", segs, bytes)
			}
		})
	}
}

// TestDeletedSegmentsGoAfterTheDelay: once file.delete.delay.ms has
// passed, the files are removed and the descriptors closed (a slice of
// them then fails as one of a closed segment), without a store Close.
func TestDeletedSegmentsGoAfterTheDelay(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{SegmentBytes: 1000, FileDeleteDelay: 50 * time.Millisecond})
	q := mustCreate(t, st, "u", 0, TopicConfig{SegmentBytes: 1000, FileDeleteDelay: 50 * time.Millisecond})
	for range 20 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 100}))
		mustAppend(t, q, makeBatch(t, batchSpec{records: 2, valueSize: 100}))
	}
	slices, ok, err := p.ReadSlices(0, 1<<20, p.LogEndOffset())
	if err != nil || !ok || len(slices) == 0 {
		t.Fatalf("%d slices, ok %v, %v", len(slices), ok, err)
	}
	if _, err := p.DeleteRecordsBefore(p.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteTopic("u"); err != nil {
		t.Fatal(err)
	}
	if len(deletedFiles(t, dir)) == 0 {
		t.Fatal("no file waits for its deletion")
	}
	waitUntil(t, "the deleted files to go", 10*time.Second, func() bool {
		segs, bytes := st.PendingDeletion()
		return len(deletedFiles(t, dir)) == 0 && segs == 0 && bytes == 0
	})
	w, _ := tcpPair(t)
	if _, err := slices[0].SendTo(rawConn(t, w)); !errors.Is(err, ErrSliceGone) {
		t.Fatalf("a slice of a segment deleted after its delay: %v, want ErrSliceGone", err)
	}
	// The partition carries on above its new start.
	mustAppend(t, p, makeBatch(t, batchSpec{records: 2}))
	if got := readAll(t, p, p.LogStartOffset(), p.LogEndOffset()); len(got) != 1 {
		t.Fatalf("read %d batches after the deletion, want 1", len(got))
	}
}

// TestStartRemovesDeletedFilesLeftByACrash: files renamed for deletion
// and not yet removed when the broker died are removed by the next start,
// before the log is opened, and the log opens as it was.
func TestStartRemovesDeletedFilesLeftByACrash(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{SegmentBytes: 1000, FileDeleteDelay: time.Hour})
	q := mustCreate(t, st, "gone", 0, TopicConfig{FileDeleteDelay: time.Hour})
	for i := range 30 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 100 + i}))
	}
	mustAppend(t, q, makeBatch(t, batchSpec{records: 2}))
	if _, err := p.DeleteRecordsBefore(30); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	if err := p.checkpoint(); err != nil {
		t.Fatal(err)
	}
	leftover := deletedFiles(t, dir)
	var segmentFiles int
	for _, f := range leftover {
		if strings.HasSuffix(f, logSuffix+deletedFileSuffix) {
			segmentFiles++
		}
	}
	if segmentFiles < 2 {
		t.Fatalf("want deleted segments waiting, have %v", leftover)
	}
	start, end := p.LogStartOffset(), p.LogEndOffset()
	want, err := p.Read(start, 1<<20, end)
	if err != nil {
		t.Fatal(err)
	}

	crashed := crashCopy(t, dir) // the store stays open: no Close, no clean-shutdown marker
	st2 := openStore(t, crashed, Options{})
	if left := deletedFiles(t, crashed); len(left) > 0 {
		t.Fatalf("left after the start: %v", left)
	}
	if _, ok := st2.Partition("gone", 0); ok {
		t.Fatal("a deleted topic came back")
	}
	p2, ok := st2.Partition("t", 0)
	if !ok {
		t.Fatal("partition lost")
	}
	if p2.LogStartOffset() != start || p2.LogEndOffset() != end {
		t.Fatalf("after the start the log is [%d, %d), was [%d, %d)", p2.LogStartOffset(), p2.LogEndOffset(), start, end)
	}
	got, err := p2.Read(start, 1<<20, end)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the start the log reads %d bytes (%v), was %d", len(got), err, len(want))
	}
}

// TestShortDiskDeletesAtOnce: with less than shortSpaceShare of the data
// volume available, a deletion does not wait for file.delete.delay.ms;
// nor once a write failed for lack of space, which also runs the
// deletions already waiting (deleting is how a full disk gets space back).
func TestShortDiskDeletesAtOnce(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	var short atomic.Bool
	statfs := func(_ string, fs *unix.Statfs_t) error {
		fs.Blocks, fs.Bavail = 1000, 900
		if short.Load() {
			fs.Bavail = 10
		}
		return nil
	}
	st.del.statfs.Store(&statfs)
	p := mustCreate(t, st, "t", 0, TopicConfig{SegmentBytes: 1000, FileDeleteDelay: time.Hour})
	for range 30 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 100}))
	}
	if _, err := p.DeleteRecordsBefore(10); err != nil {
		t.Fatal(err)
	}
	if len(deletedFiles(t, dir)) == 0 {
		t.Fatal("with space to spare the deletion did not wait")
	}
	// A write fails for lack of space: what waits goes now.
	st.del.noteWriteError(&os.PathError{Op: "write", Path: "x", Err: unix.ENOSPC})
	waitUntil(t, "the waiting files to go after ENOSPC", 10*time.Second, func() bool {
		segs, _ := st.PendingDeletion()
		return len(deletedFiles(t, dir)) == 0 && segs == 0
	})
	// And for a while after it, nothing waits.
	if _, err := p.DeleteRecordsBefore(20); err != nil {
		t.Fatal(err)
	}
	if left := deletedFiles(t, dir); len(left) > 0 {
		t.Fatalf("right after ENOSPC a deletion waited: %v", left)
	}
	// Without a recent ENOSPC, a volume under 5 % free does not wait either.
	st.del.noSpaceAt.Store(0)
	short.Store(true)
	if _, err := p.DeleteRecordsBefore(40); err != nil {
		t.Fatal(err)
	}
	if left := deletedFiles(t, dir); len(left) > 0 {
		t.Fatalf("on a short volume a deletion waited: %v", left)
	}
	if segs, bytes := st.PendingDeletion(); segs != 0 || bytes != 0 {
		t.Fatalf("pending: %d segments, %d bytes", segs, bytes)
	}
}

// deleterLearnsOnlyFromWrites makes the deleter see plenty of free space,
// so that only a write's ENOSPC (noteWriteError) makes it delete early.
// The full-volume tests need that: when the deleter looked at the free
// space itself while their ballast was being written, it deleted the
// waiting segments there and then and the ballast took the space they
// freed (TestFullDiskAtARollGetsSpaceBack failed so about 1 run in 60
// with -cpu 1,2 under load, or found its first append succeeding).
func deleterLearnsOnlyFromWrites(st *Store) {
	plenty := func(_ string, fs *unix.Statfs_t) error {
		fs.Blocks, fs.Bavail = 1000, 900
		return nil
	}
	st.del.statfs.Store(&plenty)
}

// TestFullDiskGetsSpaceBackFromDeletedSegments: on a real full volume
// (a small tmpfs), segments deleted while space was plenty wait for their
// delay; once appends fail for lack of space they are removed, and the
// appends succeed again without waiting an hour.
func TestFullDiskGetsSpaceBackFromDeletedSegments(t *testing.T) {
	mnt := testenv.Tmpfs(t, 2, "the full-disk test")
	data := filepath.Join(mnt, "data")
	st, err := Open(data, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() }) // before the umount
	deleterLearnsOnlyFromWrites(st)
	p := mustCreate(t, st, "full", 0, TopicConfig{SegmentBytes: 64 << 10, FileDeleteDelay: time.Hour})
	for range 160 { // 640 KiB
		mustAppend(t, p, makeBatch(t, batchSpec{records: 4, valueSize: 1000}))
	}
	if _, err := p.DeleteRecordsBefore(p.LogEndOffset() - 40); err != nil {
		t.Fatal(err)
	}
	if _, bytes := st.PendingDeletion(); bytes < 400<<10 {
		t.Fatalf("%d bytes wait for their deletion, want the deleted segments' 500 KiB or so", bytes)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 4<<20), 0o644); !errors.Is(err, errNoSpace()) {
		t.Fatalf("filling the volume: %v, want ENOSPC", err)
	}
	failed := false
	waitUntil(t, "appends to work again on the full volume", 10*time.Second, func() bool {
		_, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 4, valueSize: 1000}), AppendOptions{})
		switch {
		case err == nil:
			return true
		case errors.Is(err, ErrStorage):
			failed = true
			return false
		default:
			t.Fatalf("append on a full volume: %v", err)
			return false
		}
	})
	if !failed {
		t.Fatal("no append failed: the volume was not full")
	}
	if segs, _ := st.PendingDeletion(); segs != 0 {
		t.Fatalf("%d deleted segments still wait on a full volume", segs)
	}
}

// TestCloseLeavesWhatItCannotRemoveInTime: a shutdown does not wait for
// the removal of thousands of files; past its budget it closes every
// descriptor and leaves the files, which the next start removes before
// opening the log.
func TestCloseLeavesWhatItCannotRemoveInTime(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{SegmentBytes: 1000, FileDeleteDelay: time.Hour})
	for i := range 30 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 100 + i}))
	}
	slices, ok, err := p.ReadSlices(0, 1<<20, p.LogEndOffset())
	if err != nil || !ok || len(slices) == 0 {
		t.Fatalf("%d slices, ok %v, %v", len(slices), ok, err)
	}
	if _, err := p.DeleteRecordsBefore(40); err != nil {
		t.Fatal(err)
	}
	start, end := p.LogStartOffset(), p.LogEndOffset()
	want, err := p.Read(start, 1<<20, end)
	if err != nil {
		t.Fatal(err)
	}
	st.del.closeBudget = -1 // no time to remove anything
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if len(deletedFiles(t, dir)) == 0 {
		t.Fatal("Close removed the files it had no time for")
	}
	w, _ := tcpPair(t)
	if _, err := slices[0].SendTo(rawConn(t, w)); !errors.Is(err, ErrSliceGone) {
		t.Fatalf("a slice of a deleted segment after Close: %v, want ErrSliceGone (its descriptor closed)", err)
	}
	st2 := openStore(t, dir, Options{})
	if left := deletedFiles(t, dir); len(left) > 0 {
		t.Fatalf("left after the next start: %v", left)
	}
	p2, _ := st2.Partition("t", 0)
	if got, err := p2.Read(start, 1<<20, end); err != nil || !bytes.Equal(got, want) || p2.LogStartOffset() != start {
		t.Fatalf("after the start: log start %d (was %d), %d bytes (%v), was %d", p2.LogStartOffset(), start, len(got), err, len(want))
	}
}

// TestFsyncOutOfSpaceRunsWaitingDeletions: a full disk may fail the
// writeback (an fsync) rather than the write; that too runs the deletions
// waiting for their delay.
func TestFsyncOutOfSpaceRunsWaitingDeletions(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{SegmentBytes: 1000, FileDeleteDelay: time.Hour})
	for range 30 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 100}))
	}
	if _, err := p.DeleteRecordsBefore(30); err != nil {
		t.Fatal(err)
	}
	if len(deletedFiles(t, dir)) == 0 {
		t.Fatal("no file waits for its deletion")
	}
	st.SetSyncFault(func(*os.File) error { return unix.ENOSPC })
	if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 2}), AppendOptions{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("an append whose fsync fails with ENOSPC: %v, want ErrStorage", err)
	}
	st.SetSyncFault(nil)
	waitUntil(t, "the waiting files to go after an fsync's ENOSPC", 10*time.Second, func() bool {
		segs, _ := st.PendingDeletion()
		return len(deletedFiles(t, dir)) == 0 && segs == 0
	})
}

// TestFullDiskAtARollGetsSpaceBack: the first write to meet the full
// volume is a roll's (the old segment's index files, written for the
// first time since no checkpoint has run), not an append's. That failure
// too must run the deletions waiting for their delay; before, it did not,
// and every later append failed at the same roll until the delay ran out.
func TestFullDiskAtARollGetsSpaceBack(t *testing.T) {
	mnt := testenv.Tmpfs(t, 2, "the full-disk test")
	st, err := Open(filepath.Join(mnt, "data"), Options{Logger: quietLogger(), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() }) // before the umount
	deleterLearnsOnlyFromWrites(st)
	old := mustCreate(t, st, "old", 0, TopicConfig{SegmentBytes: 64 << 10, FileDeleteDelay: time.Hour})
	for range 160 { // 640 KiB
		mustAppend(t, old, makeBatch(t, batchSpec{records: 4, valueSize: 1000}))
	}
	if _, err := old.DeleteRecordsBefore(old.LogEndOffset() - 40); err != nil {
		t.Fatal(err)
	}
	if _, bytes := st.PendingDeletion(); bytes < 400<<10 {
		t.Fatalf("%d bytes wait for their deletion, want the deleted segments' 500 KiB or so", bytes)
	}
	// Two batches fill a segment of the rolling partition exactly, each
	// with index entries kept in memory only: the third append rolls, and
	// the roll writes the index files first.
	batch := makeBatch(t, batchSpec{records: 1, valueSize: 100})
	rolling := mustCreate(t, st, "rolling", 0, TopicConfig{SegmentBytes: int64(2 * len(batch)), IndexIntervalBytes: 1, FileDeleteDelay: time.Hour})
	mustAppend(t, rolling, makeBatch(t, batchSpec{records: 1, valueSize: 100}))
	mustAppend(t, rolling, makeBatch(t, batchSpec{records: 1, valueSize: 100}))
	if n := len(rolling.segments); n != 1 {
		t.Fatalf("%d segments before the roll, want 1", n)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 4<<20), 0o644); !errors.Is(err, errNoSpace()) {
		t.Fatalf("filling the volume: %v, want ENOSPC", err)
	}
	_, err = rolling.Append(context.Background(), makeBatch(t, batchSpec{records: 1, valueSize: 100}), AppendOptions{})
	if !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), "rolling") {
		t.Fatalf("the first append on the full volume: %v, want a storage error of its roll", err)
	}
	waitUntil(t, "appends to work again on the full volume", 10*time.Second, func() bool {
		_, err := rolling.Append(context.Background(), makeBatch(t, batchSpec{records: 1, valueSize: 100}), AppendOptions{})
		if err != nil && !errors.Is(err, ErrStorage) {
			t.Fatalf("append on a full volume: %v", err)
		}
		return err == nil
	})
	if segs, _ := st.PendingDeletion(); segs != 0 {
		t.Fatalf("%d deleted segments still wait on a full volume", segs)
	}
}
