package server

// OffsetFetch: v1-9 (broker/groups does the work)
//
// Behaviour:
//   - Committed offsets of a group (v8+: several groups); -1 for none.
//   - Needs DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED: the
//     group's error from v2, each partition's in v1) and on each topic
//     asked for (else TOPIC_AUTHORIZATION_FAILED on its partitions); when
//     all topics are asked for, those the principal may not describe are
//     left out.
//   - v8+: a group named again in the request answers INVALID_REQUEST
//     (its offsets are fetched the first time only).
//
// Version notes:
//   - v1 is kafka-go's version and Kafka 4's floor (KIP-896).
//   - v2: all partitions with a null list; v6: flexible; v7: require stable;
//     v8: batched groups (KIP-709). v10 (topic ids) not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var offsetFetchAPI = api{key: 9, min: 1, max: 9,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleOffsetFetch(ctx, s.authFor(c, 9), r.(*kmsg.OffsetFetchRequest)), nil
	}}

func (s *Server) handleOffsetFetch(ctx context.Context, az reqAuth, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	if req.Version >= 8 {
		return s.offsetFetchGroups(ctx, az, req)
	}
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if !az.allowed(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, req.Group) {
		if req.Version >= 2 {
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return resp
		}
		// v1 has no group-level error: every partition carries it.
		for _, t := range req.Topics {
			resp.Topics = append(resp.Topics, offsetFetchTopicError(t.Topic, t.Partitions, kerr.GroupAuthorizationFailed.Code))
		}
		return resp
	}
	topics, denied := s.authorizedOffsetFetchTopics(ctx, az, req.Topics)
	filtered := *req
	filtered.Topics = topics
	if len(req.Topics) > 0 && len(topics) == 0 {
		// Nothing left to ask the coordinator.
		for _, t := range req.Topics {
			resp.Topics = append(resp.Topics, offsetFetchTopicError(t.Topic, t.Partitions, kerr.TopicAuthorizationFailed.Code))
		}
		return resp
	}
	got := s.coordinator().OffsetFetch(&filtered)
	if req.Topics == nil {
		// Every committed topic: those the principal may not describe
		// are left out.
		kept := got.Topics[:0]
		for _, t := range got.Topics {
			if az.allowedQuietly(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Topic) {
				kept = append(kept, t)
			}
		}
		got.Topics = kept
		return got
	}
	for _, t := range req.Topics {
		if denied[t.Topic] {
			got.Topics = append(got.Topics, offsetFetchTopicError(t.Topic, t.Partitions, kerr.TopicAuthorizationFailed.Code))
		}
	}
	return got
}

// authorizedOffsetFetchTopics splits the topics asked for (nil: all) by
// DESCRIBE on each.
func (s *Server) authorizedOffsetFetchTopics(ctx context.Context, az reqAuth, topics []kmsg.OffsetFetchRequestTopic) ([]kmsg.OffsetFetchRequestTopic, map[string]bool) {
	if topics == nil {
		return nil, nil
	}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Topic
	}
	denied := az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, names)
	out := make([]kmsg.OffsetFetchRequestTopic, 0, len(topics))
	for _, t := range topics {
		if !denied[t.Topic] {
			out = append(out, t)
		}
	}
	return out, denied
}

// offsetFetchGroups answers v8+, several groups: DESCRIBE on each group
// (else GROUP_AUTHORIZATION_FAILED for it) and on each topic.
func (s *Server) offsetFetchGroups(ctx context.Context, az reqAuth, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	names := make([]string, len(req.Groups))
	for i, g := range req.Groups {
		names[i] = g.Group
	}
	deniedGroups := az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, names)
	// A group named again is answered INVALID_REQUEST, not fetched again:
	// a few bytes of request asked for every offset the group committed
	// each time.
	seen := make(map[string]bool, len(req.Groups))
	for _, rg := range req.Groups {
		if seen[rg.Group] {
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = rg.Group, kerr.InvalidRequest.Code
			resp.Groups = append(resp.Groups, g)
			continue
		}
		seen[rg.Group] = true
		if deniedGroups[rg.Group] {
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = rg.Group, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, g)
			continue
		}
		one := *req
		one.Groups = []kmsg.OffsetFetchRequestGroup{rg}
		var denied map[string]bool
		if rg.Topics != nil {
			topicNames := make([]string, len(rg.Topics))
			for i, t := range rg.Topics {
				topicNames[i] = t.Topic
			}
			denied = az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, topicNames)
			one.Groups[0].Topics = nil
			for _, t := range rg.Topics {
				if !denied[t.Topic] {
					one.Groups[0].Topics = append(one.Groups[0].Topics, t)
				}
			}
			if one.Groups[0].Topics == nil {
				one.Groups[0].Topics = []kmsg.OffsetFetchRequestGroupTopic{}
			}
		}
		got := s.coordinator().OffsetFetch(&one)
		g := kmsg.NewOffsetFetchResponseGroup()
		g.Group = rg.Group
		if len(got.Groups) == 1 {
			g = got.Groups[0]
		}
		if rg.Topics == nil {
			kept := g.Topics[:0]
			for _, t := range g.Topics {
				if az.allowedQuietly(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Topic) {
					kept = append(kept, t)
				}
			}
			g.Topics = kept
		}
		for _, t := range rg.Topics {
			if !denied[t.Topic] {
				continue
			}
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			g.Topics = append(g.Topics, rt)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp
}

// offsetFetchTopicError answers every partition of a topic with code.
func offsetFetchTopicError(topic string, partitions []int32, code int16) kmsg.OffsetFetchResponseTopic {
	rt := kmsg.NewOffsetFetchResponseTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p, -1, -1, kmsg.StringPtr(""), code
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}
