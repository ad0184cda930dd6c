package replica

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// TestISRCheckSkipsOnlyWhatCannotBeDue runs two trackers of one partition
// side by side on the same fetches: one checked on every tick of the ISR
// check as before ISRCheckDue existed, the other only when ISRCheckDue
// says a change can be due (as Manager.proposeISRChanges does). They must
// propose the same changes at the same ticks: a follower that stops
// fetching leaves the ISR on the first tick past replica.lag.time.max.ms
// after it was last caught up, and joins again once it has caught up; and
// the second must have skipped most ticks.
func TestISRCheckSkipsOnlyWhatCannotBeDue(t *testing.T) {
	every := newLeaderFixture(t, []int32{1, 2, 3}, 1, 0)
	skipping := newLeaderFixture(t, []int32{1, 2, 3}, 1, 0)
	both := []*leaderFixture{every, skipping}
	const tick = 500 * time.Millisecond // the manager's ISRInterval
	eligible := func(int32) bool { return true }
	var leo int64
	var stoppedAt, shrunkAt, joinedAt time.Time
	checked, skipped := 0, 0
	for i := range 120 { // 60 s of ticks
		now := every.clock.now
		// Follower 2 fetches to the end every tick; follower 3 does
		// for the first 3 s, then stops until 25 s, then catches up.
		if i%4 == 0 {
			leo += 10
		}
		for _, f := range both {
			f.Appended(leo)
			f.fetched(t, 2, leo)
			if i < 6 || i >= 50 {
				f.fetched(t, 3, leo)
			}
		}
		if i == 5 {
			stoppedAt = now
		}
		want, wantOK := every.ProposeISRChangeAt(now, eligible)
		var got ISRChange
		var gotOK bool
		if skipping.ISRCheckDue(now) {
			checked++
			got, gotOK = skipping.ProposeISRChangeAt(now, eligible)
		} else {
			skipped++
		}
		if gotOK != wantOK || !slices.Equal(got.NewISR, want.NewISR) {
			t.Fatalf("tick %d (%v after follower 3 stopped): checked every tick %v %v, skipping %v %v",
				i, now.Sub(stoppedAt), want.NewISR, wantOK, got.NewISR, gotOK)
		}
		if wantOK {
			// The controller commits the change at once.
			for _, f := range both {
				p := metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, ISR: want.NewISR, PartitionEpoch: f.newest.PartitionEpoch + 1}
				if err := f.Update(p); err != nil {
					t.Fatal(err)
				}
			}
			switch {
			case slices.Equal(want.NewISR, []int32{1, 2}) && shrunkAt.IsZero():
				shrunkAt = now
			case slices.Equal(want.NewISR, []int32{1, 2, 3}) && !shrunkAt.IsZero():
				joinedAt = now
			default:
				t.Fatalf("unexpected change %v at tick %d", want.NewISR, i)
			}
		}
		for _, f := range both {
			f.clock.advance(tick)
		}
	}
	// Follower 3 was last caught up at its last fetch (tick 5); it
	// leaves on the first tick more than LagTimeMax (10 s) later, tick
	// 26, and joins on the tick it has caught up again (50).
	if shrunkAt.IsZero() || shrunkAt.Sub(stoppedAt) != 21*tick {
		t.Fatalf("follower 3 left the ISR %v after its last fetch (zero: never), want 10.5s", shrunkAt.Sub(stoppedAt))
	}
	if joinedAt.IsZero() || joinedAt.Sub(stoppedAt) != 45*tick {
		t.Fatalf("follower 3 joined the ISR %v after it stopped (zero: never), want 22.5s", joinedAt.Sub(stoppedAt))
	}
	if skipped < 2*checked {
		t.Fatalf("checked %d ticks, skipped %d: the check skips nothing", checked, skipped)
	}
}

