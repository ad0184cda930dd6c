package server

// AlterPartitionReassignments: v0-1
//
// Behaviour:
//   - Each partition's new replica list starts a reassignment through the
//     active controller (null replicas cancel a running one:
//     NO_REASSIGNMENT_IN_PROGRESS when there is none). The partition keeps
//     the old and new replicas until every new one is in sync, then drops
//     the old ones; ListPartitionReassignments shows the progress. Unknown
//     brokers or duplicates answer INVALID_REPLICA_ASSIGNMENT; on a single
//     broker the only assignment possible is [this node], already in force.
//   - v1 with AllowReplicationFactorChange false refuses a list whose length
//     differs from the current replica count (INVALID_REPLICATION_FACTOR),
//     as Kafka's KIP-860.
//   - Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED at the
//     top and on every partition).
//
// Version notes:
//   - v0 is flexible; v1: AllowReplicationFactorChange (KIP-860).

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

var alterPartitionReassignmentsAPI = api{key: 45, min: 0, max: 1,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleAlterPartitionReassignments(ctx, s.authFor(c, 45), r.(*kmsg.AlterPartitionAssignmentsRequest)), nil
	}}

func (s *Server) handleAlterPartitionReassignments(ctx context.Context, az reqAuth, req *kmsg.AlterPartitionAssignmentsRequest) *kmsg.AlterPartitionAssignmentsResponse {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	if !az.cluster(ctx, kmsg.ACLOperationAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		for _, rt := range req.Topics {
			t := kmsg.NewAlterPartitionAssignmentsResponseTopic()
			t.Topic = rt.Topic
			for _, p := range rt.Partitions {
				rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.ClusterAuthorizationFailed.Code
				t.Partitions = append(t.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	}
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	allowRFChange := req.Version < 1 || req.AllowReplicationFactorChange
	type item struct {
		out *kmsg.AlterPartitionAssignmentsResponseTopicPartition
		r   metadata.Reassignment
	}
	var items []item
	resp.Topics = make([]kmsg.AlterPartitionAssignmentsResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		*st = kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.AlterPartitionAssignmentsResponseTopicPartition, len(rt.Partitions))
		t, topicOK := s.lookupTopic(rt.Topic)
		for j, rp := range rt.Partitions {
			sp := &st.Partitions[j]
			*sp = kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			fail := func(code int16, msg string) { sp.ErrorCode, sp.ErrorMessage = code, &msg }
			var p *partition
			ok := topicOK
			if ok {
				p, ok = t.partition(rp.Partition)
			}
			switch {
			case !ok:
				fail(kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("%s-%d does not exist", rt.Topic, rp.Partition))
			case rp.Replicas != nil && !allowRFChange && len(rp.Replicas) != len(p.replicas):
				fail(kerr.InvalidReplicationFactor.Code, fmt.Sprintf("%d replicas asked, the partition has %d and AllowReplicationFactorChange is false", len(rp.Replicas), len(p.replicas)))
			default:
				items = append(items, item{out: sp, r: metadata.Reassignment{Topic: rt.Topic, Partition: rp.Partition, Replicas: rp.Replicas}})
			}
		}
	}
	if len(items) == 0 {
		return resp
	}
	rs := make([]metadata.Reassignment, len(items))
	for i, it := range items {
		rs[i] = it.r
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	errs, err := s.node.Controller.Reassign(cctx, rs)
	if err != nil {
		s.log.Warn("partition reassignment failed", "err", err)
		resp.ErrorCode = clusterErrorCode(err)
		msg := err.Error()
		resp.ErrorMessage = &msg
		return resp
	}
	for i, it := range items {
		if i < len(errs) && errs[i] != nil {
			it.out.ErrorCode = clusterErrorCode(errs[i])
			msg := errs[i].Error()
			it.out.ErrorMessage = &msg
		}
	}
	return resp
}
