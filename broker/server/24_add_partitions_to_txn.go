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
//     PRODUCER_FENCED; a transaction being committed or aborted
//     CONCURRENT_TRANSACTIONS.
//   - v4 (brokers, KIP-890 part 1): several transactions per request, each
//     either added as above or, with verify_only, checked without a write:
//     a partition leader asks whether a partition is in the producer's
//     ongoing transaction before it lets a transactional produce open a
//     transaction there (INVALID_TXN_STATE when it is not). Partition
//     leaders send it to the coordinator's replication listener, where it is
//     served too.
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
	handle: func(ctx context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleAddPartitionsToTxn(ctx, r.(*kmsg.AddPartitionsToTxnRequest)), nil
	}}

func (s *Server) handleAddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version >= 4 {
		for _, rt := range req.Transactions {
			tps := make([]txn.TopicPartition, 0, len(rt.Topics))
			for _, t := range rt.Topics {
				for _, p := range t.Partitions {
					tps = append(tps, txn.TopicPartition{Topic: t.Topic, Partition: p})
				}
			}
			codes := s.addOrVerify(ctx, rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, rt.VerifyOnly, tps)
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
	codes := s.addOrVerify(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, false, tps)
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
// returns a code per partition.
func (s *Server) addOrVerify(ctx context.Context, id string, producerID int64, epoch int16, verifyOnly bool, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	out := make(map[txn.TopicPartition]int16, len(tps))
	all := func(code int16) map[txn.TopicPartition]int16 {
		for _, tp := range tps {
			out[tp] = code
		}
		return out
	}
	p, ok := s.txnPartitionFor(id)
	if !ok {
		return all(kerr.NotCoordinator.Code)
	}
	if verifyOnly {
		return s.txn.VerifyPartitions(p, id, producerID, epoch, tps)
	}
	unknown := false
	for _, tp := range tps {
		if _, ok := s.lookupPartition(tp.Topic, tp.Partition); !ok {
			out[tp] = kerr.UnknownTopicOrPartition.Code
			unknown = true
		}
	}
	if unknown {
		for _, tp := range tps {
			if _, bad := out[tp]; !bad {
				out[tp] = kerr.OperationNotAttempted.Code
			}
		}
		return out
	}
	return all(s.txn.AddPartitions(ctx, p, id, producerID, epoch, tps))
}
