package groups

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestSingleMemberJoinSyncHeartbeat(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	m := newTestMember(t, c, "g", "client-a")

	// KIP-394: the first v4+ join without member id gets one back.
	first := c.JoinGroup(ctx, Client{ID: "client-a"}, joinReq(5, "g", "", m.session, m.rebalance, "t"))
	if first.ErrorCode != kerr.MemberIDRequired.Code || first.MemberID == "" {
		t.Fatalf("first join = %s member %q, want MEMBER_ID_REQUIRED with an id", codeName(first.ErrorCode), first.MemberID)
	}
	m.id = first.MemberID
	resp := m.join(ctx)
	if resp.ErrorCode != 0 {
		t.Fatalf("join: %s", codeName(resp.ErrorCode))
	}
	if resp.MemberID != first.MemberID || resp.Generation != 1 || !m.leader || *resp.Protocol != "range" {
		t.Fatalf("join answer = member %q gen %d leader %q protocol %q; want member %q gen 1, leader itself, range",
			resp.MemberID, resp.Generation, resp.LeaderID, *resp.Protocol, first.MemberID)
	}
	if len(resp.Members) != 1 || string(resp.Members[0].ProtocolMetadata) != string(consumerMeta("t")) {
		t.Fatalf("leader got members %+v, want itself with its range metadata", resp.Members)
	}
	if got := describe(t, c, "g").State; got != "CompletingRebalance" {
		t.Fatalf("state after join = %s, want CompletingRebalance", got)
	}
	syncAll(t, ctx, m)
	if code := m.heartbeat(); code != 0 {
		t.Fatalf("heartbeat: %s", codeName(code))
	}
	d := describe(t, c, "g")
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 1 || string(d.Members[0].MemberAssignment) != "assignment-of-"+m.id {
		t.Fatalf("describe = %+v, want Stable range with the member's assignment", d)
	}
	if d.Members[0].ClientID != "client-a" || d.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("describe member client = %q %q", d.Members[0].ClientID, d.Members[0].ClientHost)
	}
}

func TestThreeMembersRebalanceOnJoinAndLeave(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) { cfg.InitialRebalanceDelay = 100 * time.Millisecond })
	ms := []*testMember{
		newTestMember(t, c, "g", "a"), newTestMember(t, c, "g", "b"), newTestMember(t, c, "g", "c"),
	}
	// The initial delay gathers all three into the first generation.
	joinAll(t, ctx, ms...)
	if ms[0].generation != 1 {
		t.Fatalf("first generation = %d, want 1", ms[0].generation)
	}
	for _, m := range ms {
		if m.leader && len(m.members) != 3 {
			t.Fatalf("leader saw %d members, want 3", len(m.members))
		}
	}

	// A fourth member joins: the others learn it from their heartbeat.
	d := newTestMember(t, c, "g", "d")
	dJoined := d.joinAsync(ctx)
	waitFor(t, "a rebalance after the fourth member joined", 5*time.Second, func() bool {
		return ms[0].heartbeat() == kerr.RebalanceInProgress.Code
	})
	rejoined := make([]<-chan *kmsg.JoinGroupResponse, len(ms))
	for i, m := range ms {
		rejoined[i] = m.joinAsync(ctx)
	}
	for i, ch := range append(rejoined, dJoined) {
		if r := <-ch; r.ErrorCode != 0 {
			t.Fatalf("rejoin %d: %s", i, codeName(r.ErrorCode))
		}
	}
	all := append(ms, d)
	syncAll(t, ctx, all...)
	if all[0].generation != 2 {
		t.Fatalf("generation after join = %d, want 2", all[0].generation)
	}

	// One member leaves: the rest rebalance into generation 3.
	if code := ms[1].leave(); code != 0 {
		t.Fatalf("leave: %s", codeName(code))
	}
	stay := []*testMember{ms[0], ms[2], d}
	for _, m := range stay {
		if code := m.heartbeat(); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("heartbeat after a leave = %s, want REBALANCE_IN_PROGRESS", codeName(code))
		}
	}
	joinAll(t, ctx, stay...)
	if stay[0].generation != 3 {
		t.Fatalf("generation after leave = %d, want 3", stay[0].generation)
	}
	for _, m := range stay {
		if m.leader && len(m.members) != 3 {
			t.Fatalf("leader saw %d members after the leave, want 3", len(m.members))
		}
	}
	if code := ms[1].heartbeat(); code != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat of the member that left = %s, want UNKNOWN_MEMBER_ID", codeName(code))
	}
	s := c.Stats()
	if s.Rebalances != 3 || s.Members != 3 || s.GroupsByState["Stable"] != 1 || s.MembersExpired != 0 {
		t.Fatalf("stats = %+v, want 3 rebalances, 3 members, one stable group, none expired", s)
	}
}

