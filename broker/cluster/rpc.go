package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
)

// ErrNotController means the node asked is not the active controller (the
// Raft leader); the response names the leader when it knows it.
var ErrNotController = errors.New("not the active controller")

// ErrShuttingDown means the controller is closing.
var ErrShuttingDown = errors.New("controller shutting down")

// ErrUnknownRequest means the active controller does not know the request
// op: it runs an older version (see Controller.heartbeat).
var ErrUnknownRequest = errors.New("unknown controller request")

// rpcTimeout bounds one request/response exchange.
const rpcTimeout = 10 * time.Second

// wireErrors are the errors that keep their identity across the RPC: the
// response carries the index, the client rebuilds an error that errors.Is
// matches. Append only.
var wireErrors = []error{
	ErrNotController,
	metadata.ErrHalted,
	metadata.ErrUnknownCommand,
	metadata.ErrBadCommand,
	metadata.ErrClusterIDMismatch,
	metadata.ErrUnknownBroker,
	metadata.ErrStaleBrokerEpoch,
	metadata.ErrTopicExists,
	metadata.ErrUnknownTopicOrPartition,
	metadata.ErrInvalidReplicaAssignment,
	metadata.ErrInvalidPartitions,
	metadata.ErrInvalidRequest,
	metadata.ErrNotLeader,
	metadata.ErrFencedLeaderEpoch,
	metadata.ErrInvalidUpdateVersion,
	metadata.ErrIneligibleReplica,
	metadata.ErrElectionNotNeeded,
	metadata.ErrPreferredLeaderNotAvailable,
	metadata.ErrEligibleLeadersNotAvailable,
	metadata.ErrNoReassignmentInProgress,
	placement.ErrNotEnoughBrokers,
	metadata.ErrResourceNotFound,
	ErrUnknownRequest,
}

// wireError is an error as it travels: the index of its sentinel (0 for
// none) and its text.
type wireError struct {
	Code int    `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	for i, s := range wireErrors {
		if errors.Is(err, s) {
			return &wireError{Code: i + 1, Msg: err.Error()}
		}
	}
	return &wireError{Msg: err.Error()}
}

// remoteError is an error received over the RPC.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	var s error
	if w.Code > 0 && w.Code <= len(wireErrors) {
		s = wireErrors[w.Code-1]
	}
	return &remoteError{sentinel: s, msg: w.Msg}
}

type rpcOp string

const (
	opApply            rpcOp = "apply"             // propose a metadata command
	opJoin             rpcOp = "join"              // add the caller as a Raft non-voter
	opCreateTopic      rpcOp = "create-topic"      // place and create a topic
	opCreatePartitions rpcOp = "create-partitions" // place and add partitions
	opUnreachable      rpcOp = "unreachable"       // a broker's connection to NodeID failed
	opHeartbeat        rpcOp = "heartbeat"         // broker NodeID at BrokerEpoch renews its lease for LeaseMs
)

type rpcRequest struct {
	Op       rpcOp         `json:"op"`
	Command  []byte        `json:"command,omitempty"`
	NodeID   int32         `json:"node_id,omitempty"`
	RaftAddr string        `json:"raft_addr,omitempty"`
	Topic    *topicRequest `json:"topic,omitempty"`
	// BrokerEpoch and LeaseMs are a heartbeat's incarnation and lease.
	BrokerEpoch int64 `json:"broker_epoch,omitempty"`
	LeaseMs     int64 `json:"lease_ms,omitempty"`
	// Retry says an earlier try of this request failed, its outcome
	// unknown (a lost answer, a leadership lost before commit): a
	// request whose effect the state already shows is answered as
	// done, not refused as a first try would be. An older controller
	// ignores it.
	Retry bool `json:"retry,omitempty"`
}

// topicRequest asks the active controller to place partitions.
type topicRequest struct {
	Name              string            `json:"name"`
	Partitions        int32             `json:"partitions"` // count to create, or total to grow to
	ReplicationFactor int16             `json:"replication_factor,omitempty"`
	Configs           map[string]string `json:"configs,omitempty"`
	// Assignments, when set, are the replicas of each new partition,
	// chosen by the client instead of placed by the controller.
	Assignments [][]int32 `json:"assignments,omitempty"`
	// ID, when set, is the new topic's id, drawn by the node that
	// asked: a request retried after an unknown outcome (a lost
	// response, a leadership lost before commit) carries the same id,
	// so finding the topic with it means the first try created it.
	ID metadata.TopicID `json:"id,omitzero"`
}

type rpcResponse struct {
	Value  json.RawMessage `json:"value,omitempty"`
	Err    *wireError      `json:"err,omitempty"`
	Leader string          `json:"leader,omitempty"` // with ErrNotController
}

// wireElection and the error list are how results holding errors travel.
type wireElection struct {
	metadata.TopicPartition
	Leader int32      `json:"leader"`
	Err    *wireError `json:"err,omitempty"`
}

// encodeValue turns a command result into JSON, keeping error identities.
func encodeValue(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case []metadata.ElectionResult:
		out := make([]wireElection, len(v))
		for i, r := range v {
			out[i] = wireElection{TopicPartition: r.TopicPartition, Leader: r.Leader, Err: toWire(r.Err)}
		}
		return json.Marshal(out)
	case []error:
		out := make([]*wireError, len(v))
		for i, e := range v {
			out[i] = toWire(e)
		}
		return json.Marshal(out)
	}
	return json.Marshal(v)
}

func decodeElections(b json.RawMessage) ([]metadata.ElectionResult, error) {
	var in []wireElection
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	out := make([]metadata.ElectionResult, len(in))
	for i, r := range in {
		out[i] = metadata.ElectionResult{TopicPartition: r.TopicPartition, Leader: r.Leader, Err: r.Err.err()}
	}
	return out, nil
}

func decodeErrors(b json.RawMessage) ([]error, error) {
	var in []*wireError
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	out := make([]error, len(in))
	for i, e := range in {
		out[i] = e.err()
	}
	return out, nil
}

// call sends one request to addr and reads the response.
func (m *mux) call(addr string, req rpcRequest, timeout time.Duration) (*rpcResponse, error) {
	c, err := m.dial(addr, connRPC, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("sending %s to %s: %w", req.Op, addr, err)
	}
	var resp rpcResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("reading %s response from %s: %w", req.Op, addr, err)
	}
	return &resp, nil
}

// serveRPC answers one request on c.
func (ctl *Controller) serveRPC(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rpcTimeout))
	var req rpcRequest
	if err := json.NewDecoder(c).Decode(&req); err != nil {
		ctl.log.Debug("bad controller request", "remote", c.RemoteAddr(), "err", err)
		return
	}
	var resp rpcResponse
	select {
	case <-ctl.ready:
	case <-ctl.ctx.Done():
		return
	}
	if ctl.raft.State() != raft.Leader {
		resp.Err = toWire(ErrNotController)
	} else {
		v, err := ctl.handleLocal(req)
		resp.Value, resp.Err = v, toWire(err)
	}
	if errors.Is(resp.Err.err(), ErrNotController) {
		resp.Leader, _ = ctl.leaderAddr()
	}
	_ = json.NewEncoder(c).Encode(&resp)
}
