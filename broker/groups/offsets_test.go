package groups

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func commitReq(version int16, group, memberID string, generation int32, topic string, partition int32, offset int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = version
	req.Group = group
	req.MemberID = memberID
	req.Generation = generation
	req.Topics = []kmsg.OffsetCommitRequestTopic{{
		Topic:      topic,
		Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: offset, LeaderEpoch: 7, Metadata: kmsg.StringPtr("meta")}},
	}}
	return req
}

// fetchOne reads one committed offset through OffsetFetch v5 (-1 when none).
func fetchOne(t *testing.T, c *Coordinator, group, topic string, partition int32) (offset int64, leaderEpoch int32) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 5
	req.Group = group
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{partition}}}
	resp := c.OffsetFetch(req)
	if resp.ErrorCode != 0 {
		t.Fatalf("OffsetFetch: %s", codeName(resp.ErrorCode))
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("OffsetFetch partition: %s", codeName(p.ErrorCode))
	}
	return p.Offset, p.LeaderEpoch
}

func TestOffsetCommitValidation(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) {
		cfg.OffsetMetadataMaxBytes = 4
		cfg.PartitionExists = func(topic string, p int32) bool { return topic != "missing" && p < 10 }
	})
	m := newTestMember(t, c, "g", "a")
	joinAll(t, ctx, m)
	gen := m.generation

	// A second group stuck in CompletingRebalance (joined, not synced).
	pending := newTestMember(t, c, "completing", "p")
	if r := pending.join(ctx); r.ErrorCode != 0 {
		t.Fatalf("join: %s", codeName(r.ErrorCode))
	}

	longMeta := commitReq(8, "g", m.id, gen, "t", 0, 1)
	longMeta.Topics[0].Partitions[0].Metadata = kmsg.StringPtr("too long")
	tests := []struct {
		name string
		req  *kmsg.OffsetCommitRequest
		want int16
	}{
		{"member commit", commitReq(8, "g", m.id, gen, "t", 0, 10), 0},
		{"stale generation", commitReq(8, "g", m.id, gen-1, "t", 0, 11), kerr.IllegalGeneration.Code},
		{"future generation", commitReq(8, "g", m.id, gen+1, "t", 0, 11), kerr.IllegalGeneration.Code},
		{"unknown member", commitReq(8, "g", "nobody", gen, "t", 0, 11), kerr.UnknownMemberID.Code},
		{"simple commit to a group with members", commitReq(8, "g", "", -1, "t", 0, 11), kerr.UnknownMemberID.Code},
		{"simple commit creates a group", commitReq(2, "simple", "", -1, "t", 0, 5), 0},
		{"member commit to a missing group (v2)", commitReq(2, "missing-group", "m", 3, "t", 0, 5), kerr.IllegalGeneration.Code},
		{"member commit to a missing group (v9)", commitReq(9, "missing-group", "m", 3, "t", 0, 5), kerr.GroupIDNotFound.Code},
		{"commit while completing a rebalance", commitReq(8, "completing", pending.id, pending.generation, "t", 0, 5), kerr.RebalanceInProgress.Code},
		{"unknown topic", commitReq(8, "g", m.id, gen, "missing", 0, 5), kerr.UnknownTopicOrPartition.Code},
		{"unknown partition", commitReq(8, "g", m.id, gen, "t", 10, 5), kerr.UnknownTopicOrPartition.Code},
		{"metadata too large", longMeta, kerr.OffsetMetadataTooLarge.Code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := c.OffsetCommit(ctx, tt.req)
			if got := resp.Topics[0].Partitions[0].ErrorCode; got != tt.want {
				t.Fatalf("OffsetCommit = %s, want %s", codeName(got), codeName(tt.want))
			}
		})
	}
	// Only the accepted commits are visible.
	if off, epoch := fetchOne(t, c, "g", "t", 0); off != 10 || epoch != 7 {
		t.Fatalf("committed offset = %d epoch %d, want 10 epoch 7", off, epoch)
	}
	if off, epoch := fetchOne(t, c, "simple", "t", 0); off != 5 || epoch != -1 {
		t.Fatalf("simple commit (v2 has no leader epoch) = %d epoch %d, want 5 epoch -1", off, epoch)
	}
	if off, _ := fetchOne(t, c, "missing-group", "t", 0); off != -1 {
		t.Fatalf("refused commit is visible: %d", off)
	}
	for _, s := range c.Groups() {
		if s.Name == "missing-group" {
			t.Fatalf("a refused commit created group %q", s.Name)
		}
	}
}

