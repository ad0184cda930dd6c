package server

// ListPartitionReassignments: v0
//
// Behaviour:
//   - Lists the partitions with a reassignment running (adding or removing
//     replicas), from this broker's copy of the cluster metadata: all of
//     them for null Topics, else those named (unknown ones are left out,
//     as Kafka does). Replicas is the current set, old and new replicas
//     together while the reassignment runs. On a single broker nothing
//     can move, so the list is empty.
//   - Needs DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED).
//
// Version notes:
//   - v0 is flexible.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var listPartitionReassignmentsAPI = api{key: 46, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleListPartitionReassignments(ctx, s.authFor(c, 46), r.(*kmsg.ListPartitionReassignmentsRequest)), nil
	}}

func (s *Server) handleListPartitionReassignments(ctx context.Context, az reqAuth, req *kmsg.ListPartitionReassignmentsRequest) *kmsg.ListPartitionReassignmentsResponse {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !az.cluster(ctx, kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	st := s.node.Controller.State()
	want := func(topic string, p int32) bool { return true }
	names := st.TopicNames()
	if req.Topics != nil {
		asked := map[string][]int32{}
		names = names[:0:0]
		for _, rt := range req.Topics {
			if _, seen := asked[rt.Topic]; !seen {
				names = append(names, rt.Topic)
			}
			asked[rt.Topic] = append(asked[rt.Topic], rt.Partitions...)
		}
		want = func(topic string, p int32) bool { return slices.Contains(asked[topic], p) }
	}
	for _, name := range names {
		t, ok := st.Topic(name)
		if !ok {
			continue
		}
		rt := kmsg.NewListPartitionReassignmentsResponseTopic()
		rt.Topic = name
		for i, p := range t.Partitions() {
			if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 || !want(name, int32(i)) {
				continue
			}
			rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
			rp.Partition = int32(i)
			rp.Replicas = nonNil(slices.Clone(p.Replicas))
			rp.AddingReplicas = nonNil(slices.Clone(p.AddingReplicas))
			rp.RemovingReplicas = nonNil(slices.Clone(p.RemovingReplicas))
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	return resp
}
