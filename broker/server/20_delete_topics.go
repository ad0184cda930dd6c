package server

// DeleteTopics: v1-6
//
// Behaviour:
//   - Forgets the topic in the metadata first, then deletes its partition
//     logs (freeing the disk); a crash in between leaves files that the
//     next start deletes.
//   - delete.topic.enable=false answers TOPIC_DELETION_DISABLED.
//   - Unknown names answer UNKNOWN_TOPIC_OR_PARTITION; unknown ids (v6)
//     UNKNOWN_TOPIC_ID.
//   - Needs DELETE on each topic, and DESCRIBE on one named by id (else
//     TOPIC_AUTHORIZATION_FAILED for it, the name left out), checked
//     before its existence.
//   - TimeoutMillis (when positive, at most 15 s; else 8 s) bounds the
//     wait for this broker's previous topic change and for the metadata
//     quorum: past it the topic answers REQUEST_TIMED_OUT (retriable) and
//     may still be deleted, as in Kafka. Topics of one request share it.
//
// Version notes:
//   - v1: throttle (floor in Kafka 4, KIP-896); v4: flexible;
//     v5: error messages; v6: topics by name or id (KIP-516).

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var deleteTopicsAPI = api{key: 20, min: 1, max: 6,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDeleteTopics(ctx, s.authFor(c, 20), r.(*kmsg.DeleteTopicsRequest)), nil
	}}

func (s *Server) handleDeleteTopics(ctx context.Context, az reqAuth, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	targets := req.Topics
	if req.Version < 6 {
		targets = nil
		for _, name := range req.TopicNames {
			t := kmsg.NewDeleteTopicsRequestTopic()
			n := name
			t.Topic = &n
			targets = append(targets, t)
		}
	}
	// DELETE on every topic; DESCRIBE too on those named by id, whose name
	// is not disclosed to a principal that may not describe them.
	var names, byID []string
	for _, rt := range targets {
		switch {
		case rt.Topic != nil:
			names = append(names, *rt.Topic)
		default:
			if t, ok := s.lookupTopicID(rt.TopicID); ok {
				names, byID = append(names, t.name), append(byID, t.name)
			}
		}
	}
	describeDenied := az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, byID)
	deleteDenied := az.denied(ctx, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic, names)
	enabled := s.Config().DeleteTopicEnable
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	for _, rt := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			st.ErrorMessage = &msg
		}
		var name string
		switch {
		case rt.Topic != nil:
			name = *rt.Topic
		default:
			t, ok := s.lookupTopicID(rt.TopicID)
			if !ok {
				fail(kerr.UnknownTopicID.Code, "no topic with this id")
				resp.Topics = append(resp.Topics, st)
				continue
			}
			name = t.name
			if describeDenied[name] {
				fail(kerr.TopicAuthorizationFailed.Code, "not authorized to describe this topic")
				resp.Topics = append(resp.Topics, st)
				continue
			}
			st.Topic = &name
		}
		if deleteDenied[name] {
			fail(kerr.TopicAuthorizationFailed.Code, "not authorized to delete topic "+name)
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if t, ok := s.lookupTopic(name); ok {
			st.TopicID = t.id
		}
		if isInternalTopic(name) {
			fail(kerr.InvalidRequest.Code, "internal topics cannot be deleted")
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if !enabled {
			fail(kerr.TopicDeletionDisabled.Code, "delete.topic.enable is false")
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if err := s.deleteTopic(cctx, name); err != nil {
			switch {
			case errors.Is(err, errUnknownTopic):
				fail(kerr.UnknownTopicOrPartition.Code, err.Error())
			case errors.Is(err, context.DeadlineExceeded):
				fail(kerr.RequestTimedOut.Code, err.Error())
			default:
				s.log.Error("deleting topic", "topic", name, "err", err)
				fail(kerr.KafkaStorageError.Code, err.Error())
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