func TestOffsetCommitStorageFailure(t *testing.T) {
	ctx := testCtx(t)
	log := NewMemoryLog()
	c := newTestCoordinator(t, log)
	log.FailAppends(errors.New("disk full"))
	resp := c.OffsetCommit(ctx, commitReq(8, "g", "", -1, "t", 0, 5))
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("commit with a failing log = %s, want COORDINATOR_NOT_AVAILABLE", codeName(got))
	}
	if off, _ := fetchOne(t, c, "g", "t", 0); off != -1 {
		t.Fatalf("an unwritten commit is visible: %d", off)
	}
	log.FailAppends(nil)
	resp = c.OffsetCommit(ctx, commitReq(8, "g", "", -1, "t", 0, 5))
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != 0 {
		t.Fatalf("commit after recovery = %s", codeName(got))
	}
}

func TestOffsetFetchVersions(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	for _, tp := range []struct {
		topic     string
		partition int32
		offset    int64
	}{{"a", 0, 1}, {"a", 1, 2}, {"b", 0, 3}} {
		if r := c.OffsetCommit(ctx, commitReq(8, "g", "", -1, tp.topic, tp.partition, tp.offset)); r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("commit: %s", codeName(r.Topics[0].Partitions[0].ErrorCode))
		}
	}

	t.Run("v1 named partitions, one uncommitted", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 1
		req.Group = "g"
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "a", Partitions: []int32{1, 5}}}
		resp := roundTrip(t, c.OffsetFetch(req))
		ps := resp.Topics[0].Partitions
		if len(ps) != 2 || ps[0].Offset != 2 || ps[1].Offset != -1 || ps[1].ErrorCode != 0 {
			t.Fatalf("v1 fetch = %+v", ps)
		}
	})
	t.Run("v7 null topics means all", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 7
		req.Group = "g"
		resp := roundTrip(t, c.OffsetFetch(req))
		got := map[string]int64{}
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				got[rt.Topic+"/"+string(rune('0'+p.Partition))] = p.Offset
			}
		}
		if len(got) != 3 || got["a/0"] != 1 || got["a/1"] != 2 || got["b/0"] != 3 {
			t.Fatalf("all offsets = %v", got)
		}
	})
	t.Run("v8 several groups", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 8
		req.Groups = []kmsg.OffsetFetchRequestGroup{
			{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "b", Partitions: []int32{0}}}},
			{Group: "unknown", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "b", Partitions: []int32{0}}}},
			{Group: "g"}, // null topics: all
		}
		resp := roundTrip(t, c.OffsetFetch(req))
		if len(resp.Groups) != 3 {
			t.Fatalf("groups = %d", len(resp.Groups))
		}
		if o := resp.Groups[0].Topics[0].Partitions[0].Offset; o != 3 {
			t.Fatalf("g b/0 = %d, want 3", o)
		}
		if o := resp.Groups[1].Topics[0].Partitions[0].Offset; o != -1 || resp.Groups[1].ErrorCode != 0 {
			t.Fatalf("unknown group = %d %s, want -1 NONE", o, codeName(resp.Groups[1].ErrorCode))
		}
		if n := len(resp.Groups[2].Topics); n != 2 {
			t.Fatalf("all topics of g = %d, want 2", n)
		}
	})
}

