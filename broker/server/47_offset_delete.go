package server

// OffsetDelete: v0 (broker/groups does the work)
//
// Behaviour:
//   - Deletes a group's committed offsets for partitions its members do not
//     consume (KIP-496).
//   - Needs DELETE on the group (else GROUP_AUTHORIZATION_FAILED) and READ
//     on each topic (else TOPIC_AUTHORIZATION_FAILED on its partitions).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var offsetDeleteAPI = api{key: 47, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.OffsetDeleteRequest)
		az := s.authFor(c, 47)
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		if !az.allowed(ctx, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, req.Group) {
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return resp, nil
		}
		names := make([]string, len(req.Topics))
		for i, t := range req.Topics {
			names[i] = t.Topic
		}
		denied := az.denied(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, names)
		if denied == nil {
			return s.coordinator().OffsetDelete(ctx, req), nil
		}
		allowed := *req
		allowed.Topics = nil
		for _, t := range req.Topics {
			if !denied[t.Topic] {
				allowed.Topics = append(allowed.Topics, t)
			}
		}
		if len(allowed.Topics) > 0 {
			resp = s.coordinator().OffsetDelete(ctx, &allowed)
			if resp.ErrorCode != 0 {
				return resp, nil
			}
		}
		for _, t := range req.Topics {
			if !denied[t.Topic] {
				continue
			}
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}}
