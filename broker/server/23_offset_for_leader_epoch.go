package server

// OffsetForLeaderEpoch: v2-4
//
// Behaviour:
//   - For each partition, the end offset of the requested leader epoch
//     (the start of the next epoch, or the log end for the current one)
//     and the largest epoch <= the requested one, from the partition's
//     leader-epoch checkpoint (KIP-101/279). Consumers use it to detect
//     truncation after a leader change (KIP-320); followers will use it
//     when replication arrives.
//   - An epoch older than any we know answers UNDEFINED_EPOCH (-1) and
//     offset -1, as Kafka does.
//   - CurrentLeaderEpoch is checked: FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH.
//   - Needs CLUSTER_ACTION on the cluster, or else DESCRIBE on each topic
//     (else TOPIC_AUTHORIZATION_FAILED on its partitions), as in Kafka.
//
// Version notes:
//   - v2: CurrentLeaderEpoch (floor in Kafka 4, KIP-896); v3: ReplicaID;
//     v4: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
)

var offsetForLeaderEpochAPI = api{key: 23, min: 2, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleOffsetForLeaderEpoch(ctx, s.authFor(c, 23), r.(*kmsg.OffsetForLeaderEpochRequest)), nil
	}}

func (s *Server) handleOffsetForLeaderEpoch(ctx context.Context, az reqAuth, req *kmsg.OffsetForLeaderEpochRequest) *kmsg.OffsetForLeaderEpochResponse {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	// Brokers ask with CLUSTER_ACTION; consumers checking for truncation
	// (KIP-320) with DESCRIBE on the topic, as Kafka allows.
	var denied map[string]bool
	if !az.allowedQuietly(ctx, kmsg.ACLOperationClusterAction, kmsg.ACLResourceTypeCluster, authz.ClusterName) {
		names := make([]string, len(req.Topics))
		for i, rt := range req.Topics {
			names[i] = rt.Topic
		}
		denied = az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, names)
	}
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		t, topicOK := s.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			var p *partition
			ok := topicOK
			if ok {
				p, ok = t.partition(rp.Partition)
			}
			switch {
			case denied[rt.Topic]:
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case !ok:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				log, _, code := s.servingLog(p, rp.CurrentLeaderEpoch, true)
				if code != 0 {
					sp.ErrorCode = code
					break
				}
				sp.LeaderEpoch, sp.EndOffset = log.EndOffsetForLeaderEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
