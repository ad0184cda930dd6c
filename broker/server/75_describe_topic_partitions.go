package server

// DescribeTopicPartitions: v0
//
// Behaviour (KIP-966; kafka-topics --describe in Kafka 3.8+ prefers it to
// Metadata):
//   - Topics named in the request, or every topic when the list is empty,
//     in name order, with each partition's leader, epoch, replicas, ISR
//     and offline replicas. The leader is named as Metadata names it: -1
//     with LEADER_NOT_AVAILABLE when none is elected, -1 with
//     LISTENER_NOT_FOUND when it has no endpoint on the client's listener
//     (Kafka's answer). Eligible-leader-replica lists are empty (KIP-966's
//     ELR is not kept: elections are from the ISR only).
//   - Paging: at most ResponsePartitionLimit partitions (capped at 2000,
//     as Kafka does); when more remain, NextCursor names the topic and
//     partition to continue from, and a request's Cursor starts there.
//   - Unknown topics answer UNKNOWN_TOPIC_OR_PARTITION; invalid names
//     INVALID_TOPIC_EXCEPTION.
//   - Needs DESCRIBE on each topic: a named topic without it answers
//     TOPIC_AUTHORIZATION_FAILED (existing or not); the full listing leaves
//     it out. Authorized operations are the topic operations the principal
//     may do.

import (
	"context"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var describeTopicPartitionsAPI = api{key: 75, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeTopicPartitions(ctx, s.authFor(c, 75), r.(*kmsg.DescribeTopicPartitionsRequest)), nil
	}}

// maxDescribePartitions is Kafka's max.request.partition.size.limit default.
const maxDescribePartitions = 2000

func (s *Server) handleDescribeTopicPartitions(ctx context.Context, az reqAuth, req *kmsg.DescribeTopicPartitionsRequest) *kmsg.DescribeTopicPartitionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
	limit := int(req.ResponsePartitionLimit)
	if limit <= 0 || limit > maxDescribePartitions {
		limit = maxDescribePartitions
	}
	var (
		names  []string
		denied map[string]bool
		// The answer lists no brokers, yet a client looks the leader
		// up in its Metadata's list: the same rule names it.
		brokers = s.brokers(az.rc.Listener)
	)
	if len(req.Topics) == 0 {
		// Every topic the principal may describe; the others are left
		// out.
		for _, t := range s.sortedTopics() {
			names = append(names, t.name)
		}
		hidden := az.deniedQuietly(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, names)
		names = slices.DeleteFunc(names, func(n string) bool { return hidden[n] })
	} else {
		seen := map[string]bool{}
		for _, t := range req.Topics {
			if !seen[t.Topic] {
				seen[t.Topic] = true
				names = append(names, t.Topic)
			}
		}
		sort.Strings(names)
		denied = az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, names)
	}
	var startTopic string
	var startPartition int32
	if req.Cursor != nil {
		startTopic, startPartition = req.Cursor.Topic, req.Cursor.Partition
	}
	left := limit
	for _, name := range names {
		if name < startTopic {
			continue
		}
		first := int32(0)
		if name == startTopic {
			first = startPartition
		}
		rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
		n := name
		rt.Topic = &n
		if denied[name] {
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		t, ok := s.lookupTopic(name)
		if !ok {
			rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if validTopicName(name) != nil {
				rt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		if left == 0 {
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: first}
			break
		}
		rt.TopicID = t.id
		rt.IsInternal = isInternalTopic(name)
		rt.AuthorizedOperations = az.authorizedOperations(ctx, kmsg.ACLResourceTypeTopic, name, topicOperations)
		for i := first; int(i) < len(t.partitions); i++ {
			if left == 0 {
				resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: i}
				break
			}
			p := t.partitions[i]
			rp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
			rp.Partition = p.index
			rp.LeaderID, rp.ErrorCode = s.listedLeader(p, brokers, true)
			rp.LeaderEpoch = p.leaderEpoch
			rp.Replicas = nonNil(p.replicas)
			rp.ISR = nonNil(p.isr)
			rp.EligibleLeaderReplicas = []int32{}
			rp.LastKnownELR = []int32{}
			rp.OfflineReplicas = nonNil(p.offline)
			rt.Partitions = append(rt.Partitions, rp)
			left--
		}
		resp.Topics = append(resp.Topics, rt)
		if resp.NextCursor != nil {
			break
		}
	}
	return resp
}
