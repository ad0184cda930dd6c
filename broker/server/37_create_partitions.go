package server

// CreatePartitions: v0-3
//
// Behaviour:
//   - Grows a topic to Count partitions; Count must exceed the current
//     count (INVALID_PARTITIONS otherwise). An explicit assignment must
//     name only this node (INVALID_REPLICA_ASSIGNMENT).
//   - ValidateOnly checks and changes nothing.
//
// Version notes:
//   - v1: same as v0 (throttle on quota violation); v2: flexible; v3: same as v2.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/server/metastore"
)

var createPartitionsAPI = api{key: 37, min: 0, max: 3,
	handle: func(_ context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleCreatePartitions(r.(*kmsg.CreatePartitionsRequest)), nil
	}}

func (s *Server) handleCreatePartitions(req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			st.ErrorMessage = &msg
		}
		t, ok := s.lookupTopic(rt.Topic)
		switch {
		case !ok:
			fail(kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %s does not exist", rt.Topic))
		case rt.Count <= int32(len(t.partitions)):
			fail(kerr.InvalidPartitions.Code, fmt.Sprintf("topic %s has %d partitions; the new count %d must be larger", rt.Topic, len(t.partitions), rt.Count))
		case rt.Assignment != nil && len(rt.Assignment) != int(rt.Count)-len(t.partitions):
			fail(kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("%d assignments for %d new partitions", len(rt.Assignment), int(rt.Count)-len(t.partitions)))
		default:
			for _, a := range rt.Assignment {
				if len(a.Replicas) != 1 || a.Replicas[0] != s.nodeID {
					fail(kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("assignment %v: this single-node cluster has only broker %d", a.Replicas, s.nodeID))
					break
				}
			}
			if st.ErrorCode != 0 || req.ValidateOnly {
				break
			}
			if err := s.addPartitions(rt.Topic, rt.Count); err != nil {
				switch {
				case errors.Is(err, metastore.ErrUnknownTopic):
					fail(kerr.UnknownTopicOrPartition.Code, err.Error())
				case errors.Is(err, metastore.ErrInvalidChange):
					fail(kerr.InvalidPartitions.Code, err.Error())
				default:
					s.log.Error("adding partitions", "topic", rt.Topic, "err", err)
					fail(kerr.KafkaStorageError.Code, err.Error())
				}
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
