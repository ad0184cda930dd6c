package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

type leaderFixture struct {
	*Leader
	clock *clock
	hws   []int64
}

func newLeaderFixture(t *testing.T, isr []int32, minISR int, leo int64) *leaderFixture {
	t.Helper()
	f := &leaderFixture{clock: &clock{now: time.Unix(1000, 0)}}
	p := metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, ISR: isr, PartitionEpoch: 7}
	l, err := NewLeader(LeaderConfig{
		LocalID: 1, LagTimeMax: 10 * time.Second, MinISR: minISR, Now: f.clock.Now,
		SetHighWatermark: func(hw int64) { f.hws = append(f.hws, hw) },
	}, p, leo, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Leader = l
	return f
}

func (f *leaderFixture) fetched(t *testing.T, id int32, off int64) int64 {
	t.Helper()
	hw, err := f.Fetched(id, off)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

func TestHighWatermarkIsMinimumLEOOfISR(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2, 3}, 2, 0)
	f.Appended(10)
	if hw := f.fetched(t, 2, 10); hw != 0 {
		t.Fatalf("hw %d with follower 3 unknown", hw)
	}
	if hw := f.fetched(t, 3, 5); hw != 5 {
		t.Fatalf("hw %d, want 5", hw)
	}
	if hw := f.fetched(t, 3, 10); hw != 10 {
		t.Fatalf("hw %d, want 10", hw)
	}
	// The HW never goes back, even if a fetch offset does (a follower
	// that truncated re-fetches lower).
	if hw := f.fetched(t, 3, 8); hw != 10 {
		t.Fatalf("hw went back to %d", hw)
	}
	if !slices.Equal(f.hws, []int64{0, 5, 10}) { // the starting watermark is published at once
		t.Fatalf("SetHighWatermark calls %v", f.hws)
	}
	if _, err := f.Fetched(9, 1); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("fetch from a non-replica: %v", err)
	}
}

func TestNewLeaderRefusesOtherLeader(t *testing.T) {
	_, err := NewLeader(LeaderConfig{LocalID: 2}, metadata.Partition{Replicas: []int32{1, 2}, Leader: 1}, 0, 0)
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("err %v", err)
	}
}

func TestAcksAllWaitsForTheISR(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2, 3}, 2, 0)
	f.Appended(3)
	done := make(chan error, 1)
	go func() { done <- f.WaitReplicated(context.Background(), 2) }()
	f.fetched(t, 2, 3)
	select {
	case err := <-done:
		t.Fatalf("acknowledged before follower 3 had the data: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	f.fetched(t, 3, 3)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not acknowledged after the ISR caught up")
	}
	// Already replicated: returns at once.
	if err := f.WaitReplicated(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	f.Appended(5)
	if err := f.WaitReplicated(ctx, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	if len(f.waiters) != 0 {
		t.Fatal("a timed-out waiter was left behind")
	}
}

func TestResignFailsWaiters(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2}, 1, 5)
	done := make(chan error, 1)
	go func() { done <- f.WaitReplicated(context.Background(), 4) }()
	// Wait until registered, then a new leader epoch arrives.
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.waiters)
		f.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.Update(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 2, LeaderEpoch: 5, ISR: []int32{2}}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("update to another leader: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("waiter: %v", err)
	}
	for _, err := range []error{f.CheckAcksAll(), f.WaitReplicated(context.Background(), 0)} {
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("after resigning: %v", err)
		}
	}
	if _, err := f.Fetched(2, 5); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fetch after resigning: %v", err)
	}
}

func TestMinInsyncReplicas(t *testing.T) {
	f := newLeaderFixture(t, []int32{1}, 2, 0)
	if err := f.CheckAcksAll(); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("ISR of 1 with min.insync.replicas 2: %v", err)
	}

	// The ISR shrinks below the minimum while a producer waits.
	f = newLeaderFixture(t, []int32{1, 2}, 2, 0)
	if err := f.CheckAcksAll(); err != nil {
		t.Fatal(err)
	}
	f.Appended(6)
	done := make(chan error, 1)
	go func() { done <- f.WaitReplicated(context.Background(), 5) }()
	if err := f.Update(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, ISR: []int32{1}, PartitionEpoch: 8}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrNotEnoughReplicasAfterAppend) {
		t.Fatalf("after the ISR shrank: %v", err)
	}
}

