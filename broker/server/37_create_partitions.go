package server

// CreatePartitions: v0-3
//
// Behaviour:
//   - Grows a topic to Count partitions; Count must exceed the current
//     count (INVALID_PARTITIONS otherwise). The controller places the new
//     partitions' replicas, unless the request assigns them: one list per
//     new partition, each naming registered brokers once, as many as the
//     topic's replication factor (INVALID_REPLICA_ASSIGNMENT otherwise).
//   - ValidateOnly checks and changes nothing.
//   - TimeoutMillis (when positive, at most 15 s; else 8 s) bounds the
//     wait for this broker's previous topic change and for the metadata
//     quorum: past it the topic answers REQUEST_TIMED_OUT (retriable;
//     before, KAFKA_STORAGE_ERROR) and its partitions may still be added.
//     Topics of one request share it.
//   - Needs ALTER on each topic (else TOPIC_AUTHORIZATION_FAILED for it,
//     whether it exists or not).
//   - At most cluster.MaxRecordsPerUserOp (10,000) new partitions per
//     topic and request, and no broker above max.broker.partitions
//     replicas (POLICY_VIOLATION, as Kafka's "excessively large batch").
//   - The internal topics keep their partition count (INVALID_REQUEST):
//     transactional ids are placed by __transaction_state's count.
//
// Version notes:
//   - v1: same as v0 (throttle on quota violation); v2: flexible; v3: same as v2.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster"
)

var createPartitionsAPI = api{key: 37, min: 0, max: 3,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleCreatePartitions(ctx, s.authFor(c, 37), r.(*kmsg.CreatePartitionsRequest)), nil
	}}

func (s *Server) handleCreatePartitions(ctx context.Context, az reqAuth, req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	names := make([]string, len(req.Topics))
	for i, rt := range req.Topics {
		names[i] = rt.Topic
	}
	denied := az.denied(ctx, kmsg.ACLOperationAlter, kmsg.ACLResourceTypeTopic, names)
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			st.ErrorMessage = &msg
		}
		t, ok := s.lookupTopic(rt.Topic)
		switch {
		case denied[rt.Topic]:
			fail(kerr.TopicAuthorizationFailed.Code, "not authorized to alter topic "+rt.Topic)
		case !ok:
			fail(kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %s does not exist", rt.Topic))
		case isInternalTopic(rt.Topic):
			// A transactional id's coordinator is the partition its
			// hash picks among __transaction_state's partitions as
			// they are now: more of them would move every open
			// transaction to a coordinator that never heard of it.
			fail(kerr.InvalidRequest.Code, fmt.Sprintf("the partition count of internal topic %s cannot change", rt.Topic))
		case rt.Count <= int32(len(t.partitions)):
			fail(kerr.InvalidPartitions.Code, fmt.Sprintf("topic %s has %d partitions; the new count %d must be larger", rt.Topic, len(t.partitions), rt.Count))
		case int(rt.Count)-len(t.partitions) > cluster.MaxRecordsPerUserOp:
			// Refused before anything is placed: the controller would
			// compute and replicate a placement of that size.
			fail(kerr.PolicyViolation.Code, fmt.Sprintf("unable to perform excessively large batch operation: adding %d partitions to topic %s, at most %d per request", int(rt.Count)-len(t.partitions), rt.Topic, cluster.MaxRecordsPerUserOp))
		case rt.Assignment != nil && len(rt.Assignment) != int(rt.Count)-len(t.partitions):
			fail(kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("%d assignments for %d new partitions", len(rt.Assignment), int(rt.Count)-len(t.partitions)))
		default:
			var assignments [][]int32
			for _, a := range rt.Assignment {
				assignments = append(assignments, a.Replicas)
			}
			if req.ValidateOnly {
				if err := s.validAssignments(t, assignments); err != nil {
					fail(kerr.InvalidReplicaAssignment.Code, err.Error())
				} else if err := s.checkBrokerPartitions(rt.Count-int32(len(t.partitions)), int16(len(t.partitions[0].replicas)), assignments); err != nil {
					fail(kerr.PolicyViolation.Code, err.Error())
				}
				break
			}
			if err := s.addPartitions(cctx, rt.Topic, rt.Count, assignments); err != nil {
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					fail(kerr.RequestTimedOut.Code, err.Error())
				case errors.Is(err, errUnknownTopic):
					fail(kerr.UnknownTopicOrPartition.Code, err.Error())
				case errors.Is(err, errInvalidPartitions):
					fail(kerr.InvalidPartitions.Code, err.Error())
				case errors.Is(err, errReplicaAssignment):
					fail(kerr.InvalidReplicaAssignment.Code, err.Error())
				case errors.Is(err, errReplicationFactor):
					fail(kerr.InvalidReplicationFactor.Code, err.Error())
				case errors.Is(err, errPolicyViolation):
					fail(kerr.PolicyViolation.Code, err.Error())
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

// validAssignments checks explicit replicas for new partitions of t the way
// the controller will: as many as the topic's replication factor, each a
// registered broker, none twice.
func (s *Server) validAssignments(t *topic, assignments [][]int32) error {
	st := s.node.Controller.State()
	rf := len(t.partitions[0].replicas)
	for i, replicas := range assignments {
		if len(replicas) != rf {
			return fmt.Errorf("new partition %d: %d replicas, the topic has %d", i, len(replicas), rf)
		}
		for j, r := range replicas {
			if _, ok := st.Brokers[r]; !ok || slices.Contains(replicas[:j], r) {
				return fmt.Errorf("new partition %d: replicas %v name an unknown broker or one twice", i, replicas)
			}
		}
	}
	return nil
}
