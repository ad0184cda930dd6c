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
	denied := az.denied(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, topicNames(req.Topics, offsetCommitTopic))
	if denied == nil {
		return s.coordinator().OffsetCommit(ctx, req)
	}
	resp := offsetCommitErrors(req, req.Topics, kerr.TopicAuthorizationFailed.Code)
	resp.Topics = commitPermitted(req.Topics, offsetCommitTopic, denied, resp.Topics, func(allowed []kmsg.OffsetCommitRequestTopic) []kmsg.OffsetCommitResponseTopic {
		only := *req
		only.Topics = allowed
		return s.coordinator().OffsetCommit(ctx, &only).Topics
	})
	return resp
}

func offsetCommitTopic(t kmsg.OffsetCommitRequestTopic) string { return t.Topic }

// topicNames lists the topic of each entry of a request.
func topicNames[T any](topics []T, name func(T) string) []string {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = name(t)
	}
	return names
}

// commitPermitted commits the topics that are not denied, in one call, and
// puts each one's result in place of its entry in failed (the answer for
// every topic, TOPIC_AUTHORIZATION_FAILED), so the answer keeps the
// request's order: a commit with some topics refused commits the others,
// as in Kafka.
func commitPermitted[T, R any](topics []T, name func(T) string, denied map[string]bool, failed []R, commit func([]T) []R) []R {
	var allowed []T
	for _, t := range topics {
		if !denied[name(t)] {
			allowed = append(allowed, t)
		}
	}
	if len(allowed) == 0 {
		return failed
	}
	committed := commit(allowed)
	j := 0
	for i, t := range topics {
		if !denied[name(t)] && j < len(committed) {
			failed[i] = committed[j]
			j++
		}
	}
	return failed
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
