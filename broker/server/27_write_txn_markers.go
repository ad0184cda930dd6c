package server

// WriteTxnMarkers: v0-1
//
// Behaviour:
//   - Sent by a transaction coordinator to the leaders of a decided
//     transaction's partitions (on the replication listener between brokers;
//     also served to clients, for KIP-664's tooling that aborts a hanging
//     transaction). Each partition gets a COMMIT or ABORT control batch
//     (storage.AppendTxnMarker) through its leader with acks=all, in
//     parallel; the answer comes when the in-sync replicas have it.
//   - Per partition: NOT_LEADER_OR_FOLLOWER elsewhere than the leader,
//     UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist,
//     INVALID_PRODUCER_EPOCH for a producer epoch older than the
//     partition's, TRANSACTION_COORDINATOR_FENCED for a coordinator epoch
//     older than the last marker's, NOT_ENOUGH_REPLICAS(_AFTER_APPEND) and
//     REQUEST_TIMED_OUT as Produce; the coordinator retries the retriable
//     ones.
//   - A marker on __consumer_offsets makes the producer's transactional
//     offsets visible (COMMIT) or drops them (ABORT) once it is written.
//   - On a client listener it needs CLUSTER_ACTION (else
//     CLUSTER_AUTHORIZATION_FAILED on every partition), as in Kafka; the
//     replication listener, whose peers are brokers, does not check.
//
// Version notes:
//   - v1: flexible. v2 (KIP-1228's transaction version field) is not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/txn"
)

var writeTxnMarkersAPI = api{key: 27, min: 0, max: 1,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.WriteTxnMarkersRequest)
		if !s.authFor(c, 27).cluster(ctx, kmsg.ACLOperationClusterAction) {
			return writeTxnMarkersErrors(req, kerr.ClusterAuthorizationFailed.Code), nil
		}
		return s.handleWriteTxnMarkers(ctx, req), nil
	}}

// writeTxnMarkersErrors answers every partition of a request with code.
func writeTxnMarkersErrors(req *kmsg.WriteTxnMarkersRequest, code int16) *kmsg.WriteTxnMarkersResponse {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition, rp.ErrorCode = p, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp
}

func (s *Server) handleWriteTxnMarkers(ctx context.Context, req *kmsg.WriteTxnMarkersRequest) *kmsg.WriteTxnMarkersResponse {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		var tps []txn.TopicPartition
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, txn.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		marker := storage.TxnMarker{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, CoordinatorEpoch: m.CoordinatorEpoch, Commit: m.Committed}
		codes := s.writeTxnMarkers(ctx, marker, tps)
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = p
				rp.ErrorCode = codes[txn.TopicPartition{Topic: t.Topic, Partition: p}]
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp
}
