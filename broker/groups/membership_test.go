package groups

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestStaticLeaderRestart(t *testing.T) {
	for _, tt := range []struct {
		version       int16
		wantRebalance bool
	}{
		{version: 5, wantRebalance: true}, // before KIP-814 the leader must reassign
		{version: 9, wantRebalance: false},
	} {
		t.Run(fmt.Sprintf("JoinGroup v%d", tt.version), func(t *testing.T) {
			ctx := testCtx(t)
			c := newTestCoordinator(t, NewMemoryLog())
			leader := newTestMember(t, c, "g", "leader")
			leader.version = tt.version
			leader.instanceID = kmsg.StringPtr("leader-instance")
			joinAll(t, ctx, leader)
			gen := leader.generation

			restarted := newTestMember(t, c, "g", "leader")
			restarted.version = tt.version
			restarted.instanceID = leader.instanceID
			r := restarted.join(ctx)
			if r.ErrorCode != 0 || !restarted.leader {
				t.Fatalf("static leader rejoin = %s, leader %v", codeName(r.ErrorCode), restarted.leader)
			}
			if tt.wantRebalance {
				if r.Generation != gen+1 || r.SkipAssignment {
					t.Fatalf("rejoin gen %d skip %v, want a new generation %d to assign", r.Generation, r.SkipAssignment, gen+1)
				}
				return
			}
			if r.Generation != gen || !r.SkipAssignment || len(r.Members) != 1 {
				t.Fatalf("rejoin gen %d skip %v members %d, want generation %d, SkipAssignment, the member list", r.Generation, r.SkipAssignment, len(r.Members), gen)
			}
			if sr := restarted.sync(ctx, nil); sr.ErrorCode != 0 || string(sr.MemberAssignment) != "assignment-of-"+leader.id {
				t.Fatalf("sync after skip = %s %q, want the kept assignment", codeName(sr.ErrorCode), sr.MemberAssignment)
			}
		})
	}
}

func TestPendingMemberIDBlocksJoinUntilItRejoinsOrLeaves(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	a := newTestMember(t, c, "g", "a")
	joinAll(t, ctx, a)

	// b gets a member id but does not rejoin yet.
	first := c.JoinGroup(ctx, Client{ID: "b"}, joinReq(5, "g", "", 2*time.Second, 2*time.Second, "t"))
	if first.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("first join = %s", codeName(first.ErrorCode))
	}
	// a's rejoin (as leader) starts a rebalance that waits for b.
	ch := a.joinAsync(ctx)
	waitFor(t, "the rebalance to start", 5*time.Second, func() bool { return describe(t, c, "g").State == "PreparingRebalance" })
	select {
	case r := <-ch:
		t.Fatalf("join completed (%s) while a pending member id was outstanding", codeName(r.ErrorCode))
	case <-time.After(100 * time.Millisecond):
	}
	// The pending member gives up: LeaveGroup by its id releases the join.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 3
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: first.MemberID}}
	if r := c.LeaveGroup(leave); r.Members[0].ErrorCode != 0 {
		t.Fatalf("leave of pending member = %s", codeName(r.Members[0].ErrorCode))
	}
	if r := <-ch; r.ErrorCode != 0 || len(r.Members) != 1 {
		t.Fatalf("join after the pending member left = %s with %d members", codeName(r.ErrorCode), len(r.Members))
	}
}

func TestHeartbeatBetweenJoinAndSync(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	a := newTestMember(t, c, "g", "a")
	if r := a.join(ctx); r.ErrorCode != 0 {
		t.Fatalf("join: %s", codeName(r.ErrorCode))
	}
	if code := a.heartbeat(); code != 0 {
		t.Fatalf("heartbeat in CompletingRebalance = %s, want NONE", codeName(code))
	}
	syncAll(t, ctx, a)
}

func TestSyncWriteFailureRebalances(t *testing.T) {
	ctx := testCtx(t)
	log := NewMemoryLog()
	c := newTestCoordinator(t, log)
	a := newTestMember(t, c, "g", "a")
	if r := a.join(ctx); r.ErrorCode != 0 {
		t.Fatalf("join: %s", codeName(r.ErrorCode))
	}
	log.FailAppends(errors.New("disk full"))
	if r := a.sync(ctx, map[string][]byte{a.id: []byte("x")}); r.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("sync with a failing log = %s, want COORDINATOR_NOT_AVAILABLE", codeName(r.ErrorCode))
	}
	if got := describe(t, c, "g").State; got != "PreparingRebalance" {
		t.Fatalf("state after failed sync = %s, want PreparingRebalance", got)
	}
	log.FailAppends(nil)
	if r := a.join(ctx); r.ErrorCode != 0 {
		t.Fatalf("rejoin: %s", codeName(r.ErrorCode))
	}
	syncAll(t, ctx, a)
}

func TestLeaveDuringSyncAnswersWaitingFollower(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	a := newTestMember(t, c, "g", "a")
	b := newTestMember(t, c, "g", "b")
	var wg sync.WaitGroup
	for _, m := range []*testMember{a, b} {
		wg.Go(func() {
			if r := m.join(ctx); r.ErrorCode != 0 {
				t.Errorf("join: %s", codeName(r.ErrorCode))
			}
		})
	}
	wg.Wait()
	leader, follower := a, b
	if b.leader {
		leader, follower = b, a
	}
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { ch <- follower.sync(ctx, nil) }()
	waitFor(t, "the follower to wait in sync", 5*time.Second, func() bool {
		g, _ := c.lockGroup("g", false)
		defer g.mu.Unlock()
		return g.members[follower.id].sync != nil
	})
	if code := leader.leave(); code != 0 {
		t.Fatalf("leave: %s", codeName(code))
	}
	if r := <-ch; r.ErrorCode != kerr.RebalanceInProgress.Code {
		t.Fatalf("waiting follower got %s, want REBALANCE_IN_PROGRESS", codeName(r.ErrorCode))
	}
}

// TestManyGroupsConcurrently runs groups side by side under the race
// detector: each group's members join, sync, commit and leave while the
// others do the same.
func TestManyGroupsConcurrently(t *testing.T) {
	ctx := testCtx(t)
	log := NewMemoryLog()
	c := newTestCoordinator(t, log)
	const groups, members = 8, 3
	var wg sync.WaitGroup
	for gi := range groups {
		wg.Go(func() {
			name := fmt.Sprintf("group-%d", gi)
			ms := make([]*testMember, members)
			for i := range ms {
				ms[i] = newTestMember(t, c, name, fmt.Sprintf("c%d", i))
			}
			if err := joinAndSync(ctx, ms...); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			for i, m := range ms {
				if code := m.commit(ctx, "t", int32(i), int64(gi*100+i)); code != 0 {
					t.Errorf("%s commit: %s", name, codeName(code))
				}
			}
			for _, m := range ms {
				if code := m.leave(); code != 0 {
					t.Errorf("%s leave: %s", name, codeName(code))
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for gi := range groups {
		name := fmt.Sprintf("group-%d", gi)
		waitFor(t, name+" to empty", 5*time.Second, func() bool { return describe(t, c, name).State == "Empty" })
		for i := range members {
			if off, _ := fetchOne(t, c, name, "t", int32(i)); off != int64(gi*100+i) {
				t.Fatalf("%s t/%d = %d", name, i, off)
			}
		}
	}
}