// TestISRCheckDueWhenAReportIs: a failed log or a full disk makes the
// check due at once, however recently the followers were caught up, and
// so does a new partition state.
func TestISRCheckDueWhenAReportIs(t *testing.T) {
	quiet := func(t *testing.T) *leaderFixture {
		t.Helper()
		f := newLeaderFixture(t, []int32{1, 2, 3}, 1, 0)
		f.Appended(10)
		f.fetched(t, 2, 10)
		f.fetched(t, 3, 10)
		if _, ok := f.ProposeISRChangeAt(f.clock.now, func(int32) bool { return true }); ok {
			t.Fatal("a change with every follower caught up")
		}
		if f.ISRCheckDue(f.clock.now) || f.ISRCheckDue(f.clock.now.Add(10*time.Second-time.Nanosecond)) {
			t.Fatal("due within replica.lag.time.max.ms of every follower's fetch")
		}
		if !f.ISRCheckDue(f.clock.now.Add(10 * time.Second)) {
			t.Fatal("not due replica.lag.time.max.ms after the followers' fetch")
		}
		return f
	}
	t.Run("log cut", func(t *testing.T) {
		f := quiet(t)
		f.LogCut(5, true)
		if !f.ISRCheckDue(f.clock.now) {
			t.Fatal("not due after a cut")
		}
		if _, ok := f.LogFailureDue(); !ok {
			t.Fatal("no log failure report due")
		}
		// Reported and then failing, it stays due.
		f.LogFailureReported(fmt.Errorf("timed out"))
		f.ProposeISRChangeAt(f.clock.now, func(int32) bool { return true })
		if !f.ISRCheckDue(f.clock.now) {
			t.Fatal("not due with a failed log still to report")
		}
	})
	t.Run("full disk", func(t *testing.T) {
		f := quiet(t)
		f.WriteFailed(fmt.Errorf("%w: %w", storage.ErrStorage, &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}))
		if !f.ISRCheckDue(f.clock.now) {
			t.Fatal("not due after ENOSPC")
		}
		if _, ok := f.DiskFullDue(); !ok {
			t.Fatal("no full-disk report due")
		}
	})
	t.Run("new replica", func(t *testing.T) {
		f := quiet(t)
		p := metadata.Partition{Replicas: []int32{1, 2, 3, 4}, Leader: 1, LeaderEpoch: 4, ISR: []int32{1, 2, 3}, PartitionEpoch: 8}
		if err := f.Update(p); err != nil {
			t.Fatal(err)
		}
		if !f.ISRCheckDue(f.clock.now) {
			t.Fatal("not due after a replica was added")
		}
		f.fetched(t, 4, 10)
		ch, ok := f.ProposeISRChangeAt(f.clock.now, func(int32) bool { return true })
		if !ok || !slices.Equal(ch.NewISR, []int32{1, 2, 3, 4}) {
			t.Fatalf("caught-up replica 4 not added: %v %v", ch.NewISR, ok)
		}
		if !f.ISRCheckDue(f.clock.now) {
			t.Fatal("not due with a change in flight")
		}
	})
}

// TestCaughtUpTimeNeverMovesBack: two fetches of one follower that pass
// each other with their times (fetches without a session run at once)
// leave the later caught-up time, which ISRCheckDue's argument counts on.
func TestCaughtUpTimeNeverMovesBack(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2, 3}, 1, 0)
	f.Appended(10)
	t0 := f.clock.now
	for _, at := range []time.Duration{time.Second, 0} {
		for _, id := range []int32{2, 3} {
			if _, err := f.FetchedAt(id, 10, t0.Add(at)); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.ProposeISRChangeAt(t0.Add(time.Second), func(int32) bool { return true })
	if f.ISRCheckDue(t0.Add(11*time.Second - time.Nanosecond)) {
		t.Fatal("the caught-up time moved back to the earlier fetch's")
	}
	if !f.ISRCheckDue(t0.Add(11 * time.Second)) {
		t.Fatal("not due LagTimeMax after the later fetch")
	}
}