func TestSessionTimeoutRemovesSilentMember(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	alive := newTestMember(t, c, "g", "alive")
	silent := newTestMember(t, c, "g", "silent")
	silent.session = 150 * time.Millisecond
	joinAll(t, ctx, alive, silent)
	gen := alive.generation

	// Only one keeps heartbeating; the other's session lapses.
	waitFor(t, "the silent member's session to expire", 5*time.Second, func() bool {
		return alive.heartbeat() == kerr.RebalanceInProgress.Code
	})
	if r := alive.join(ctx); r.ErrorCode != 0 {
		t.Fatalf("rejoin: %s", codeName(r.ErrorCode))
	}
	if alive.generation != gen+1 || len(alive.members) != 1 || !alive.leader {
		t.Fatalf("after expiry: gen %d leader %v members %d; want gen %d, leader, 1 member", alive.generation, alive.leader, len(alive.members), gen+1)
	}
	syncAll(t, ctx, alive)
	if code := silent.heartbeat(); code != kerr.UnknownMemberID.Code {
		t.Fatalf("expired member heartbeat = %s, want UNKNOWN_MEMBER_ID", codeName(code))
	}
	if n := c.Stats().MembersExpired; n != 1 {
		t.Fatalf("MembersExpired = %d, want 1", n)
	}
}

func TestRebalanceTimeoutDropsMembersThatDoNotRejoin(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	a := newTestMember(t, c, "g", "a")
	b := newTestMember(t, c, "g", "b")
	// Long enough for b to see the rebalance on a loaded machine, short
	// enough for a quick test.
	a.rebalance, b.rebalance = time.Second, time.Second
	joinAll(t, ctx, a, b)
	if !a.leader {
		a, b = b, a
	}

	// The leader rejoins (a rebalance starts); b keeps heartbeating but
	// never rejoins, so the join phase ends at the rebalance timeout
	// without it.
	ch := a.joinAsync(ctx)
	waitFor(t, "b to see the rebalance", 5*time.Second, func() bool { return b.heartbeat() == kerr.RebalanceInProgress.Code })
	r := <-ch
	if r.ErrorCode != 0 || len(r.Members) != 1 || r.Generation != 2 {
		t.Fatalf("join after rebalance timeout = %s gen %d with %d members, want NONE gen 2 with 1", codeName(r.ErrorCode), r.Generation, len(r.Members))
	}
	if code := b.heartbeat(); code != kerr.UnknownMemberID.Code {
		t.Fatalf("dropped member heartbeat = %s, want UNKNOWN_MEMBER_ID", codeName(code))
	}
}

func TestFollowerRejoinWithoutChangeKeepsGeneration(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	a := newTestMember(t, c, "g", "a")
	b := newTestMember(t, c, "g", "b")
	joinAll(t, ctx, a, b)
	follower := a
	if a.leader {
		follower = b
	}
	gen := follower.generation
	r := follower.join(ctx)
	if r.ErrorCode != 0 || r.Generation != gen || len(r.Members) != 0 {
		t.Fatalf("unchanged follower rejoin = %s gen %d members %d; want the current generation %d", codeName(r.ErrorCode), r.Generation, len(r.Members), gen)
	}
	if code := a.heartbeat(); code != 0 {
		t.Fatalf("heartbeat after an unchanged rejoin = %s, want no rebalance", codeName(code))
	}
	// A changed subscription does rebalance.
	follower.topics = []string{"t", "u"}
	ch := follower.joinAsync(ctx)
	waitFor(t, "the rebalance after a subscription change", 5*time.Second, func() bool {
		return describe(t, c, "g").State == "PreparingRebalance"
	})
	other := a
	if follower == a {
		other = b
	}
	if r := other.join(ctx); r.ErrorCode != 0 || r.Generation != gen+1 {
		t.Fatalf("rejoin = %s gen %d, want generation %d", codeName(r.ErrorCode), r.Generation, gen+1)
	}
	if r := <-ch; r.ErrorCode != 0 || r.Generation != gen+1 {
		t.Fatalf("changed rejoin = %s gen %d, want generation %d", codeName(r.ErrorCode), r.Generation, gen+1)
	}
}

func TestMemberThatNeverSyncsIsRemoved(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) { cfg.InitialRebalanceDelay = 0 })
	a := newTestMember(t, c, "g", "a")
	a.rebalance = 150 * time.Millisecond
	if r := a.join(ctx); r.ErrorCode != 0 {
		t.Fatalf("join: %s", codeName(r.ErrorCode))
	}
	waitFor(t, "the unsynced member to be removed", 5*time.Second, func() bool {
		return describe(t, c, "g").State == "Empty"
	})
}

