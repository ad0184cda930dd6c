package storage

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

func TestKernelAtLeast(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    bool
	}{
		{"5.8.0", true},
		{"5.7.19-generic", false},
		{"5.10.0-28-amd64", true},
		{"6.1.0-18-amd64", true},
		{"4.19.0", false},
		{"6.18.44-fc-v1272", true},
		{"5.8-rc1", true},
		{"garbage", false},
		{"", false},
	} {
		if got := kernelAtLeast(tc.release, 5, 8); got != tc.want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v, want %v", tc.release, got, tc.want)
		}
	}
}

func TestParseSyncMethod(t *testing.T) {
	for in, want := range map[string]SyncMethod{"": SyncAuto, "auto": SyncAuto, " SyncFS ": SyncFS, "fdatasync": SyncFdatasync} {
		if got, err := ParseSyncMethod(in); err != nil || got != want {
			t.Errorf("ParseSyncMethod(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseSyncMethod("fsync"); err == nil {
		t.Error("ParseSyncMethod(fsync) accepted an unknown method")
	}
	if _, err := Open(t.TempDir(), Options{SyncMethod: "sometimes", Logger: quietLogger()}); err == nil {
		t.Error("Open accepted an unknown sync method")
	}
}

// The root file system is not a data volume of its own; /proc is
// always another file system.
func TestOwnFileSystem(t *testing.T) {
	if own, err := ownFileSystem("/", "/"); err != nil || own {
		t.Errorf(`ownFileSystem("/") = %v, %v; want false`, own, err)
	}
	if own, err := ownFileSystem("/proc", "/"); err != nil || !own {
		t.Errorf(`ownFileSystem("/proc") = %v, %v; want true`, own, err)
	}
	if _, err := ownFileSystem("/does/not/exist", "/"); err == nil {
		t.Error("no error for a missing directory")
	}
	// Forced methods are kept whatever the file system; auto follows it.
	dir := t.TempDir()
	own, err := ownFileSystem(dir, "/")
	if err != nil {
		t.Fatal(err)
	}
	for m, want := range map[SyncMethod]SyncMethod{SyncFdatasync: SyncFdatasync, SyncFS: SyncFS, SyncAuto: map[bool]SyncMethod{true: SyncFS, false: SyncFdatasync}[own]} {
		if got, err := chooseSyncMethod(m, dir); err != nil || got != want {
			t.Errorf("chooseSyncMethod(%s, %s) = %s, %v; want %s", m, dir, got, err, want)
		}
	}
}

// syncfsStore opens a store whose rounds syncfs, counting the syncfs
// calls and failing the test on any per-file fdatasync while fdatasyncs
// is unset.
func syncfsStore(t *testing.T) (st *Store, syncfsCalls, fdatasyncs *atomic.Int64, fail *atomic.Pointer[error]) {
	t.Helper()
	st = openStore(t, t.TempDir(), Options{SyncMethod: SyncFS})
	if st.SyncMethod() != SyncFS {
		t.Fatalf("sync method %s, want syncfs", st.SyncMethod())
	}
	syncfsCalls, fdatasyncs = new(atomic.Int64), new(atomic.Int64)
	fail = new(atomic.Pointer[error])
	st.syncFS = func(f *os.File) error {
		syncfsCalls.Add(1)
		if err := fail.Swap(nil); err != nil {
			return *err
		}
		return syncfs(f)
	}
	st.syncData = func(f *os.File) error {
		fdatasyncs.Add(1)
		return fdatasync(f)
	}
	return st, syncfsCalls, fdatasyncs, fail
}

// Under syncfs a round of several partitions is one syncfs and no
// fdatasync, and the appends are durable when answered.
func TestSyncFSRoundIsOneSyncfs(t *testing.T) {
	st, calls, fdatasyncs, _ := syncfsStore(t)
	var parts []*Partition
	for i := range int32(4) {
		parts = append(parts, mustCreate(t, st, "fs", i, TopicConfig{}))
	}
	before := calls.Load()
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 2}), AppendOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, p := range parts {
		if hw := p.HighWatermark(); hw != 2 {
			t.Errorf("%s: high watermark %d after an acknowledged append, want 2", p.Dir(), hw)
		}
	}
	if n := calls.Load() - before; n < 1 || n > 4 {
		t.Errorf("%d syncfs calls for four appends, want 1 to 4 (one per round)", n)
	}
	if n := fdatasyncs.Load(); n != 0 {
		t.Errorf("%d fdatasyncs under syncfs", n)
	}
}

