package server

// DescribeProducers: v0
//
// Behaviour (KIP-664):
//   - For each partition, answered by its leader (NOT_LEADER_OR_FOLLOWER
//     elsewhere, UNKNOWN_TOPIC_OR_PARTITION when it does not exist): the
//     producers the partition keeps state for, with their epoch, last
//     sequence, last timestamp, the epoch of the transaction coordinator
//     that wrote their last marker, and the first offset of their open
//     transaction (-1 if none). Tools use it to find hanging transactions
//     and the coordinator epoch to abort one with WriteTxnMarkers.
//   - Needs READ on each topic (else TOPIC_AUTHORIZATION_FAILED on its
//     partitions), as in Kafka.
//   - A partition named again in the request answers INVALID_REQUEST (it
//     is described the first time only).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var describeProducersAPI = api{key: 61, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeProducers(ctx, s.authFor(c, 61), r.(*kmsg.DescribeProducersRequest)), nil
	}}

func (s *Server) handleDescribeProducers(ctx context.Context, az reqAuth, req *kmsg.DescribeProducersRequest) *kmsg.DescribeProducersResponse {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	names := make([]string, len(req.Topics))
	for i, t := range req.Topics {
		names[i] = t.Topic
	}
	denied := az.denied(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, names)
	type partition struct {
		topic string
		index int32
	}
	seen := map[partition]bool{}
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, idx := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = idx
			// A partition named again is not described again: 4 bytes of
			// request asked for every producer it keeps (any number, see
			// producer.id.expiration.ms) each time.
			k := partition{rt.Topic, idx}
			if seen[k] {
				sp.ErrorCode = kerr.InvalidRequest.Code
				msg := "partition named more than once in the request"
				sp.ErrorMessage = &msg
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			seen[k] = true
			if denied[rt.Topic] {
				// Before the existence check: a principal that may not
				// read a topic learns nothing of it.
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			p, ok := s.lookupPartition(rt.Topic, idx)
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
			for _, ps := range log.Producers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID, ap.ProducerEpoch = ps.ProducerID, int32(ps.ProducerEpoch)
				ap.LastSequence, ap.LastTimestamp = ps.LastSequence, ps.LastTimestamp
				ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = ps.CoordinatorEpoch, ps.CurrentTxnStartOffset
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
