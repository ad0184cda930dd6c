package replica

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// fullLog is a follower's log whose writes fail as on a full disk while
// full is set.
type fullLog struct {
	*memLog
	mu       sync.Mutex
	full     bool
	attempts int
}

func (l *fullLog) AppendAsFollower(ctx context.Context, b []byte) error {
	l.mu.Lock()
	l.attempts++
	full := l.full
	l.mu.Unlock()
	if full {
		return fmt.Errorf("%w: writing segment: %w", storage.ErrStorage, syscall.ENOSPC)
	}
	return l.memLog.AppendAsFollower(ctx, b)
}

func (l *fullLog) writes() int { l.mu.Lock(); defer l.mu.Unlock(); return l.attempts }

// One partition whose log cannot be written must not hold the others of
// the same leader: it is backed off alone (and reported full once), the
// others go on replicating and taking the leader's high watermark. Before,
// its error failed the whole fetch round and the fetcher paused Backoff
// (here an hour) after every round that included it.
func TestFailedPartitionWriteDoesNotStallOthers(t *testing.T) {
	fl := newFakeLeader(t)
	leader := &memLog{}
	leader.appendLeader(t, 0, 2, "a")
	lp := leaderOf(t, fl, leader, 0)

	tp1 := TopicPartition{"orders", 1}
	leader1 := &memLog{}
	leader1.appendLeader(t, 0, 3, "b")
	tr1, err := NewLeader(LeaderConfig{LocalID: 1, MinISR: 2, SetHighWatermark: leader1.SetHighWatermark},
		metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}, leader1.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fl.set(tp1, &leaderPart{log: leader1, tracker: tr1})

	var (
		mu      sync.Mutex
		reports []TopicPartition
	)
	// Longer than any test run: a partition tried twice was not backed
	// off, and Close ends the fetcher's pauses.
	const backoff = time.Hour
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 50 * time.Millisecond, Backoff: backoff,
		OnDiskFull: func(tp TopicPartition, _ int32) {
			mu.Lock()
			reports = append(reports, tp)
			mu.Unlock()
		},
		Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)

	follower := &memLog{}
	full := &fullLog{memLog: &memLog{}, full: true}
	f.Add(tp0, 0, follower)
	f.Add(tp1, 0, full)
	checkFor(t, 10*time.Second, func() error {
		if full.writes() == 0 {
			return fmt.Errorf("the full partition's write was not tried")
		}
		return nil
	})
	// Several rounds, each well under the backoff: every record appended
	// on the leader reaches the healthy follower, and the leader's high
	// watermark, which needs the follower's copy, follows.
	for i := range 5 {
		leader.appendLeader(t, 0, 1, fmt.Sprint("c", i))
		lp.tracker.Appended(leader.LogEndOffset())
		checkFor(t, 10*time.Second, sameLog(follower, leader))
		want := leader.LogEndOffset()
		checkFor(t, 10*time.Second, func() error {
			if hw := lp.tracker.HighWatermark(); hw != want {
				return fmt.Errorf("leader's high watermark %d, want %d", hw, want)
			}
			return nil
		})
	}
	// The full partition was tried once, not on every round, and nothing
	// reached its log.
	if n := full.writes(); n != 1 {
		t.Fatalf("the full partition's write was tried %d times within its backoff, want 1", n)
	}
	if leo := full.LogEndOffset(); leo != 0 {
		t.Fatalf("the full partition's log ends at %d, want 0", leo)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || reports[0] != tp1 {
		t.Fatalf("disk-full reports %v, want one for %s", reports, tp1)
	}
}

// A partition backed off after a failed write is fetched again once its
// backoff has passed, and catches up when its log can be written. Its
// failures in a row are logged as one warning, and the first of the
// next run of failures as another.
func TestFailedPartitionRetriedAfterBackoff(t *testing.T) {
	fl := newFakeLeader(t)
	leader := &memLog{}
	leader.appendLeader(t, 0, 4, "a")
	lp := leaderOf(t, fl, leader, 0)
	warnings := &countingHandler{level: slog.LevelWarn}
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 50 * time.Millisecond, Backoff: 100 * time.Millisecond,
		Logger: slog.New(warnings)})
	t.Cleanup(f.Close)
	full := &fullLog{memLog: &memLog{}, full: true}
	setFull := func(v bool) {
		full.mu.Lock()
		full.full = v
		full.mu.Unlock()
	}
	tries := func(n int) func() error {
		want := full.writes() + n
		return func() error {
			if got := full.writes(); got < want {
				return fmt.Errorf("write tried %d times, want %d", got, want)
			}
			return nil
		}
	}
	f.Add(tp0, 0, full)
	checkFor(t, 10*time.Second, tries(3))
	if n := warnings.count(); n != 1 {
		t.Fatalf("%d warnings for 3 failures in a row, want 1", n)
	}
	setFull(false)
	checkFor(t, 10*time.Second, sameLog(full.memLog, leader))

	setFull(true)
	leader.appendLeader(t, 0, 1, "b")
	lp.tracker.Appended(leader.LogEndOffset())
	checkFor(t, 10*time.Second, tries(2))
	if n := warnings.count(); n != 2 {
		t.Fatalf("%d warnings after a second run of failures, want 2", n)
	}
	setFull(false)
	checkFor(t, 10*time.Second, sameLog(full.memLog, leader))
}

// countingHandler counts the records at level or above.
type countingHandler struct {
	level slog.Level
	mu    sync.Mutex
	n     int
}

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *countingHandler) Handle(context.Context, slog.Record) error {
	h.mu.Lock()
	h.n++
	h.mu.Unlock()
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) count() int                         { h.mu.Lock(); defer h.mu.Unlock(); return h.n }
