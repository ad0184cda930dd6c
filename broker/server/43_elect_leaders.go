package server

// ElectLeaders: v0-2
//
// Behaviour:
//   - The active controller runs a preferred (type 0, and every v0
//     request) or unclean (type 1) election on each named partition, or on
//     every partition when Topics is null (then only partitions where an
//     election was needed are listed). Per partition: ELECTION_NOT_NEEDED
//     when the preferred replica already leads (always on a single
//     broker), PREFERRED_LEADER_NOT_AVAILABLE when it is not in the ISR or
//     not alive, ELIGIBLE_LEADERS_NOT_AVAILABLE when an unclean election
//     finds no live replica, UNKNOWN_TOPIC_OR_PARTITION.
//   - Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED at the
//     top and on every partition asked for).
//
// Version notes:
//   - v1: ElectionType (KIP-460) and the top-level error code; v2: flexible.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

var electLeadersAPI = api{key: 43, min: 0, max: 2,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleElectLeaders(ctx, s.authFor(c, 43), r.(*kmsg.ElectLeadersRequest)), nil
	}}

func (s *Server) handleElectLeaders(ctx context.Context, az reqAuth, req *kmsg.ElectLeadersRequest) *kmsg.ElectLeadersResponse {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	if !az.cluster(ctx, kmsg.ACLOperationAlter) {
		// Kafka answers the error at the top (v1+) and on every
		// partition asked for.
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		for _, rt := range req.Topics {
			t := kmsg.NewElectLeadersResponseTopic()
			t.Topic = rt.Topic
			for _, p := range rt.Partitions {
				rp := kmsg.NewElectLeadersResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, kerr.ClusterAuthorizationFailed.Code
				t.Partitions = append(t.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	}
	how := metadata.ElectPreferred
	if req.Version >= 1 {
		switch req.ElectionType {
		case 0:
		case 1:
			how = metadata.ElectUnclean
		default:
			resp.ErrorCode = kerr.InvalidRequest.Code
			return resp
		}
	}
	var tps []metadata.TopicPartition
	for _, rt := range req.Topics {
		for _, p := range rt.Partitions {
			tps = append(tps, metadata.TopicPartition{Topic: rt.Topic, Partition: p})
		}
	}
	if req.Topics != nil && len(tps) == 0 {
		return resp // nothing asked for
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	results, err := s.node.Controller.ElectLeaders(cctx, how, tps)
	if err != nil {
		s.log.Warn("leader election failed", "err", err)
		resp.ErrorCode = clusterErrorCode(err)
		if req.Version == 0 {
			// v0 has no top-level code: every partition gets it.
			for _, tp := range tps {
				results = append(results, metadata.ElectionResult{TopicPartition: tp, Err: err})
			}
		}
	}
	byTopic := map[string]int{}
	for _, r := range results {
		i, ok := byTopic[r.Topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[r.Topic] = i
			t := kmsg.NewElectLeadersResponseTopic()
			t.Topic = r.Topic
			resp.Topics = append(resp.Topics, t)
		}
		p := kmsg.NewElectLeadersResponseTopicPartition()
		p.Partition = r.Partition
		if r.Err != nil {
			p.ErrorCode = clusterErrorCode(r.Err)
			msg := r.Err.Error()
			p.ErrorMessage = &msg
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, p)
	}
	return resp
}

// clusterErrorCode maps errors of the cluster metadata to Kafka codes.
func clusterErrorCode(err error) int16 {
	for _, m := range []struct {
		err  error
		code int16
	}{
		{metadata.ErrElectionNotNeeded, kerr.ElectionNotNeeded.Code},
		{metadata.ErrPreferredLeaderNotAvailable, kerr.PreferredLeaderNotAvailable.Code},
		{metadata.ErrEligibleLeadersNotAvailable, kerr.EligibleLeadersNotAvailable.Code},
		{metadata.ErrUnknownTopicOrPartition, kerr.UnknownTopicOrPartition.Code},
		{metadata.ErrInvalidReplicaAssignment, kerr.InvalidReplicaAssignment.Code},
		{metadata.ErrNoReassignmentInProgress, kerr.NoReassignmentInProgress.Code},
		{metadata.ErrInvalidRequest, kerr.InvalidRequest.Code},
		{metadata.ErrInvalidPartitions, kerr.InvalidPartitions.Code},
		{metadata.ErrPolicyViolation, kerr.PolicyViolation.Code},
		{context.DeadlineExceeded, kerr.RequestTimedOut.Code},
	} {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	return kerr.UnknownServerError.Code
}
