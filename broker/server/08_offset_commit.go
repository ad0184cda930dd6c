package server

// OffsetCommit: v2-9 (broker/groups does the work)
//
// Behaviour:
//   - Commits offsets to the durable offsets log (__consumer_offsets)
//     before answering; generation checks for group members, "simple"
//     commits (generation -1) for clients that assign partitions themselves.
//   - Commits for partitions this broker does not have answer
//     UNKNOWN_TOPIC_OR_PARTITION.
//   - Needs READ on the group (else GROUP_AUTHORIZATION_FAILED on every
//     partition) and on each topic (else TOPIC_AUTHORIZATION_FAILED on its
//     partitions; the others are committed).
//
// Version notes:
//   - v2 is kafka-go's version and Kafka 4's floor (KIP-896).
//   - v8: flexible; v9: KIP-848 member epochs. v10 (topic ids) not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var offsetCommitAPI = api{key: 8, min: 2, max: 9,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleOffsetCommit(ctx, s.authFor(c, 8), r.(*kmsg.OffsetCommitRequest)), nil
	}}

func (s *Server) handleOffsetCommit(ctx context.Context, az reqAuth, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	if !az.allowed(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		return offsetCommitErrors(req, req.Topics, kerr.GroupAuthorizationFailed.Code)
	}
	names := make([]string, len(req.Topics))
	for i, t := range req.Topics {
		names[i] = t.Topic
	}
	denied := az.denied(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, names)
	if denied == nil {
		return s.coordinator().OffsetCommit(ctx, req)
	}
	// The allowed topics are committed; the others answer
	// TOPIC_AUTHORIZATION_FAILED, in the request's order.
	allowed := *req
	allowed.Topics = nil
	for _, t := range req.Topics {
		if !denied[t.Topic] {
			allowed.Topics = append(allowed.Topics, t)
		}
	}
	var committed *kmsg.OffsetCommitResponse
	if len(allowed.Topics) > 0 {
		committed = s.coordinator().OffsetCommit(ctx, &allowed)
	}
	resp := offsetCommitErrors(req, req.Topics, kerr.TopicAuthorizationFailed.Code)
	j := 0
	for i, t := range req.Topics {
		if !denied[t.Topic] && committed != nil && j < len(committed.Topics) {
			resp.Topics[i] = committed.Topics[j]
			j++
		}
	}
	return resp
}

// offsetCommitErrors answers every partition of topics with code.
func offsetCommitErrors(req *kmsg.OffsetCommitRequest, topics []kmsg.OffsetCommitRequestTopic, code int16) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, t := range topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
