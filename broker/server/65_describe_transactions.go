package server

// DescribeTransactions: v0
//
// Behaviour (KIP-664):
//   - For each transactional id, answered by its coordinator
//     (NOT_COORDINATOR elsewhere, COORDINATOR_LOAD_IN_PROGRESS while its
//     partition of __transaction_state loads, TRANSACTIONAL_ID_NOT_FOUND
//     for an id it does not know): the state (Empty, Ongoing,
//     PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort), the
//     transaction timeout, the start time of the open transaction (-1 if
//     none), the producer id and epoch, and the partitions in the
//     transaction.
//   - Needs DESCRIBE on each transactional id (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED for it); the partitions listed
//     are those of topics the principal may DESCRIBE, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var describeTransactionsAPI = api{key: 65, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeTransactions(ctx, s.authFor(c, 65), r.(*kmsg.DescribeTransactionsRequest)), nil
	}}

func (s *Server) handleDescribeTransactions(ctx context.Context, az reqAuth, req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	denied := az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, req.TransactionalIDs)
	for _, id := range req.TransactionalIDs {
		ts := kmsg.NewDescribeTransactionsResponseTransactionState()
		ts.TransactionalID = id
		ts.StartTimestamp, ts.ProducerID, ts.ProducerEpoch = -1, -1, -1
		if denied[id] {
			ts.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			resp.TransactionStates = append(resp.TransactionStates, ts)
			continue
		}
		p, ok := s.txnPartitionFor(id)
		if !ok {
			ts.ErrorCode = kerr.NotCoordinator.Code
			resp.TransactionStates = append(resp.TransactionStates, ts)
			continue
		}
		d, code := s.txn.Describe(p, id)
		ts.ErrorCode = code
		if code == 0 {
			ts.State, ts.TimeoutMillis, ts.StartTimestamp = d.State.String(), d.TimeoutMs, d.StartTime
			ts.ProducerID, ts.ProducerEpoch = d.ProducerID, d.ProducerEpoch
			var topics []string
			for _, tp := range d.Partitions {
				topics = append(topics, tp.Topic)
			}
			hidden := az.deniedQuietly(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, topics)
			for _, tp := range d.Partitions {
				if hidden[tp.Topic] {
					continue
				}
				if n := len(ts.Topics); n == 0 || ts.Topics[n-1].Topic != tp.Topic {
					t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					t.Topic = tp.Topic
					ts.Topics = append(ts.Topics, t)
				}
				ts.Topics[len(ts.Topics)-1].Partitions = append(ts.Topics[len(ts.Topics)-1].Partitions, tp.Partition)
			}
		}
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp
}
