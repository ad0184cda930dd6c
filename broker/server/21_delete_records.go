package server

// DeleteRecords: v0-2
//
// Behaviour:
//   - Moves a partition's log start offset up to Offset (-1 means the high
//     watermark); whole segments below it are deleted by storage. The new
//     log start offset is returned as the low watermark.
//   - An offset past the high watermark answers OFFSET_OUT_OF_RANGE.
//   - Needs DELETE on each topic (else TOPIC_AUTHORIZATION_FAILED on its
//     partitions, whether it exists or not).
//   - The internal topics (__consumer_offsets, __transaction_state) answer
//     INVALID_TOPIC_EXCEPTION, as Kafka's ReplicaManager does: their
//     records are the groups' committed offsets and the transactions'
//     state, which a coordinator loading the partition again would not
//     find, whatever ACL allowed DELETE on every topic.
//
// Version notes:
//   - v1: same as v0; v2: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var deleteRecordsAPI = api{key: 21, min: 0, max: 2,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDeleteRecords(ctx, s.authFor(c, 21), r.(*kmsg.DeleteRecordsRequest)), nil
	}}

func (s *Server) handleDeleteRecords(ctx context.Context, az reqAuth, req *kmsg.DeleteRecordsRequest) *kmsg.DeleteRecordsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	names := make([]string, len(req.Topics))
	for i, rt := range req.Topics {
		names[i] = rt.Topic
	}
	denied := az.denied(ctx, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic, names)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		t, topicOK := s.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			if denied[rt.Topic] {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if isInternalTopic(rt.Topic) {
				sp.ErrorCode = kerr.InvalidTopicException.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			var p *partition
			ok := topicOK
			if ok {
				p, ok = t.partition(rp.Partition)
			}
			if !ok {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			log, _, code := s.servingLog(p, -1, false)
			if code != 0 {
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			hw := log.HighWatermark()
			offset := rp.Offset
			if offset == -1 {
				offset = hw
			}
			if offset < 0 || offset > hw {
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			low, err := log.DeleteRecordsBefore(offset)
			if err != nil {
				sp.ErrorCode = storageErrorCode(err)
				s.log.Error("deleting records", "topic", p.topic, "partition", p.index, "offset", offset, "err", err)
			} else {
				sp.LowWatermark = low
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
