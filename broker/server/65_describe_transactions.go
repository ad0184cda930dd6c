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

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var describeTransactionsAPI = api{key: 65, min: 0, max: 0,
	handle: func(_ context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeTransactions(r.(*kmsg.DescribeTransactionsRequest)), nil
	}}

func (s *Server) handleDescribeTransactions(req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		ts := kmsg.NewDescribeTransactionsResponseTransactionState()
		ts.TransactionalID = id
		ts.StartTimestamp, ts.ProducerID, ts.ProducerEpoch = -1, -1, -1
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
			for _, tp := range d.Partitions {
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
