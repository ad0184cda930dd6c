package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit handles OffsetCommit v2-v9 (v0-v1 are below Kafka 4's floor;
// v10 names topics by id, which this coordinator does not resolve).
//
// A commit from a group member must carry the member id and the current
// generation (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, and
// REBALANCE_IN_PROGRESS while the group waits for its assignment). A commit
// with generation -1 and no member id is a "simple" commit, as kafka-go,
// sarama and kcat send when they assign partitions themselves: it is
// accepted while the group has no members, creating the group if needed.
// The offsets are durable in the offsets log before the answer.
//
// Version notes: v2-v4 carry retention_time_ms (-1 = the broker's
// offsets.retention.minutes); v6+ carry the leader epoch; v7+ carry
// group.instance.id; v9+ answer GROUP_ID_NOT_FOUND instead of
// ILLEGAL_GENERATION for a member commit to a group that does not exist.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	failAll := func(code int16) *kmsg.OffsetCommitResponse {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
		return resp
	}
	if req.Version < 7 {
		req.InstanceID = nil
	}

	g, code := c.lockGroup(req.Group, req.Generation < 0)
	if code != 0 {
		return failAll(code)
	}
	if g == nil {
		if req.Version >= 9 {
			return failAll(kerr.GroupIDNotFound.Code)
		}
		return failAll(kerr.IllegalGeneration.Code)
	}
	defer g.mu.Unlock()

	m, code := g.validateCommit(req)
	if code != 0 {
		g.log().Debug("offset commit refused", "member", req.MemberID, "generation", req.Generation,
			"group_generation", g.generation, "state", g.state.String(), "error", codeName(code), "version", req.Version)
		g.dropIfUnused()
		return failAll(code)
	}

	now := c.now().UnixMilli()
	expireAt := int64(-1)
	if req.Version <= 4 && req.RetentionTimeMillis >= 0 {
		expireAt = now + req.RetentionTimeMillis
	}
	type accepted struct {
		topic, partition int // indexes into resp.Topics
		o                committedOffset
	}
	var records []Record
	var commits []accepted
	for ti, t := range req.Topics {
		for pi, p := range t.Partitions {
			rp := &resp.Topics[ti].Partitions[pi]
			if exists := c.cfg.PartitionExists; exists != nil && !exists(t.Topic, p.Partition) {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			var metadata string
			if p.Metadata != nil {
				metadata = *p.Metadata
			}
			if len(metadata) > c.cfg.OffsetMetadataMaxBytes {
				rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			o := committedOffset{offset: p.Offset, leaderEpoch: -1, metadata: metadata, commitAt: now, expireAt: expireAt, seq: c.seq.Add(1)}
			if req.Version >= 6 {
				o.leaderEpoch = p.LeaderEpoch
			}
			records = append(records, Record{Key: offsetKey(g.name, t.Topic, p.Partition), Value: offsetValue(o)})
			commits = append(commits, accepted{ti, pi, o})
		}
	}
	if len(records) > 0 {
		if err := c.appendRecords(ctx, records); err != nil {
			g.log().Error("writing committed offsets to the offsets log", "offsets", len(records), "error", err)
			code := appendErrorCode(err)
			for _, a := range commits {
				resp.Topics[a.topic].Partitions[a.partition].ErrorCode = code
			}
			g.dropIfUnused()
			return resp
		}
	}
	g.log().Debug("offsets committed", "member", req.MemberID, "generation", req.Generation, "offsets", len(commits), "version", req.Version)
	c.stats.offsetsCommitted.Add(int64(len(commits)))
	for _, a := range commits {
		g.setOffset(req.Topics[a.topic].Topic, req.Topics[a.topic].Partitions[a.partition].Partition, a.o)
	}
	if m != nil {
		g.scheduleSessionExpiry(m)
	}
	g.dropIfUnused()
	return resp
}

// validateCommit applies Kafka's rules for who may commit, returning the
// committing member (nil for a simple commit) or an error code.
func (g *group) validateCommit(req *kmsg.OffsetCommitRequest) (*member, int16) {
	if req.Generation < 0 && g.state == stateEmpty {
		return nil, 0 // simple commit to a group without members
	}
	if req.Generation < 0 && req.MemberID == "" && req.InstanceID == nil {
		// A simple commit while the group has members would move offsets
		// under the members' feet.
		return nil, kerr.UnknownMemberID.Code
	}
	m, code := g.validateMember(req.MemberID, req.InstanceID)
	if code != 0 {
		return nil, code
	}
	if req.Generation != g.generation {
		return nil, kerr.IllegalGeneration.Code
	}
	if g.state == stateCompletingRebalance {
		// The assignment of this generation is not known yet; a commit now
		// could be for partitions the member is about to lose.
		return nil, kerr.RebalanceInProgress.Code
	}
	return m, 0
}

// codeName names a Kafka error code for logs.
func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).Error()
}
