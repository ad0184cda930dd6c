package server

// FindCoordinator: v0-5
//
// Behaviour:
//   - One __consumer_offsets partition, so one coordinator: the leader of
//     that partition (on a single broker, itself). The topic is created on
//     the first lookup (replication factor min(3, live brokers));
//     COORDINATOR_NOT_AVAILABLE while it has no leader.
//   - Transaction coordinators (key type 1): the leader of the partition of
//     __transaction_state that the transactional id hashes to (Kafka's
//     choice, broker/txn.PartitionFor). The topic is created on the first
//     lookup with transaction.state.log.num.partitions partitions and
//     default.replication.factor replicas (COORDINATOR_NOT_AVAILABLE while
//     too few brokers are live for that, or while the partition has no
//     leader).
//   - v4+ batches several keys in one request (KIP-699).
//   - The coordinator's endpoint is the one of the listener the request
//     came in on; a coordinator without that listener is
//     COORDINATOR_NOT_AVAILABLE.
//   - Needs DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED) or on
//     the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
//     key by key.
//
// Version notes:
//   - v0: kafka-go's version (no floor above it); v1: key type, error message
//   - v3: flexible; v4: batched keys; v6 (share groups) not served.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var findCoordinatorAPI = api{key: 10, min: 0, max: 5,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleFindCoordinator(ctx, s.authFor(c, 10), r.(*kmsg.FindCoordinatorRequest)), nil
	}}

const (
	coordinatorGroup = 0
	coordinatorTxn   = 1
)

func (s *Server) handleFindCoordinator(ctx context.Context, az reqAuth, req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	// DESCRIBE on the group, or on the transactional id, each key asks for.
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	var denied map[string]bool
	deniedCode := kerr.GroupAuthorizationFailed.Code
	switch req.CoordinatorType {
	case coordinatorGroup:
		denied = az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, keys)
	case coordinatorTxn:
		denied = az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, keys)
		deniedCode = kerr.TransactionalIDAuthorizationFailed.Code
	}
	listener := az.rc.Listener
	// The request carries no timeout: creating the offsets or
	// transaction topic has the broker's bound for such requests, shared
	// by the request's keys.
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	// One offsets partition: every group has the same coordinator; a
	// transactional id has the leader of its partition of
	// __transaction_state.
	answer := func(key string) (brokerInfo, int16, *string) {
		switch req.CoordinatorType {
		case coordinatorGroup:
		case coordinatorTxn:
			return s.findTxnCoordinator(cctx, listener, key)
		default:
			msg := fmt.Sprintf("unknown coordinator type %d", req.CoordinatorType)
			return brokerInfo{}, kerr.InvalidRequest.Code, &msg
		}
		if err := s.ensureOffsetsTopic(cctx); err != nil {
			msg := fmt.Sprintf("creating %s: %v", offsetsTopic, err)
			return brokerInfo{}, kerr.CoordinatorNotAvailable.Code, &msg
		}
		b, ok, noListener := s.coordinatorBroker(listener)
		switch {
		case noListener:
			msg := fmt.Sprintf("the coordinator has no %s listener", listener)
			return brokerInfo{}, kerr.CoordinatorNotAvailable.Code, &msg
		case !ok:
			msg := offsetsTopic + " has no leader right now"
			return brokerInfo{}, kerr.CoordinatorNotAvailable.Code, &msg
		}
		return b, 0, nil
	}
	if req.Version < 4 {
		if denied[req.CoordinatorKey] {
			resp.ErrorCode, resp.NodeID, resp.Port = deniedCode, -1, -1
			return resp
		}
		b, code, msg := answer(req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage = code, msg
		if code == 0 {
			resp.NodeID, resp.Host, resp.Port = b.id, b.host, b.port
		} else {
			resp.NodeID, resp.Port = -1, -1
		}
		return resp
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		if denied[key] {
			c.ErrorCode, c.NodeID, c.Port = deniedCode, -1, -1
			resp.Coordinators = append(resp.Coordinators, c)
			continue
		}
		b, code, msg := answer(key)
		c.ErrorCode, c.ErrorMessage = code, msg
		if code == 0 {
			c.NodeID, c.Host, c.Port = b.id, b.host, b.port
		} else {
			c.NodeID, c.Port = -1, -1
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp
}

// findTxnCoordinator answers FindCoordinator for a transactional id, with
// the coordinator's endpoint on the listener the request came in on.
func (s *Server) findTxnCoordinator(ctx context.Context, listener, id string) (brokerInfo, int16, *string) {
	if id == "" {
		msg := "an empty transactional id has no coordinator"
		return brokerInfo{}, kerr.InvalidRequest.Code, &msg
	}
	if err := s.ensureTxnTopic(ctx); err != nil {
		msg := fmt.Sprintf("creating %s: %v", txnTopic, err)
		return brokerInfo{}, kerr.CoordinatorNotAvailable.Code, &msg
	}
	b, ok, noListener := s.txnCoordinatorBroker(listener, id)
	switch {
	case noListener:
		msg := fmt.Sprintf("the coordinator has no %s listener", listener)
		return brokerInfo{}, kerr.CoordinatorNotAvailable.Code, &msg
	case !ok:
		msg := txnTopic + " partition of this transactional id has no leader right now"
		return brokerInfo{}, kerr.CoordinatorNotAvailable.Code, &msg
	}
	return b, 0, nil
}