// A failed syncfs fails every partition of its round (it cannot tell
// whose data the error hit) and turns the store to fdatasync, whose
// per-file errors name the partition; the next appends succeed.
func TestSyncFSFailureFailsTheRoundAndFallsBackToFdatasync(t *testing.T) {
	st, calls, fdatasyncs, fail := syncfsStore(t)
	p := mustCreate(t, st, "fs", 0, TopicConfig{})
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1}))
	eio := error(&os.PathError{Op: "syncfs", Path: st.dir, Err: syscall.EIO})
	fail.Store(&eio)
	before := calls.Load()
	_, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{})
	if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("append through a failed syncfs: %v, want ErrStorage wrapping EIO", err)
	}
	if calls.Load() == before {
		t.Fatal("the failed append made no syncfs call")
	}
	if m := st.SyncMethod(); m != SyncFdatasync {
		t.Errorf("sync method %s after a failed syncfs, want fdatasync", m)
	}
	if hw := p.HighWatermark(); hw != 1 {
		t.Errorf("high watermark %d, want 1: the failed append is not durable", hw)
	}
	after := calls.Load()
	res := mustAppend(t, p, makeBatch(t, batchSpec{records: 1}))
	if res.BaseOffset != 1 {
		t.Errorf("append after the failure at offset %d, want 1 (the failed one was discarded)", res.BaseOffset)
	}
	if fdatasyncs.Load() == 0 || calls.Load() != after {
		t.Errorf("after the failure: %d fdatasyncs and %d more syncfs calls, want fdatasyncs only", fdatasyncs.Load(), calls.Load()-after)
	}
}

// SetSyncFault sees every file a round covers, also under syncfs.
func TestSyncFaultUnderSyncFS(t *testing.T) {
	st, calls, _, _ := syncfsStore(t)
	p := mustCreate(t, st, "fs", 0, TopicConfig{})
	injected := errors.New("injected EIO")
	st.SetSyncFault(func(*os.File) error { return injected })
	before := calls.Load()
	if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{}); !errors.Is(err, injected) {
		t.Fatalf("append under a sync fault: %v, want the injected error", err)
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("%d syncfs calls under a sync fault", n)
	}
	st.SetSyncFault(nil)
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1}))
	if calls.Load() == before {
		t.Error("no syncfs once the fault was removed")
	}
}

// An append is failed only by a round that covered it. A failure an
// earlier round recorded stays on the partition until a round syncs data
// of it again; a round prepared before the append (here one that found
// nothing of the partition to sync, held in its syncfs) wakes the
// append's wait when it ends, and must not hand it that old failure.
func TestOldSyncFailureDoesNotFailALaterAppend(t *testing.T) {
	st, _, _, _ := syncfsStore(t)
	p := mustCreate(t, st, "fs", 0, TopicConfig{})
	q := mustCreate(t, st, "fs", 1, TopicConfig{})
	injected := errors.New("injected EIO")
	st.SetSyncFault(func(*os.File) error { return injected })
	if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{}); !errors.Is(err, injected) {
		t.Fatalf("append under a sync fault: %v, want the injected error", err)
	}
	st.SetSyncFault(nil)

	// A round of p (nothing to sync) and q (one append), held in syncfs.
	entered, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	st.syncFS = func(f *os.File) error {
		if held.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return syncfs(f)
	}
	st.sync.enrolQuietly(p)
	qDone := make(chan error, 1)
	go func() {
		_, err := q.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{})
		qDone <- err
	}()
	<-entered

	// p's append waits on the round under way and is enrolled for the next.
	pDone := make(chan error, 1)
	go func() {
		_, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{})
		pDone <- err
	}()
	waitFor(t, "p enrolled for the next round", func() bool {
		st.sync.mu.Lock()
		defer st.sync.mu.Unlock()
		_, ok := st.sync.enroled[p]
		return ok
	})
	close(release)
	if err := <-qDone; err != nil {
		t.Fatalf("q's append: %v", err)
	}
	if err := <-pDone; err != nil {
		t.Fatalf("an append after the failure, synced by a later round: %v", err)
	}
	if hw := p.HighWatermark(); hw != 1 {
		t.Errorf("high watermark %d, want 1", hw)
	}
}