func TestOffsetsAndMembersSurviveRestart(t *testing.T) {
	ctx := testCtx(t)
	log := NewMemoryLog()
	c1 := newTestCoordinator(t, log)
	a := newTestMember(t, c1, "g", "a")
	b := newTestMember(t, c1, "g", "b")
	joinAll(t, ctx, a, b)
	if code := a.commit(ctx, "t", 0, 42); code != 0 {
		t.Fatalf("commit: %s", codeName(code))
	}
	if code := b.commit(ctx, "t", 1, 43); code != 0 {
		t.Fatalf("commit: %s", codeName(code))
	}
	if code := b.commit(ctx, "t", 1, 44); code != 0 { // the last commit wins
		t.Fatalf("commit: %s", codeName(code))
	}
	if r := c1.OffsetCommit(ctx, commitReq(2, "simple", "", -1, "u", 3, 9)); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("simple commit failed")
	}
	if err := c1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	c2 := newTestCoordinator(t, log)
	if off, _ := fetchOne(t, c2, "g", "t", 0); off != 42 {
		t.Fatalf("t/0 after restart = %d, want 42", off)
	}
	if off, _ := fetchOne(t, c2, "g", "t", 1); off != 44 {
		t.Fatalf("t/1 after restart = %d, want 44", off)
	}
	if off, _ := fetchOne(t, c2, "simple", "u", 3); off != 9 {
		t.Fatalf("simple group offset after restart = %d, want 9", off)
	}
	// The members carry on without a rebalance: same generation, same
	// assignment.
	a.c, b.c = c2, c2
	for _, m := range []*testMember{a, b} {
		if code := m.heartbeat(); code != 0 {
			t.Fatalf("heartbeat after restart = %s, want NONE", codeName(code))
		}
	}
	d := describe(t, c2, "g")
	if d.State != "Stable" || len(d.Members) != 2 || d.Protocol != "range" {
		t.Fatalf("restored group = %s %s with %d members", d.State, d.Protocol, len(d.Members))
	}
	if code := a.commit(ctx, "t", 0, 50); code != 0 {
		t.Fatalf("commit after restart: %s", codeName(code))
	}
	summaries := c2.Groups()
	if len(summaries) != 2 || summaries[0].Name != "g" || summaries[0].Generation != a.generation || summaries[1].Name != "simple" || summaries[1].State != "Empty" {
		t.Fatalf("groups after restart = %+v", summaries)
	}
	offsets, ok := c2.CommittedOffsets("g")
	if !ok || len(offsets) != 2 || offsets[0].Offset != 50 || offsets[1].Offset != 44 {
		t.Fatalf("CommittedOffsets = %+v", offsets)
	}
}

func TestRestoredMembersExpireWithoutHeartbeats(t *testing.T) {
	ctx := testCtx(t)
	log := NewMemoryLog()
	c1 := newTestCoordinator(t, log)
	a := newTestMember(t, c1, "g", "a")
	a.session = 100 * time.Millisecond
	joinAll(t, ctx, a)
	if code := a.commit(ctx, "t", 0, 1); code != 0 {
		t.Fatalf("commit: %s", codeName(code))
	}
	_ = c1.Close()

	c2 := newTestCoordinator(t, log)
	waitFor(t, "the restored member to expire", 5*time.Second, func() bool { return describe(t, c2, "g").State == "Empty" })
	// Generation moved on and was written: a third start agrees.
	_ = c2.Close()
	c3 := newTestCoordinator(t, log)
	if d := describe(t, c3, "g"); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after second restart: %s with %d members", d.State, len(d.Members))
	}
	if off, _ := fetchOne(t, c3, "g", "t", 0); off != 1 {
		t.Fatalf("offset lost: %d", off)
	}
}

func TestDeleteGroupsWritesTombstones(t *testing.T) {
	ctx := testCtx(t)
	log := NewMemoryLog()
	c := newTestCoordinator(t, log)
	m := newTestMember(t, c, "busy", "a")
	joinAll(t, ctx, m)
	for _, p := range []int32{0, 1} {
		if r := c.OffsetCommit(ctx, commitReq(8, "idle", "", -1, "t", p, 5)); r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("commit failed")
		}
	}

	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Version = 2
	req.Groups = []string{"busy", "idle", "never"}
	resp := c.DeleteGroups(ctx, req)
	want := []int16{kerr.NonEmptyGroup.Code, 0, kerr.GroupIDNotFound.Code}
	for i, g := range resp.Groups {
		if g.Group != req.Groups[i] || g.ErrorCode != want[i] {
			t.Fatalf("DeleteGroups %s = %s, want %s", g.Group, codeName(g.ErrorCode), codeName(want[i]))
		}
	}
	tombstones := map[string]bool{}
	for _, r := range log.Records() {
		if r.Value != nil {
			continue
		}
		d, err := decodeRecord(r)
		if err != nil {
			t.Fatalf("decoding tombstone: %v", err)
		}
		if d.isOffset {
			tombstones[d.group+" "+d.topic+"/"+string(rune('0'+d.partition))] = true
		} else {
			tombstones[d.group] = true
		}
	}
	for _, k := range []string{"idle t/0", "idle t/1", "idle"} {
		if !tombstones[k] {
			t.Fatalf("no tombstone for %q; have %v", k, tombstones)
		}
	}
	if off, _ := fetchOne(t, c, "idle", "t", 0); off != -1 {
		t.Fatalf("deleted group still has offset %d", off)
	}
	_ = c.Close()
	c2 := newTestCoordinator(t, log)
	for _, s := range c2.Groups() {
		if s.Name == "idle" {
			t.Fatalf("deleted group is back after restart")
		}
	}
	if off, _ := fetchOne(t, c2, "idle", "t", 1); off != -1 {
		t.Fatalf("deleted offset is back after restart: %d", off)
	}
}

