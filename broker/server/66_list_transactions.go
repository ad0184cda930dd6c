package server

// ListTransactions: v0-1
//
// Behaviour (KIP-664):
//   - Lists the transactional ids this broker coordinates (a client asks
//     every broker), filtered by state names and producer ids when given;
//     state names it does not know are returned in UnknownStateFilters and
//     match nothing. COORDINATOR_LOAD_IN_PROGRESS while a partition of
//     __transaction_state it leads is still loading.
//   - Only transactional ids the principal may DESCRIBE are listed (no
//     error), as in Kafka.
//
// Version notes:
//   - v1: DurationFilterMillis (KIP-994): only transactions open at least
//     that long (-1: no filter).
//   - v2 (a transactional id regular expression) is not served: Java's
//     regular expressions and Go's differ.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/txn"
)

var listTransactionsAPI = api{key: 66, min: 0, max: 1,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleListTransactions(ctx, s.authFor(c, 66), r.(*kmsg.ListTransactionsRequest)), nil
	}}

func (s *Server) handleListTransactions(ctx context.Context, az reqAuth, req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	f := txn.ListFilter{ProducerIDs: req.ProducerIDFilters, MinDurationMs: -1}
	if req.Version >= 1 {
		f.MinDurationMs = req.DurationFilterMillis
	}
	unknown := false
	for _, name := range req.StateFilters {
		st, ok := txn.ParseState(name)
		if !ok {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
			unknown = true
			continue
		}
		f.States = append(f.States, st)
	}
	if unknown && len(f.States) == 0 {
		return resp // only unknown states asked for: nothing matches
	}
	list, loading := s.txn.List(f)
	if loading {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp
	}
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.TransactionalID
	}
	hidden := az.deniedQuietly(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, ids)
	for _, d := range list {
		if hidden[d.TransactionalID] {
			continue
		}
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.TransactionState = d.TransactionalID, d.ProducerID, d.State.String()
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp
}