func TestISRShrinksOnLagAndHWWaitsForCommit(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2, 3}, 1, 0)
	f.Appended(10)
	f.fetched(t, 2, 10)
	f.fetched(t, 3, 4)
	f.clock.advance(5 * time.Second)
	if _, ok := f.ProposeISRChange(func(int32) bool { return true }); ok {
		t.Fatal("shrank before replica.lag.time.max.ms")
	}
	// Follower 2 keeps fetching; follower 3 stops.
	for range 3 {
		f.clock.advance(3 * time.Second)
		f.fetched(t, 2, 10)
	}
	ch, ok := f.ProposeISRChange(func(int32) bool { return true })
	if !ok || !slices.Equal(ch.NewISR, []int32{1, 2}) || ch.LeaderEpoch != 4 || ch.PartitionEpoch != 7 {
		t.Fatalf("change %+v %v", ch, ok)
	}
	if _, ok := f.ProposeISRChange(func(int32) bool { return true }); ok {
		t.Fatal("second change while one is in flight")
	}
	// Until the controller commits, the removed follower still holds the HW.
	if hw := f.HighWatermark(); hw != 4 {
		t.Fatalf("hw %d before the shrink is committed", hw)
	}
	if err := f.Update(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, ISR: ch.NewISR, PartitionEpoch: 8}); err != nil {
		t.Fatal(err)
	}
	if hw := f.HighWatermark(); hw != 10 {
		t.Fatalf("hw %d after the shrink, want 10", hw)
	}
}

func TestSlowButFetchingFollowerStaysInSync(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2, 3}, 1, 0)
	// Each fetch reaches the end offset the leader had at the previous
	// fetch, while new data keeps arriving: Kafka counts that as caught up.
	var leo int64
	for range 20 {
		prev := leo
		leo += 10
		f.Appended(leo)
		f.clock.advance(2 * time.Second)
		f.fetched(t, 2, prev)
		f.fetched(t, 3, leo)
	}
	if ch, ok := f.ProposeISRChange(func(int32) bool { return true }); ok {
		t.Fatalf("a follower that keeps up was dropped: %+v", ch)
	}
}

func TestISRExpandsWhenFollowerCatchesUp(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2}, 1, 20) // epoch starts at 20
	f.Appended(30)
	f.fetched(t, 2, 30)
	f.fetched(t, 3, 15)
	if _, ok := f.ProposeISRChange(func(int32) bool { return true }); ok {
		t.Fatal("added a follower behind the HW")
	}
	f.fetched(t, 3, 30)
	if _, ok := f.ProposeISRChange(func(id int32) bool { return id != 3 }); ok {
		t.Fatal("added a fenced follower")
	}
	ch, ok := f.ProposeISRChange(func(int32) bool { return true })
	if !ok || !slices.Equal(ch.NewISR, []int32{1, 2, 3}) {
		t.Fatalf("expansion %+v %v", ch, ok)
	}
	f.ISRChangeFailed(fmt.Errorf("refused: %w", metadata.ErrIneligibleReplica))
	if _, ok := f.ProposeISRChange(func(int32) bool { return true }); !ok {
		t.Fatal("no retry after a refused change")
	}
}