func TestOffsetDelete(t *testing.T) {
	ctx := testCtx(t)
	log := NewMemoryLog()
	c := newTestCoordinator(t, log)
	m := newTestMember(t, c, "g", "a")
	m.topics = []string{"subscribed"}
	joinAll(t, ctx, m)
	for _, topic := range []string{"subscribed", "old"} {
		if code := m.commit(ctx, topic, 0, 3); code != 0 {
			t.Fatalf("commit: %s", codeName(code))
		}
	}
	del := func(group string, topics ...string) *kmsg.OffsetDeleteResponse {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = group
		for _, topic := range topics {
			req.Topics = append(req.Topics, kmsg.OffsetDeleteRequestTopic{Topic: topic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}})
		}
		return c.OffsetDelete(ctx, req)
	}
	resp := del("g", "subscribed", "old")
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code || resp.Topics[1].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetDelete = %s, %s, %s", codeName(resp.ErrorCode), codeName(resp.Topics[0].Partitions[0].ErrorCode), codeName(resp.Topics[1].Partitions[0].ErrorCode))
	}
	if off, _ := fetchOne(t, c, "g", "old", 0); off != -1 {
		t.Fatalf("deleted offset still there: %d", off)
	}
	if off, _ := fetchOne(t, c, "g", "subscribed", 0); off != 3 {
		t.Fatalf("subscribed offset lost: %d", off)
	}
	if resp := del("nope", "old"); resp.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("OffsetDelete on a missing group = %s", codeName(resp.ErrorCode))
	}
	// Once the member leaves, the subscribed topic's offsets may go too.
	if code := m.leave(); code != 0 {
		t.Fatalf("leave: %s", codeName(code))
	}
	waitFor(t, "the group to empty", 5*time.Second, func() bool { return describe(t, c, "g").State == "Empty" })
	if resp := del("g", "subscribed"); resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetDelete on an empty group = %s", codeName(resp.Topics[0].Partitions[0].ErrorCode))
	}
	_ = c.Close()
	c2 := newTestCoordinator(t, log)
	if off, _ := fetchOne(t, c2, "g", "old", 0); off != -1 {
		t.Fatalf("deleted offset back after restart: %d", off)
	}
}

func TestOffsetExpiry(t *testing.T) {
	ctx := testCtx(t)
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	log := NewMemoryLog()
	c := newTestCoordinator(t, log, func(cfg *Config) {
		cfg.Now = clock
		cfg.OffsetsRetention = time.Hour
	})

	// simple: a group that only commits; ttl: a v2 commit with its own
	// retention; active: a consumer group with a member subscribed to "t".
	if r := c.OffsetCommit(ctx, commitReq(8, "simple", "", -1, "t", 0, 1)); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal("commit failed")
	}
	ttl := commitReq(2, "ttl", "", -1, "t", 0, 1)
	ttl.RetentionTimeMillis = (10 * time.Minute).Milliseconds()
	if r := c.OffsetCommit(ctx, ttl); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal("commit failed")
	}
	m := newTestMember(t, c, "active", "a")
	m.session = time.Minute
	joinAll(t, ctx, m)
	if code := m.commit(ctx, "t", 0, 1); code != 0 {
		t.Fatalf("commit: %s", codeName(code))
	}
	if code := m.commit(ctx, "unsubscribed", 0, 1); code != 0 {
		t.Fatalf("commit: %s", codeName(code))
	}

	advance(11 * time.Minute)
	c.ExpireOffsets(ctx)
	if off, _ := fetchOne(t, c, "ttl", "t", 0); off != -1 {
		t.Fatalf("offset with a 10 minute retention survived 11 minutes")
	}
	if off, _ := fetchOne(t, c, "simple", "t", 0); off != 1 {
		t.Fatalf("offset expired before offsets.retention")
	}

	advance(time.Hour)
	c.ExpireOffsets(ctx)
	if off, _ := fetchOne(t, c, "simple", "t", 0); off != -1 {
		t.Fatalf("simple group's offset survived its retention")
	}
	if off, _ := fetchOne(t, c, "active", "t", 0); off != 1 {
		t.Fatalf("a subscribed topic's offset expired while the group is active")
	}
	if off, _ := fetchOne(t, c, "active", "unsubscribed", 0); off != -1 {
		t.Fatalf("an unsubscribed topic's offset survived its retention")
	}
	if s := c.Stats(); s.OffsetsExpired != 3 || s.OffsetsCommitted != 4 {
		t.Fatalf("stats = %+v, want 3 offsets expired of 4 committed", s)
	}
	names := map[string]bool{}
	for _, s := range c.Groups() {
		names[s.Name] = true
	}
	if names["simple"] || names["ttl"] || !names["active"] {
		t.Fatalf("groups after expiry = %v; empty groups without offsets must go", names)
	}

	// The member leaves: its offsets expire retention after the group
	// became empty, not after the commit.
	if code := m.leave(); code != 0 {
		t.Fatalf("leave: %s", codeName(code))
	}
	waitFor(t, "the group to empty", 5*time.Second, func() bool { return describe(t, c, "active").State == "Empty" })
	advance(59 * time.Minute)
	c.ExpireOffsets(ctx)
	if off, _ := fetchOne(t, c, "active", "t", 0); off != 1 {
		t.Fatalf("offset expired before retention since the group became empty")
	}
	advance(2 * time.Minute)
	c.ExpireOffsets(ctx)
	if off, _ := fetchOne(t, c, "active", "t", 0); off != -1 {
		t.Fatalf("offset survived retention after the group became empty")
	}
	_ = c.Close()
	c2 := newTestCoordinator(t, log, func(cfg *Config) { cfg.Now = clock })
	if n := len(c2.Groups()); n != 0 {
		t.Fatalf("%d groups came back after expiry and restart: %+v", n, c2.Groups())
	}
}

