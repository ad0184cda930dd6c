package replica

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// syncGatedLog is a follower log whose writes become durable only when
// the test opens the gate: the storage engine's two steps (write, then
// wait for the sync round) with the sync round under the test's control.
type syncGatedLog struct {
	*memLog
	mu      sync.Mutex
	durable int64
	gate    chan struct{}
}

func newSyncGatedLog() *syncGatedLog {
	return &syncGatedLog{memLog: &memLog{}, gate: make(chan struct{})}
}

func (l *syncGatedLog) WriteAsFollowerAt(at int64, batches []byte) (func(context.Context) error, error) {
	if leo := l.LogEndOffset(); leo != at {
		return nil, fmt.Errorf("log ends at %d, write expects %d", leo, at)
	}
	if err := l.AppendAsFollower(context.Background(), batches); err != nil {
		return nil, err
	}
	end := l.LogEndOffset()
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	return func(ctx context.Context) error {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		l.mu.Lock()
		l.durable = max(l.durable, end)
		l.mu.Unlock()
		return nil
	}, nil
}

func (l *syncGatedLog) DurableEnd() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

func (l *syncGatedLog) WaitDurable(context.Context) error { return nil }

// open ends the sync rounds of everything written so far; later writes
// wait for the next open.
func (l *syncGatedLog) open() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.gate)
	l.gate = make(chan struct{})
}

// A follower fetches on while its sync round runs, reports only what is
// durable as its fetch offset (the leader's high watermark never passes
// it), and reports new durable data at once, even while its next fetch is
// parked at the leader with nothing to read.
func TestFollowerFetchesWhileSyncingAndReportsDurableEnd(t *testing.T) {
	fl := newFakeLeader(t)
	leader := &memLog{}
	leader.appendLeader(t, 0, 5, "a")
	lp := leaderOf(t, fl, leader, 0)
	follower := newSyncGatedLog()
	// A parked fetch waits 30 s: only the report sent behind it can move
	// the high watermark within the test's deadlines.
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 30 * time.Second, Backoff: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)
	f.Add(tp0, 0, follower)

	checkFor(t, 5*time.Second, sameLog(follower.memLog, leader))
	// More data while the first write's sync round has not ended: the
	// follower fetches it all the same.
	leader.appendLeader(t, 0, 5, "b")
	lp.tracker.Appended(leader.LogEndOffset())
	checkFor(t, 5*time.Second, sameLog(follower.memLog, leader))
	time.Sleep(50 * time.Millisecond) // fetches go on; none may count what is not durable
	if hw := lp.tracker.HighWatermark(); hw != 0 {
		t.Fatalf("leader's high watermark %d with nothing durable on the follower", hw)
	}
	if hw := follower.HighWatermark(); hw != 0 {
		t.Fatalf("follower's high watermark %d past its durable end 0", hw)
	}

	start := time.Now()
	follower.open()
	checkFor(t, 5*time.Second, func() error {
		if hw := lp.tracker.HighWatermark(); hw != 10 {
			return fmt.Errorf("leader hw %d, want 10", hw)
		}
		return nil
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the durable end reached the leader after %v", d)
	}
	// An acks=all producer of the next record is answered once the
	// follower's next sync round ends, not at the parked fetch's MaxWait.
	leader.appendLeader(t, 0, 1, "c")
	lp.tracker.Appended(leader.LogEndOffset())
	checkFor(t, 5*time.Second, sameLog(follower.memLog, leader))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- lp.tracker.WaitReplicated(ctx, 10)
	}()
	select {
	case err := <-done:
		t.Fatalf("acks=all answered (%v) before the follower's sync round ended", err)
	case <-time.After(100 * time.Millisecond):
	}
	follower.open()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acks=all not answered 5 s after the follower's sync round ended")
	}
}