// TestISRExpansionOfUnknownOutcomeKeepsCounting: an expansion whose
// outcome the leader does not know (the AlterPartition timed out, or the
// controller refused a change because the partition moved on, possibly
// by that very change) may be committed: the controller may then count
// the new member as in sync (and complete a reassignment, making it
// electable). Until the metadata settles it, the member keeps counting
// for the high watermark, so acks=all never completes a write the new
// member lacks; a timed-out change is sent again as it was. Only a
// refusal that proves nothing was committed lets the high watermark
// move without the member.
func TestISRExpansionOfUnknownOutcomeKeepsCounting(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		resend      bool // the same change is proposed again
		stillCounts bool // the joining member still holds the HW
	}{
		{"timeout", context.DeadlineExceeded, true, true},
		{"controller unreachable", errors.New("dial tcp: connection refused"), true, true},
		{"partition moved on", fmt.Errorf("retry: %w", metadata.ErrInvalidUpdateVersion), false, true},
		{"leadership moved", metadata.ErrFencedLeaderEpoch, false, true},
		// This broker's own registration was refused (it registers
		// again): no partition changes, so nothing but a resend settles it.
		{"own broker epoch stale", fmt.Errorf("alter: %w", metadata.ErrStaleBrokerEpoch), true, true},
		{"own registration unknown", metadata.ErrUnknownBroker, true, true},
		{"ineligible replica", metadata.ErrIneligibleReplica, false, false},
		{"invalid request", metadata.ErrInvalidRequest, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newLeaderFixture(t, []int32{1, 2}, 2, 20)
			f.fetched(t, 2, 20)
			f.fetched(t, 3, 20)
			ch, ok := f.ProposeISRChange(func(int32) bool { return true })
			if !ok || !slices.Equal(ch.NewISR, []int32{1, 2, 3}) {
				t.Fatalf("expansion %+v %v", ch, ok)
			}
			f.ISRChangeFailed(tc.err)
			// A write that follower 2 copies and the joining 3 does not.
			f.Appended(30)
			hw := f.fetched(t, 2, 30)
			if want := map[bool]int64{true: 20, false: 30}[tc.stillCounts]; hw != want {
				t.Fatalf("hw %d after the change failed with %v, want %d", hw, tc.err, want)
			}
			again, ok := f.ProposeISRChange(func(int32) bool { return true })
			switch {
			case tc.resend && (!ok || !slices.Equal(again.NewISR, ch.NewISR) || again.PartitionEpoch != ch.PartitionEpoch):
				t.Fatalf("after %v: proposed %+v %v, want the same change %+v again", tc.err, again, ok, ch)
			case !tc.resend && tc.stillCounts && ok:
				t.Fatalf("after %v: proposed %+v while the metadata has not settled the change", tc.err, again)
			}
			// The metadata settles it: committed, with 3 in the ISR.
			if err := f.Update(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, ISR: []int32{1, 2, 3}, PartitionEpoch: 8}); err != nil {
				t.Fatal(err)
			}
			if hw := f.fetched(t, 3, 30); hw != 30 {
				t.Fatalf("hw %d once 3 has the data, want 30", hw)
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		err  error
		want int16
	}{
		{nil, 0},
		{ErrNotEnoughReplicas, 19},
		{fmt.Errorf("wrapped: %w", ErrNotEnoughReplicasAfterAppend), 20},
		{ErrNotLeader, 6},
		{ErrNotReplica, 6},
		{context.DeadlineExceeded, 7},
		{errors.New("other"), 0},
	}
	for _, tt := range tests {
		if got := ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// Followers are woken as soon as the leader's data is written; the high
// watermark counts the leader's own copy only once it is durable, and the
// acks=all producer completes on that event.
func TestLeaderWakesFollowersBeforeItsOwnFsync(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2, 3}, 2, 10)
	f.fetched(t, 2, 10)
	f.fetched(t, 3, 10)
	parked := f.DataAfter(10)
	f.LogAdvanced(20, 10) // written, not yet fsynced here
	select {
	case <-parked:
	default:
		t.Fatal("a parked follower fetch was not woken by the write")
	}
	f.fetched(t, 2, 20)
	if hw := f.fetched(t, 3, 20); hw != 10 {
		t.Fatalf("hw %d with the leader's own copy durable only to 10, want 10", hw)
	}
	done := make(chan error, 1)
	go func() { done <- f.WaitReplicated(context.Background(), 19) }()
	waitForWaiters(t, f.Leader, 1)
	f.LogAdvanced(20, 20)
	if err := <-done; err != nil {
		t.Fatalf("acks=all after the leader's fsync: %v", err)
	}
	if hw := f.HighWatermark(); hw != 20 {
		t.Fatalf("hw %d, want 20", hw)
	}
	// Stale reports (out of order from concurrent appends) change nothing.
	f.LogAdvanced(15, 12)
	if f.LogEndOffset() != 20 || f.HighWatermark() != 20 {
		t.Fatalf("a stale report moved the leader back: leo %d hw %d", f.LogEndOffset(), f.HighWatermark())
	}
}

