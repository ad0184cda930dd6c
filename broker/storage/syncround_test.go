package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedSync is a syncData hook whose calls wait for release; it counts
// the calls per file.
type gatedSync struct {
	release chan struct{}
	mu      sync.Mutex
	calls   map[string]int
	entered chan string
}

func newGatedSync() *gatedSync {
	return &gatedSync{release: make(chan struct{}), calls: map[string]int{}, entered: make(chan string, 64)}
}

func (g *gatedSync) sync(f *os.File) error {
	g.mu.Lock()
	g.calls[filepath.Base(filepath.Dir(f.Name()))]++
	g.mu.Unlock()
	g.entered <- f.Name()
	<-g.release
	return fdatasync(f)
}

func (g *gatedSync) count(partitionDir string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[partitionDir]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Appends that arrive while a sync round runs share the next round, across
// partitions: one round, one fsync per partition's file, not one round (or
// one fsync stream) per partition.
func TestSyncRoundIsSharedAcrossPartitions(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	parts := []*Partition{mustCreate(t, st, "s", 0, TopicConfig{})}
	for i := int32(1); i <= 4; i++ {
		parts = append(parts, mustCreate(t, st, "s", i, TopicConfig{}))
	}
	g := newGatedSync()
	st.syncData = g.sync
	released := false
	release := func() {
		if !released {
			released = true
			close(g.release)
		}
	}
	// A failed check must not leave the round blocked: the store's Close
	// would wait for it until the test binary's timeout.
	t.Cleanup(release)
	before := st.sync.rounds.Load()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	appendTo := func(p *Partition) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	appendTo(parts[0])
	<-g.entered // round 1 is running, for partition 0 alone
	for _, p := range parts[1:] {
		appendTo(p)
	}
	// The four others wait for the next round instead of fsyncing now.
	// Partition 0 may be enrolled there too: its waiter enrols it again
	// when it starts waiting, which can be after round 1 took it.
	waitFor(t, "four partitions enrolled for the next round", func() bool {
		st.sync.mu.Lock()
		defer st.sync.mu.Unlock()
		for _, p := range parts[1:] {
			if _, ok := st.sync.enroled[p]; !ok {
				return false
			}
		}
		return true
	})
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Partition 0 enrolled again after round 2 began gets a round of its
	// own: 3 then, never one per partition.
	p0Again := g.count(filepath.Base(parts[0].Dir())) == 2
	if got := st.sync.rounds.Load() - before; got != 2 && (!p0Again || got != 3) {
		t.Errorf("%d sync rounds for five partitions, want 2", got)
	}
	for i, p := range parts {
		if n := g.count(filepath.Base(p.Dir())); n != 1 && (i > 0 || n != 2) {
			t.Errorf("%s: %d fsyncs, want 1 (partition 0: 1 or 2)", p.Dir(), n)
		}
		if p.HighWatermark() != 1 {
			t.Errorf("%s: high watermark %d, want 1 (durable)", p.Dir(), p.HighWatermark())
		}
	}
}

// A failed round fails the appends that waited for it, each partition on
// its own, and the next round works again.
func TestSyncRoundFailureIsPerPartition(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	bad := mustCreate(t, st, "bad", 0, TopicConfig{})
	good := mustCreate(t, st, "good", 0, TopicConfig{})
	injected := errors.New("injected EIO")
	var failing atomic.Bool
	failing.Store(true)
	st.syncData = func(f *os.File) error {
		if failing.Load() && filepath.Base(filepath.Dir(f.Name())) == "bad-0" {
			return injected
		}
		return fdatasync(f)
	}
	if _, err := bad.Append(context.Background(), makeBatch(t, batchSpec{records: 2}), AppendOptions{}); !errors.Is(err, ErrStorage) || !errors.Is(err, injected) {
		t.Fatalf("append with a failing fsync: %v, want ErrStorage wrapping the fsync error", err)
	}
	mustAppend(t, good, makeBatch(t, batchSpec{records: 2}))
	if bad.LogEndOffset() != 0 || good.HighWatermark() != 2 {
		t.Fatalf("bad ends at %d (want 0), good's high watermark %d (want 2)", bad.LogEndOffset(), good.HighWatermark())
	}
	failing.Store(false)
	if res := mustAppend(t, bad, makeBatch(t, batchSpec{records: 1})); res.BaseOffset != 0 {
		t.Fatalf("append after the failure at %d, want 0", res.BaseOffset)
	}
}

// A checkpoint waits for its data's fsync without the partition lock:
// appends and reads go on meanwhile.
func TestCheckpointWaitsForFsyncWithoutTheLock(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{FlushPolicy: FlushInterval, FlushInterval: time.Hour})
	p := mustCreate(t, st, "cp", 0, TopicConfig{})
	mustAppend(t, p, makeBatch(t, batchSpec{records: 3}))
	g := newGatedSync()
	st.syncData = g.sync
	done := make(chan error, 1)
	go func() { done <- p.checkpoint() }()
	<-g.entered // the checkpoint's data fsync is in progress
	appended := make(chan error, 1)
	go func() {
		_, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{})
		if err == nil {
			_, err = p.Read(0, 1<<20, p.LogEndOffset())
		}
		appended <- err
	}()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an append waited for the checkpoint's fsync")
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rp, err := readRecoveryPoint(p.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if rp.offset != 3 {
		t.Fatalf("recovery point %d, want 3 (the log end when the checkpoint began)", rp.offset)
	}
}