func TestDeleteTopicOffsets(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	for _, topic := range []string{"gone", "kept"} {
		if r := c.OffsetCommit(ctx, commitReq(8, "g", "", -1, topic, 0, 4)); r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatal("commit failed")
		}
	}
	if err := c.DeleteTopicOffsets(ctx, "gone"); err != nil {
		t.Fatalf("DeleteTopicOffsets: %v", err)
	}
	if off, _ := fetchOne(t, c, "g", "gone", 0); off != -1 {
		t.Fatalf("deleted topic's offset still there")
	}
	if off, _ := fetchOne(t, c, "g", "kept", 0); off != 4 {
		t.Fatalf("other topic's offset lost")
	}
}

// roundTrip encodes a response at its version and decodes it again, the way
// it travels to the client, so a field that version cannot carry shows up.
func roundTrip[R interface {
	kmsg.Response
	comparable
}](t *testing.T, resp R) R {
	t.Helper()
	buf := resp.AppendTo(nil)
	fresh := resp.RequestKind().ResponseKind()
	fresh.SetVersion(resp.GetVersion())
	if err := fresh.ReadFrom(buf); err != nil {
		t.Fatalf("decoding %T v%d: %v", resp, resp.GetVersion(), err)
	}
	return fresh.(R)
}

func TestGroupLag(t *testing.T) {
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog())
	for _, tp := range []struct {
		topic     string
		partition int32
		offset    int64
	}{{"a", 0, 10}, {"a", 1, 50}, {"b", 0, 7}, {"gone", 0, 1}} {
		if r := c.OffsetCommit(ctx, commitReq(8, "g", "", -1, tp.topic, tp.partition, tp.offset)); r.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatal("commit failed")
		}
	}
	ends := map[string]int64{"a/0": 25, "a/1": 40, "b/0": 7}
	end := func(topic string, p int32) (int64, bool) {
		hw, ok := ends[fmt.Sprintf("%s/%d", topic, p)]
		return hw, ok
	}
	parts, topics, ok := c.GroupLag("g", end)
	if !ok {
		t.Fatal("group not found")
	}
	wantParts := []PartitionLag{
		{Topic: "a", Partition: 0, Committed: 10, End: 25, Lag: 15},
		{Topic: "a", Partition: 1, Committed: 50, End: 40, Lag: 0}, // committed past a truncated end
		{Topic: "b", Partition: 0, Committed: 7, End: 7, Lag: 0},
	}
	if !slices.Equal(parts, wantParts) {
		t.Fatalf("partition lag = %+v, want %+v", parts, wantParts)
	}
	wantTopics := []TopicLag{{Topic: "a", Sum: 15, Max: 15}, {Topic: "b"}}
	if !slices.Equal(topics, wantTopics) {
		t.Fatalf("topic lag = %+v, want %+v", topics, wantTopics)
	}
	if _, _, ok := c.GroupLag("nope", end); ok {
		t.Fatal("lag of a missing group reported")
	}
}
