package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetDelete handles OffsetDelete v0 (KIP-496): it deletes a group's
// committed offsets for the named partitions, writing tombstones. A group
// with members may only lose offsets of topics its members do not subscribe
// to (GROUP_SUBSCRIBED_TO_TOPIC per partition); a non-consumer group with
// members refuses with NON_EMPTY_GROUP; a group that does not exist answers
// GROUP_ID_NOT_FOUND.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	g, code := c.lockGroup(req.Group, false)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if g == nil {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	}
	defer g.mu.Unlock()

	var subscribed map[string]struct{}
	if g.state != stateEmpty {
		topics, ok := g.subscribedTopics()
		if !ok && g.protocolType != consumerProtocolType {
			resp.ErrorCode = kerr.NonEmptyGroup.Code
			return resp
		}
		subscribed = topics
	}

	type target struct {
		topic, partition int
	}
	var tombstones []Record
	var deleting []target
	for ti, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for pi, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			_, isSubscribed := subscribed[t.Topic]
			switch {
			case c.cfg.PartitionExists != nil && !c.cfg.PartitionExists(t.Topic, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case isSubscribed:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				if _, ok := g.offsets[t.Topic][p.Partition]; ok {
					tombstones = append(tombstones, Record{Key: offsetKey(g.name, t.Topic, p.Partition)})
					deleting = append(deleting, target{ti, pi})
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(tombstones) > 0 {
		if err := c.appendRecords(ctx, tombstones); err != nil {
			g.log().Error("writing offset tombstones to the offsets log", "offsets", len(tombstones), "error", err)
			code := appendErrorCode(err)
			for _, d := range deleting {
				resp.Topics[d.topic].Partitions[d.partition].ErrorCode = code
			}
			return resp
		}
	}
	for _, d := range deleting {
		g.deleteOffset(req.Topics[d.topic].Topic, req.Topics[d.topic].Partitions[d.partition].Partition)
	}
	return resp
}
