package groups

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKafkaGoOldVersions drives a whole consumer-group life with the
// versions kafka-go hard-codes (JoinGroup v1/v2, SyncGroup, Heartbeat and
// LeaveGroup v0, OffsetCommit v2, OffsetFetch v1), encoding every answer at
// its version as the wire would.
func TestKafkaGoOldVersions(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	client := Client{ID: "kafka-go", Host: "/127.0.0.1"}

	for _, joinVersion := range []int16{1, 2} {
		t.Run("JoinGroup v"+string(rune('0'+joinVersion)), func(t *testing.T) {
			group := "kafka-go-" + string(rune('0'+joinVersion))
			// No KIP-394 round trip before v4: the first join is final.
			join := joinReq(joinVersion, group, "", time.Second, time.Second, "t")
			jr := roundTrip(t, c.JoinGroup(ctx, client, join))
			if jr.ErrorCode != 0 || jr.MemberID == "" || jr.Generation != 1 || jr.LeaderID != jr.MemberID || len(jr.Members) != 1 || jr.Protocol == nil || *jr.Protocol != "range" {
				t.Fatalf("JoinGroup v%d = %s member %q gen %d leader %q members %d", joinVersion, codeName(jr.ErrorCode), jr.MemberID, jr.Generation, jr.LeaderID, len(jr.Members))
			}

			sync := kmsg.NewPtrSyncGroupRequest()
			sync.Version = 0
			sync.Group, sync.Generation, sync.MemberID = group, jr.Generation, jr.MemberID
			sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: jr.MemberID, MemberAssignment: []byte("all of t")}}
			sr := roundTrip(t, c.SyncGroup(ctx, sync))
			if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "all of t" {
				t.Fatalf("SyncGroup v0 = %s %q", codeName(sr.ErrorCode), sr.MemberAssignment)
			}

			hb := kmsg.NewPtrHeartbeatRequest()
			hb.Version = 0
			hb.Group, hb.Generation, hb.MemberID = group, jr.Generation, jr.MemberID
			if r := roundTrip(t, c.Heartbeat(hb)); r.ErrorCode != 0 {
				t.Fatalf("Heartbeat v0 = %s", codeName(r.ErrorCode))
			}

			commit := commitReq(2, group, jr.MemberID, jr.Generation, "t", 0, 77)
			commit.RetentionTimeMillis = -1
			cr := roundTrip(t, c.OffsetCommit(ctx, commit))
			if code := cr.Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Fatalf("OffsetCommit v2 = %s", codeName(code))
			}

			fetch := kmsg.NewPtrOffsetFetchRequest()
			fetch.Version = 1
			fetch.Group = group
			fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			fr := roundTrip(t, c.OffsetFetch(fetch))
			if p := fr.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 77 || p.Metadata == nil || *p.Metadata != "meta" {
				t.Fatalf("OffsetFetch v1 = %+v", p)
			}

			leave := kmsg.NewPtrLeaveGroupRequest()
			leave.Version = 0
			leave.Group, leave.MemberID = group, jr.MemberID
			if r := roundTrip(t, c.LeaveGroup(leave)); r.ErrorCode != 0 {
				t.Fatalf("LeaveGroup v0 = %s", codeName(r.ErrorCode))
			}
			leave.MemberID = "nobody"
			if r := roundTrip(t, c.LeaveGroup(leave)); r.ErrorCode != kerr.UnknownMemberID.Code {
				t.Fatalf("LeaveGroup v0 of an unknown member = %s, want UNKNOWN_MEMBER_ID at the top level", codeName(r.ErrorCode))
			}
			waitFor(t, "the group to empty", 5*time.Second, func() bool { return describe(t, c, group).State == "Empty" })

			// After the last member left, kafka-go's next start commits
			// nothing until it joins; a simple commit (generation -1) is
			// accepted on the empty group.
			simple := commitReq(2, group, "", -1, "t", 0, 80)
			if code := c.OffsetCommit(ctx, simple).Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Fatalf("simple commit on the emptied group = %s", codeName(code))
			}
		})
	}
}

func TestJoinGroupV0UsesSessionTimeoutForRebalance(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) { cfg.InitialRebalanceDelay = 0 })
	req := joinReq(0, "g", "", 300*time.Millisecond, time.Hour, "t")
	r := roundTrip(t, c.JoinGroup(ctx, Client{ID: "old"}, req))
	if r.ErrorCode != 0 {
		t.Fatalf("JoinGroup v0 = %s", codeName(r.ErrorCode))
	}
	// The member never syncs: it is dropped after the rebalance timeout,
	// which for v0 is the session timeout, not the hour sent in the
	// (v0-absent) field.
	waitFor(t, "the unsynced v0 member to be dropped", 5*time.Second, func() bool { return describe(t, c, "g").State == "Empty" })
}

func TestListAndDescribeGroups(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	m := newTestMember(t, c, "stable", "a")
	joinAll(t, ctx, m)
	if r := c.OffsetCommit(ctx, commitReq(8, "simple", "", -1, "t", 0, 1)); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal("commit failed")
	}

	list := func(version int16, states, types []string) map[string]kmsg.ListGroupsResponseGroup {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = version
		req.StatesFilter = states
		req.TypesFilter = types
		resp := roundTrip(t, c.ListGroups(req))
		if resp.ErrorCode != 0 {
			t.Fatalf("ListGroups: %s", codeName(resp.ErrorCode))
		}
		out := map[string]kmsg.ListGroupsResponseGroup{}
		for _, g := range resp.Groups {
			out[g.Group] = g
		}
		return out
	}
	tests := []struct {
		name    string
		version int16
		states  []string
		types   []string
		want    []string
	}{
		{"v0 lists all", 0, nil, nil, []string{"simple", "stable"}},
		{"v4 state filter", 4, []string{"stable"}, nil, []string{"stable"}},
		{"v4 state filter empty", 4, []string{"Empty"}, nil, []string{"simple"}},
		{"v5 classic type", 5, nil, []string{"Classic"}, []string{"simple", "stable"}},
		{"v5 consumer type", 5, nil, []string{"consumer"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := list(tt.version, tt.states, tt.types)
			if len(got) != len(tt.want) {
				t.Fatalf("listed %v, want %v", got, tt.want)
			}
			for _, name := range tt.want {
				if _, ok := got[name]; !ok {
					t.Fatalf("listed %v, want %v", got, tt.want)
				}
			}
		})
	}
	all := list(5, nil, nil)
	if g := all["stable"]; g.ProtocolType != "consumer" || g.GroupState != "Stable" || g.GroupType != "classic" {
		t.Fatalf("stable group listed as %+v", g)
	}
	if g := all["simple"]; g.ProtocolType != "" || g.GroupState != "Empty" {
		t.Fatalf("simple group listed as %+v", g)
	}

	for _, version := range []int16{5, 6} {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Version = version
		req.Groups = []string{"stable", "missing"}
		resp := roundTrip(t, c.DescribeGroups(req))
		s, missing := resp.Groups[0], resp.Groups[1]
		if s.ErrorCode != 0 || s.State != "Stable" || s.Protocol != "range" || len(s.Members) != 1 || string(s.Members[0].ProtocolMetadata) != string(consumerMeta("t")) {
			t.Fatalf("DescribeGroups v%d stable = %+v", version, s)
		}
		wantCode := int16(0)
		if version >= 6 {
			wantCode = kerr.GroupIDNotFound.Code
		}
		if missing.State != "Dead" || missing.ErrorCode != wantCode {
			t.Fatalf("DescribeGroups v%d missing = %s %s", version, missing.State, codeName(missing.ErrorCode))
		}
	}
}
