package groups

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch handles OffsetFetch v1-v9: v1-v7 ask for one group, v8+ for
// several (KIP-709). A null topic list (v2+) asks for every committed
// partition of the group. A partition without a committed offset, or a group
// that does not exist, answers offset -1 with no error, as Kafka does.
// With RequireStable (v7+, KIP-447), a partition whose group has offsets
// of an undecided transaction pending answers UNSTABLE_OFFSET_COMMIT (the
// consumer retries until the transaction ends) instead of an offset that
// the transaction may be about to move. v10 (topic ids) is not served.
func (c *Coordinator) OffsetFetch(req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var topics []fetchTopic
			if rg.Topics != nil {
				topics = make([]fetchTopic, 0, len(rg.Topics))
				for _, t := range rg.Topics {
					topics = append(topics, fetchTopic{t.Topic, t.Partitions})
				}
			}
			fetched, code := c.fetchOffsets(rg.Group, topics, req.RequireStable)
			group := kmsg.NewOffsetFetchResponseGroup()
			group.Group = rg.Group
			group.ErrorCode = code
			for _, t := range fetched {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.topic
				for _, p := range t.partitions {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.partition, p.offset, p.leaderEpoch, kmsg.StringPtr(p.metadata)
					rp.ErrorCode = p.code
					rt.Partitions = append(rt.Partitions, rp)
				}
				group.Topics = append(group.Topics, rt)
			}
			resp.Groups = append(resp.Groups, group)
		}
		return resp
	}

	var topics []fetchTopic
	if req.Topics != nil {
		topics = make([]fetchTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			topics = append(topics, fetchTopic{t.Topic, t.Partitions})
		}
	}
	fetched, code := c.fetchOffsets(req.Group, topics, req.Version >= 7 && req.RequireStable)
	if code != 0 && req.Version < 2 {
		// v0-v1 have no group-level error: every partition carries it.
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.topic
			for _, p := range t.partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.Metadata, rp.ErrorCode = p, -1, kmsg.StringPtr(""), code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	resp.ErrorCode = code
	for _, t := range fetched {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.topic
		for _, p := range t.partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.partition, p.offset, p.leaderEpoch, kmsg.StringPtr(p.metadata)
			rp.ErrorCode = p.code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

type fetchTopic struct {
	topic      string
	partitions []int32
}

type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

type fetchedPartition struct {
	partition   int32
	offset      int64
	leaderEpoch int32
	metadata    string
	code        int16 // UNSTABLE_OFFSET_COMMIT with require_stable
}

// fetchOffsets reads a group's committed offsets; nil topics means all of
// them. code is a group-level error (the coordinator is closed).
// requireStable refuses partitions with transactional offsets pending.
func (c *Coordinator) fetchOffsets(groupName string, topics []fetchTopic, requireStable bool) ([]fetchedTopic, int16) {
	g, code := c.lockGroup(groupName, false)
	if code != 0 {
		return nil, code
	}
	var offsets map[string]map[int32]committedOffset
	if g != nil {
		defer g.mu.Unlock()
		offsets = g.offsets
	}
	if topics == nil {
		for topic := range offsets {
			var parts []int32
			for p := range offsets[topic] {
				parts = append(parts, p)
			}
			slices.Sort(parts)
			topics = append(topics, fetchTopic{topic, parts})
		}
		slices.SortFunc(topics, func(a, b fetchTopic) int { return cmp.Compare(a.topic, b.topic) })
	}
	out := make([]fetchedTopic, 0, len(topics))
	for _, t := range topics {
		ft := fetchedTopic{topic: t.topic}
		for _, p := range t.partitions {
			fp := fetchedPartition{partition: p, offset: -1, leaderEpoch: -1}
			switch o, ok := offsets[t.topic][p]; {
			case requireStable && g != nil && g.hasPendingTxn(t.topic, p):
				fp.code = kerr.UnstableOffsetCommit.Code
			case ok:
				fp.offset, fp.leaderEpoch, fp.metadata = o.offset, o.leaderEpoch, o.metadata
			}
			ft.partitions = append(ft.partitions, fp)
		}
		out = append(out, ft)
	}
	return out, 0
}
