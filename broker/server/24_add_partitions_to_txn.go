package server

// AddPartitionsToTxn: v0-4
//
// Behaviour:
//   - v0-3 (producers): the transaction coordinator of the transactional id
//     adds the partitions to the producer's transaction, starting it if
//     none is open, and writes the new set to the transaction log before
//     answering (broker/txn). Unknown topics or partitions answer
//     UNKNOWN_TOPIC_OR_PARTITION and the others of the request
//     OPERATION_NOT_ATTEMPTED, as Kafka does. A request for an id this
//     broker does not coordinate answers NOT_COORDINATOR; a producer id or
//     epoch that is not the id's current one INVALID_PRODUCER_ID_MAPPING or
//     PRODUCER_FENCED. A transaction being committed or aborted, or with
//     another add being written, is waited for (up to 1 s, then
//     CONCURRENT_TRANSACTIONS), so that a new transaction's first adds are
//     not refused while the last one's markers are written.
//   - v4 (brokers, KIP-890 part 1): several transactions per request, each
//     either added as above or, with verify_only, checked without a write:
//     a partition leader asks whether a partition is in the producer's
//     ongoing transaction before it lets a transactional produce open a
//     transaction there (INVALID_TXN_STATE when it is not). Partition
//     leaders send it to the coordinator's replication listener, where it is
//     served too.
//   - Authorization as in Kafka: v0-3 need WRITE on the transactional id
//     (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED on every partition) and
//     WRITE on each topic (else TOPIC_AUTHORIZATION_FAILED on its
//     partitions, and OPERATION_NOT_ATTEMPTED on the others: the
//     transaction gets none of them). Internal topics are never the
//     client's to add (TOPIC_AUTHORIZATION_FAILED): the offsets partition
//     joins a transaction through AddOffsetsToTxn. v4, which only brokers
//     send, needs CLUSTER_ACTION (else CLUSTER_AUTHORIZATION_FAILED); the
//     replication listener, whose peers are brokers, does not check.
//
// Version notes:
//   - v2: PRODUCER_FENCED (KIP-588); older versions get INVALID_PRODUCER_EPOCH.
//   - v3: flexible; v4: batched transactions and verify_only (KIP-890).
//   - v5 (KIP-890 part 2, epoch bumps at every transaction) is not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/txn"
)

var addPartitionsToTxnAPI = api{key: 24, min: 0, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		az := s.authFor(c, 24)
		req := r.(*kmsg.AddPartitionsToTxnRequest)
		if req.Version >= 4 {
			if !az.cluster(ctx, kmsg.ACLOperationClusterAction) {
				resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
				resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
				return resp, nil
			}
			return s.handleAddPartitionsToTxn(ctx, req, nil), nil
		}
		if !az.allowed(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID) {
			return addPartitionsToTxnErrors(req, kerr.TransactionalIDAuthorizationFailed.Code), nil
		}
		var names []string
		for _, t := range req.Topics {
			if !isInternalTopic(t.Topic) {
				names = append(names, t.Topic)
			}
		}
		denied := az.denied(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, names)
		for _, t := range req.Topics {
			if isInternalTopic(t.Topic) {
				if denied == nil {
					denied = map[string]bool{}
				}
				denied[t.Topic] = true
			}
		}
		return s.handleAddPartitionsToTxn(ctx, req, denied), nil
	}}

// addPartitionsToTxnErrors answers every partition of a v0-3 request with
// code.
func addPartitionsToTxnErrors(req *kmsg.AddPartitionsToTxnRequest, code int16) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, t := range req.Topics {
		ot := kmsg.NewAddPartitionsToTxnResponseTopic()
		ot.Topic = t.Topic
		for _, p := range t.Partitions {
			op := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			op.Partition, op.ErrorCode = p, code
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp
}

// handleAddPartitionsToTxn serves an authorized request; denied are the
// topics of a v0-3 request the producer may not write.
func (s *Server) handleAddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest, denied map[string]bool) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version >= 4 {
		for _, rt := range req.Transactions {
			tps := make([]txn.TopicPartition, 0, len(rt.Topics))
			for _, t := range rt.Topics {
				for _, p := range t.Partitions {
					tps = append(tps, txn.TopicPartition{Topic: t.Topic, Partition: p})
				}
			}
			codes := s.addOrVerify(ctx, rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, rt.VerifyOnly, tps, nil)
			out := kmsg.NewAddPartitionsToTxnResponseTransaction()
			out.TransactionalID = rt.TransactionalID
			for _, t := range rt.Topics {
				ot := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
				ot.Topic = t.Topic
				for _, p := range t.Partitions {
					op := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
					op.Partition = p
					op.ErrorCode = codes[txn.TopicPartition{Topic: t.Topic, Partition: p}]
					ot.Partitions = append(ot.Partitions, op)
				}
				out.Topics = append(out.Topics, ot)
			}
			resp.Transactions = append(resp.Transactions, out)
		}
		return resp
	}
	tps := make([]txn.TopicPartition, 0, len(req.Topics))
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, txn.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	codes := s.addOrVerify(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, false, tps, denied)
	for _, t := range req.Topics {
		ot := kmsg.NewAddPartitionsToTxnResponseTopic()
		ot.Topic = t.Topic
		for _, p := range t.Partitions {
			op := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			op.Partition = p
			op.ErrorCode = producerFencedFor(codes[txn.TopicPartition{Topic: t.Topic, Partition: p}], req.Version, 2)
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp
}

// addOrVerify adds partitions to a transaction (or only checks them) and
// returns a code per partition. A partition of a denied topic, or one that
// does not exist, fails the whole request, as in Kafka.
func (s *Server) addOrVerify(ctx context.Context, id string, producerID int64, epoch int16, verifyOnly bool, tps []txn.TopicPartition, denied map[string]bool) map[txn.TopicPartition]int16 {
	out := make(map[txn.TopicPartition]int16, len(tps))
	all := func(code int16) map[txn.TopicPartition]int16 {
		for _, tp := range tps {
			out[tp] = code
		}
		return out
	}
	if !verifyOnly {
		failed := false
		for _, tp := range tps {
			if denied[tp.Topic] {
				out[tp] = kerr.TopicAuthorizationFailed.Code
				failed = true
				continue
			}
			if _, ok := s.lookupPartition(tp.Topic, tp.Partition); !ok {
				out[tp] = kerr.UnknownTopicOrPartition.Code
				failed = true
			}
		}
		if failed {
			for _, tp := range tps {
				if _, bad := out[tp]; !bad {
					out[tp] = kerr.OperationNotAttempted.Code
				}
			}
			return out
		}
	}
	p, ok := s.txnPartitionFor(id)
	if !ok {
		return all(kerr.NotCoordinator.Code)
	}
	if verifyOnly {
		return s.txn.VerifyPartitions(p, id, producerID, epoch, tps)
	}
	return all(s.txn.AddPartitions(ctx, p, id, producerID, epoch, tps))
}