// The observer hears of an append when it is written, before its fsync,
// and of the durable end when the round ends.
func TestObserverSeesWritesBeforeFsync(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "obs", 0, TopicConfig{})
	mustAppend(t, p, makeBatch(t, batchSpec{records: 2}))
	type seen struct{ logEnd, ackEnd int64 }
	calls := make(chan seen, 16)
	p.SetObserver(func(logEnd, ackEnd int64) { calls <- seen{logEnd, ackEnd} })
	if got := <-calls; got != (seen{2, 2}) {
		t.Fatalf("first call %+v, want the current ends {2 2}", got)
	}
	g := newGatedSync()
	st.syncData = g.sync
	done := make(chan error, 1)
	go func() {
		_, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 3}), AppendOptions{})
		done <- err
	}()
	if got := <-calls; got != (seen{5, 2}) {
		t.Fatalf("on write: %+v, want {5 2}", got)
	}
	<-g.entered
	close(g.release)
	if got := <-calls; got != (seen{5, 5}) {
		t.Fatalf("after the round: %+v, want {5 5}", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p.SetObserver(nil)
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1}))
	select {
	case got := <-calls:
		t.Fatalf("removed observer called with %+v", got)
	default:
	}
}

// OnSyncRound is told of every round with the files it fsynced: the
// figures behind the broker's log flush metrics.
func TestOnSyncRoundReportsEachRound(t *testing.T) {
	type report struct {
		took  time.Duration
		files int
	}
	reports := make(chan report, 64)
	st := openStore(t, t.TempDir(), Options{OnSyncRound: func(took time.Duration, files int) {
		reports <- report{took, files}
	}})
	p := mustCreate(t, st, "r", 0, TopicConfig{})
	next := func() report {
		t.Helper()
		select {
		case r := <-reports:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no sync round reported")
			return report{}
		}
	}
	// Rounds before the append (a checkpoint's) have nothing to sync.
	for len(reports) > 0 {
		<-reports
	}
	mustAppend(t, p, makeBatch(t, batchSpec{records: 1}))
	files := 0
	for files == 0 {
		r := next()
		if r.took <= 0 {
			t.Errorf("round reported a duration of %v", r.took)
		}
		files = r.files
	}
	if files != 1 {
		t.Errorf("the round of one append to one segment reported %d files, want 1", files)
	}
	// A round with nothing new to sync reports no file.
	st.sync.enrol(p)
	if r := next(); r.files != 0 {
		t.Errorf("a round with nothing to sync reported %d files", r.files)
	}
}

// Once the store is stopping, an append runs its sync round itself (the
// loop is ending); those rounds still run one at a time, as the loop's do:
// two rounds fsyncing one file at once could be told of one write-back
// error only once between them, and the other would count the data
// durable.
func TestRoundsRunOneAtATimeOnceStopping(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "s", 0, TopicConfig{})
	g := newGatedSync()
	st.syncData = g.sync
	var once sync.Once
	release := func() { once.Do(func() { close(g.release) }) }
	t.Cleanup(release)
	st.sync.mu.Lock()
	st.sync.stopped = true // what the loop sets when the store stops
	st.sync.mu.Unlock()

	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{})
			errs <- err
		}()
	}
	<-g.entered // a round is fsyncing the partition's segment
	select {
	case name := <-g.entered:
		t.Fatalf("a second sync round fsynced %s while the first was under way", name)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if hw := p.HighWatermark(); hw != 2 {
		t.Errorf("high watermark %d, want 2 (both appends durable)", hw)
	}
}