func TestInitialRebalanceDelayGathersMembers(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) { cfg.InitialRebalanceDelay = 300 * time.Millisecond })
	a := newTestMember(t, c, "g", "a")
	b := newTestMember(t, c, "g", "b")
	start := time.Now()
	aJoined := a.joinAsync(ctx)
	waitFor(t, "the group to start its first rebalance", 5*time.Second, func() bool {
		return describe(t, c, "g").State == "PreparingRebalance"
	})
	bJoined := b.joinAsync(ctx)
	ra, rb := <-aJoined, <-bJoined
	if ra.ErrorCode != 0 || rb.ErrorCode != 0 || ra.Generation != 1 || rb.Generation != 1 {
		t.Fatalf("joins = %s gen %d, %s gen %d; want both NONE in generation 1", codeName(ra.ErrorCode), ra.Generation, codeName(rb.ErrorCode), rb.Generation)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("first rebalance completed after %v, before the initial delay", waited)
	}
}

func TestJoinValidation(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) { cfg.MaxGroupSize = 1 })
	m := newTestMember(t, c, "g", "a")
	joinAll(t, ctx, m)

	other := joinReq(5, "g", "", time.Second, time.Second, "t")
	other.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "sticky", Metadata: consumerMeta("t")}}
	noProtocols := joinReq(5, "fresh", "", time.Second, time.Second)
	noProtocols.Protocols = nil
	tests := []struct {
		name string
		req  *kmsg.JoinGroupRequest
		want int16
	}{
		{"empty group id", joinReq(5, "", "", time.Second, time.Second, "t"), kerr.InvalidGroupID.Code},
		{"session timeout below minimum", joinReq(5, "g", "", time.Millisecond, time.Second, "t"), kerr.InvalidSessionTimeout.Code},
		{"session timeout above maximum", joinReq(5, "g", "", time.Hour, time.Second, "t"), kerr.InvalidSessionTimeout.Code},
		{"no common protocol", other, kerr.InconsistentGroupProtocol.Code},
		{"first member without protocols", noProtocols, kerr.InconsistentGroupProtocol.Code},
		{"unknown member id", joinReq(5, "g", "nobody", time.Second, time.Second, "t"), kerr.UnknownMemberID.Code},
		{"unknown member id, unknown group", joinReq(5, "nogroup", "nobody", time.Second, time.Second, "t"), kerr.UnknownMemberID.Code},
		{"group full", joinReq(5, "g", "", time.Second, time.Second, "t"), kerr.GroupMaxSizeReached.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.JoinGroup(ctx, Client{ID: "x"}, tt.req).ErrorCode; got != tt.want {
				t.Fatalf("JoinGroup = %s, want %s", codeName(got), codeName(tt.want))
			}
		})
	}
	for _, s := range c.Groups() {
		if s.Name != "g" {
			t.Fatalf("a failed join left group %q behind", s.Name)
		}
	}
}

func TestSyncAndHeartbeatErrors(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	m := newTestMember(t, c, "g", "a")
	joinAll(t, ctx, m)

	tests := []struct {
		name             string
		group, memberID  string
		generation       int32
		wantSync, wantHB int16
	}{
		{"unknown group", "nogroup", m.id, m.generation, kerr.UnknownMemberID.Code, kerr.UnknownMemberID.Code},
		{"unknown member", "g", "nobody", m.generation, kerr.UnknownMemberID.Code, kerr.UnknownMemberID.Code},
		{"stale generation", "g", m.id, m.generation - 1, kerr.IllegalGeneration.Code, kerr.IllegalGeneration.Code},
		{"empty group id", "", m.id, m.generation, kerr.InvalidGroupID.Code, kerr.InvalidGroupID.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sreq := kmsg.NewPtrSyncGroupRequest()
			sreq.Group, sreq.MemberID, sreq.Generation = tt.group, tt.memberID, tt.generation
			if got := c.SyncGroup(ctx, sreq).ErrorCode; got != tt.wantSync {
				t.Errorf("SyncGroup = %s, want %s", codeName(got), codeName(tt.wantSync))
			}
			hreq := kmsg.NewPtrHeartbeatRequest()
			hreq.Group, hreq.MemberID, hreq.Generation = tt.group, tt.memberID, tt.generation
			if got := c.Heartbeat(hreq).ErrorCode; got != tt.wantHB {
				t.Errorf("Heartbeat = %s, want %s", codeName(got), codeName(tt.wantHB))
			}
		})
	}

	// SyncGroup v5 checks the protocol against the group's.
	sreq := m.syncReq(nil)
	sreq.Version = 5
	sreq.ProtocolType, sreq.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("roundrobin")
	if got := c.SyncGroup(ctx, sreq).ErrorCode; got != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("SyncGroup with another protocol = %s, want INCONSISTENT_GROUP_PROTOCOL", codeName(got))
	}
	sreq.Protocol = kmsg.StringPtr("range")
	resp := c.SyncGroup(ctx, sreq)
	if resp.ErrorCode != 0 || *resp.Protocol != "range" || *resp.ProtocolType != "consumer" || string(resp.MemberAssignment) != "assignment-of-"+m.id {
		t.Fatalf("repeated SyncGroup in Stable = %s %v/%v %q", codeName(resp.ErrorCode), resp.ProtocolType, resp.Protocol, resp.MemberAssignment)
	}
}