func waitForWaiters(t *testing.T, l *Leader, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		got := len(l.waiters)
		l.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRestartedFollowerStartsOver: a follower whose broker registered
// again (a new process, which may hold less than the old one fetched: a
// tail lost with the machine, a replaced volume) no longer counts with
// the log end its previous process fetched to: not for joining the ISR,
// not for the high watermark, until the new process fetches (KIP-903).
func TestRestartedFollowerStartsOver(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2}, 1, 0)
	f.Incarnations(map[int32]int64{2: 10, 3: 11})
	f.Appended(20)
	f.fetched(t, 2, 20)
	f.fetched(t, 3, 20)
	// Broker 3 restarts (registration 40) before the leader proposes it.
	f.Incarnations(map[int32]int64{2: 10, 3: 40})
	if ch, ok := f.ProposeISRChange(func(int32) bool { return true }); ok {
		t.Fatalf("proposed %+v on the log end broker 3's previous process fetched to", ch)
	}
	f.fetched(t, 3, 12) // what the new process has
	if _, ok := f.ProposeISRChange(func(int32) bool { return true }); ok {
		t.Fatal("broker 3 joined the ISR behind the high watermark")
	}
	f.fetched(t, 3, 20)
	if ch, ok := f.ProposeISRChange(func(int32) bool { return true }); !ok || !slices.Equal(ch.NewISR, []int32{1, 2, 3}) {
		t.Fatalf("expansion %+v %v once broker 3's new process caught up", ch, ok)
	}

	// An ISR member's broker restarts: its old log end does not move the
	// high watermark.
	g := newLeaderFixture(t, []int32{1, 2}, 1, 0)
	g.Incarnations(map[int32]int64{2: 10})
	g.Appended(20)
	g.fetched(t, 2, 20)
	g.Incarnations(map[int32]int64{2: 50})
	g.Appended(30)
	if hw := g.HighWatermark(); hw != 20 {
		t.Fatalf("high watermark %d, want 20", hw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.WaitReplicated(ctx, 25); err == nil {
		t.Fatal("a write acknowledged with broker 2's restarted process not having fetched it")
	}
	g.fetched(t, 2, 30)
	if hw := g.HighWatermark(); hw != 30 {
		t.Fatalf("high watermark %d once broker 2's new process fetched, want 30", hw)
	}
}

// A cut by a failed fsync makes the failed log due for a report when a
// follower had read the records cut or another ISR member could lead; a
// report in flight is not due again, a report refused because the
// partition moved on needs no other, any other failure makes it due again.
func TestLeaderLogCutReport(t *testing.T) {
	tests := []struct {
		name string
		isr  []int32
		read bool
		due  bool
	}{
		{"read by a follower", []int32{1, 2, 3}, true, true},
		{"read, leader alone in the ISR", []int32{1}, true, true},
		{"not read, other ISR members", []int32{1, 2}, false, true},
		{"not read, leader alone in the ISR", []int32{1}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newLeaderFixture(t, tc.isr, 1, 0)
			f.LogAdvanced(20, 10)
			f.LogCut(10, tc.read)
			if got := f.LogEndOffset(); got != 10 {
				t.Fatalf("log end %d after the cut, want 10", got)
			}
			epoch, due := f.LogFailureDue()
			if due != tc.due {
				t.Fatalf("report due %v, want %v", due, tc.due)
			}
			if !due {
				return
			}
			if epoch != 4 {
				t.Fatalf("report at epoch %d, want 4", epoch)
			}
			if _, again := f.LogFailureDue(); again {
				t.Fatal("due again while in flight")
			}
			f.LogFailureReported(context.DeadlineExceeded)
			if _, again := f.LogFailureDue(); !again {
				t.Fatal("not due again after a timeout")
			}
			f.LogFailureReported(fmt.Errorf("refused: %w", metadata.ErrNotLeader))
			if _, again := f.LogFailureDue(); again {
				t.Fatal("due again after the partition moved on")
			}
			if err := f.Update(metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 5, ISR: tc.isr, PartitionEpoch: 8}); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("update to a new epoch: %v, want ErrNotLeader (the tracker resigns)", err)
			}
		})
	}
}

// An append refused for lack of space makes a report of the full disk
// due, once per failure and at most once per diskFullRetry; other storage
// errors make none, and a resigned leader reports nothing.
func TestLeaderDiskFullReport(t *testing.T) {
	f := newLeaderFixture(t, []int32{1, 2, 3}, 1, 0)
	f.WriteFailed(fmt.Errorf("%w: %w", storage.ErrStorage, &os.PathError{Op: "write", Path: "x", Err: syscall.EIO}))
	if _, due := f.DiskFullDue(); due {
		t.Fatal("an I/O error made a full-disk report due")
	}
	noSpace := fmt.Errorf("%w: %w", storage.ErrStorage, &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
	f.WriteFailed(noSpace)
	epoch, due := f.DiskFullDue()
	if !due || epoch != 4 {
		t.Fatalf("after ENOSPC: report due %v at epoch %d, want due at 4", due, epoch)
	}
	f.WriteFailed(noSpace)
	if _, again := f.DiskFullDue(); again {
		t.Fatal("due again while in flight")
	}
	f.DiskFullReported()
	if _, again := f.DiskFullDue(); again {
		t.Fatal("due again within diskFullRetry of the last report")
	}
	f.clock.advance(diskFullRetry)
	if _, again := f.DiskFullDue(); !again {
		t.Fatal("not due after another ENOSPC and diskFullRetry")
	}
	f.DiskFullReported()
	f.clock.advance(diskFullRetry)
	if _, again := f.DiskFullDue(); again {
		t.Fatal("due again with no append failed since the last report")
	}
	f.WriteFailed(noSpace)
	f.Resign()
	if _, again := f.DiskFullDue(); again {
		t.Fatal("a resigned leader's report due")
	}
}