func TestStaticMemberRestartKeepsAssignment(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	leader := newTestMember(t, c, "g", "leader")
	follower := newTestMember(t, c, "g", "follower")
	follower.instanceID = kmsg.StringPtr("instance-1")
	// The dynamic member joins first, so it leads.
	leaderJoined := leader.joinAsync(ctx)
	waitFor(t, "the first member to join", 5*time.Second, func() bool { return describe(t, c, "g").State == "PreparingRebalance" })
	if r := follower.join(ctx); r.ErrorCode != 0 {
		t.Fatalf("static join: %s", codeName(r.ErrorCode))
	}
	if r := <-leaderJoined; r.ErrorCode != 0 {
		t.Fatalf("leader join: %s", codeName(r.ErrorCode))
	}
	syncAll(t, ctx, leader, follower)
	if !leader.leader {
		t.Fatalf("the first member to join is not the leader")
	}
	gen, oldID := follower.generation, follower.id

	// The static member restarts: same instance id, no member id, and
	// metadata that differs (clients put their generation and owned
	// partitions in it); the protocol stays the same, so as in Kafka the
	// group does not rebalance.
	restarted := newTestMember(t, c, "g", "follower")
	restarted.instanceID = follower.instanceID
	restarted.topics = []string{"t", "other"}
	r := restarted.join(ctx)
	if r.ErrorCode != 0 || r.Generation != gen || r.MemberID == oldID {
		t.Fatalf("static rejoin = %s gen %d id %q; want NONE, generation %d, a new id", codeName(r.ErrorCode), r.Generation, r.MemberID, gen)
	}
	if sr := restarted.sync(ctx, nil); sr.ErrorCode != 0 || string(sr.MemberAssignment) != "assignment-of-"+oldID {
		t.Fatalf("static member sync = %s %q, want its old assignment", codeName(sr.ErrorCode), sr.MemberAssignment)
	}
	if code := leader.heartbeat(); code != 0 {
		t.Fatalf("leader heartbeat after static restart = %s, want no rebalance", codeName(code))
	}
	if code := follower.heartbeat(); code != kerr.FencedInstanceID.Code {
		t.Fatalf("old incarnation heartbeat = %s, want FENCED_INSTANCE_ID", codeName(code))
	}

	// Removing a static member by instance id alone (admin tools do this).
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 3
	req.Group = "g"
	req.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: kmsg.StringPtr("instance-1")}, {MemberID: "nobody"}}
	resp := c.LeaveGroup(req)
	if resp.Members[0].ErrorCode != 0 || resp.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("batch leave = %s, %s; want NONE, UNKNOWN_MEMBER_ID", codeName(resp.Members[0].ErrorCode), codeName(resp.Members[1].ErrorCode))
	}
	if code := leader.heartbeat(); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("leader heartbeat after leave = %s, want REBALANCE_IN_PROGRESS", codeName(code))
	}
}

func TestCloseAnswersParkedRequests(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) { cfg.InitialRebalanceDelay = time.Hour })
	m := newTestMember(t, c, "g", "a")
	ch := m.joinAsync(ctx)
	waitFor(t, "the join to park", 5*time.Second, func() bool { return describe(t, c, "g").State == "PreparingRebalance" })
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := <-ch; r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("parked join after Close = %s, want NOT_COORDINATOR", codeName(r.ErrorCode))
	}
	if code := m.heartbeat(); code != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat after Close = %s, want NOT_COORDINATOR", codeName(code))
	}
}

func TestJoinReturnsWhenContextEnds(t *testing.T) {
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) { cfg.InitialRebalanceDelay = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	m := newTestMember(t, c, "g", "a")
	if r := m.join(ctx); r.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("join with an ended context = %s, want COORDINATOR_NOT_AVAILABLE", codeName(r.ErrorCode))
	}
}
