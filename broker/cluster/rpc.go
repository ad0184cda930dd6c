package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/broker/security/tlsconf"
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

// ErrNodeIDMismatch means a request speaks for a node other than the one
// the certificate of its connection names (rpcPeer).
var ErrNodeIDMismatch = errors.New("request for a node other than the one the certificate names")

// ErrControllerDuty means a peer asked the active controller to propose a
// command it proposes only of its own accord (metadata.ControllerDuty).
var ErrControllerDuty = errors.New("a command only the active controller proposes")

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
	metadata.ErrMetadataVersion,
	ErrNodeIDMismatch,
	ErrControllerDuty,
	metadata.ErrPolicyViolation,
	ErrCommitTimeout,
	ErrUserOpTurn,
	ErrCatchingUp,
	ErrTopicCollides,
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
	// TimeoutMs is how long the active controller may wait for what the
	// request proposes to commit: a little less than the sender waits
	// for the answer. Zero (a sender of an older version): rpcTimeout.
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
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
	// KeepOpen says the server reads further requests on this
	// connection; a server of a version without it answers one and
	// closes.
	KeepOpen bool `json:"keep_open,omitempty"`
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

// The controller RPC is one JSON request per line and one JSON response per
// line (json.Encoder's framing, which every version has used). A server of
// this version serves many requests on a connection and says so in each
// answer (rpcResponse.KeepOpen); a client keeps a connection for the next
// request only when the answer said so. Older servers answer one request
// and close: their connections are never reused, so a client never sends a
// request to a server that will not read it. Older clients send one request
// and close: the server's next read ends at EOF.
const (
	// rpcServerIdle is how long a server waits for the next request on
	// a connection before closing it.
	rpcServerIdle = 60 * time.Second
	// rpcClientIdle is how long a client keeps an unused connection:
	// well inside rpcServerIdle, so that the client drops an idle
	// connection before the server closes it under a request.
	rpcClientIdle = 30 * time.Second
	// rpcMaxIdlePerAddr bounds the idle connections kept per node: a
	// broker has a heartbeat and a few proposals in flight at most.
	rpcMaxIdlePerAddr = 4
	// maxRPCMessage bounds one request or response line. The largest are
	// metadata commands carried whole (an imported metadata file, a topic
	// created with explicit assignments): tens of bytes per partition. A
	// line grows as its bytes arrive, so a peer that sends garbage makes
	// the server allocate at most this much per connection.
	maxRPCMessage = 64 << 20
)

// errRPCTooLarge is a request or response line over maxRPCMessage.
var errRPCTooLarge = fmt.Errorf("controller RPC message over %d bytes", maxRPCMessage)

// readLine reads one newline-terminated message of at most limit bytes
// (the newline included).
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			return nil, errRPCTooLarge
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// idempotent reports whether running op twice has the effect of running
// it once, so that a request whose outcome is unknown may be sent again at
// once: a heartbeat renews a lease (and unfences through the log only a
// fenced broker), a join adds a non-voter already added as a no-op, a
// report of an unreachable broker probes it again, and the applied-index
// read changes nothing (a second answer may be a later index, which a
// read index may always be: waiting for it still covers every creation
// answered before the first send). The others are retried
// only by onLeader, with Retry set, which lets the controller tell a
// first try that took effect from one that did not.
func (op rpcOp) idempotent() bool {
	switch op {
	case opHeartbeat, opJoin, opUnreachable, opAppliedIndex:
		return true
	}
	return false
}

// rpcConn is a client's connection to a node's controller port.
type rpcConn struct {
	net.Conn
	r        *bufio.Reader
	lastUsed time.Time
}

// rpcPool keeps the idle RPC connections of a client, per address.
type rpcPool struct {
	mu     sync.Mutex
	idle   map[string][]*rpcConn
	closed bool
	// dials counts the connections opened (each a TLS handshake when
	// the port runs TLS).
	dials atomic.Int64
}

// get returns an idle connection to addr that is still open, or nil.
func (p *rpcPool) get(addr string, now time.Time) *rpcConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		conns := p.idle[addr]
		if len(conns) == 0 {
			return nil
		}
		c := conns[len(conns)-1]
		p.idle[addr] = conns[:len(conns)-1]
		if now.Sub(c.lastUsed) < rpcClientIdle && c.r.Buffered() == 0 && connOpen(c.Conn) {
			return c
		}
		c.Close()
	}
}

// put keeps c for the next request to addr, or closes it when the pool
// is full or closed. It also closes connections idle too long, to any
// address.
func (p *rpcPool) put(addr string, c *rpcConn, now time.Time) {
	c.lastUsed = now
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= rpcMaxIdlePerAddr {
		c.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]*rpcConn{}
	}
	for a, conns := range p.idle {
		kept := conns[:0]
		for _, ic := range conns {
			if now.Sub(ic.lastUsed) < rpcClientIdle {
				kept = append(kept, ic)
			} else {
				ic.Close()
			}
		}
		p.idle[a] = kept
	}
	p.idle[addr] = append(p.idle[addr], c)
}

// drop closes every idle connection to addr: after an error on one of
// them, or an answer saying the node is not the active controller, none
// of them is trusted for the next request.
func (p *rpcPool) drop(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle[addr] {
		c.Close()
	}
	delete(p.idle, addr)
}

// close closes every idle connection; connections in use are closed when
// their request ends.
func (p *rpcPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, conns := range p.idle {
		for _, c := range conns {
			c.Close()
		}
	}
	p.idle = nil
}

// connOpen reports whether an idle connection is still open: its peer has
// neither closed it nor sent anything (an idle connection receives nothing;
// a TLS close_notify is data here too). It peeks at the socket without
// blocking, so that a connection the server closed (its process restarted,
// its idle timeout) is redialed before a request is written to it rather
// than after, when the request's outcome would be unknown.
func connOpen(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var rerr error
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		// Nothing to read is the one answer that means open: a byte
		// (n 1) and the peer's FIN (n 0) both come with no error.
		_, _, rerr = unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	})
	return err == nil && errors.Is(rerr, unix.EAGAIN)
}

// call sends one request to addr and reads the response, on an idle
// connection to addr when there is one. A reused connection that fails is
// redialed once, when that cannot apply the request twice: the request was
// not written whole (the server acts only on a complete line), or its op is
// idempotent. Any error, and an ErrNotController answer, drops the
// connections to addr.
func (m *mux) call(addr string, req rpcRequest, timeout time.Duration) (*rpcResponse, error) {
	line, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding %s request: %w", req.Op, err)
	}
	line = append(line, '\n')
	if len(line) > maxRPCMessage {
		return nil, fmt.Errorf("%w: %s request to %s is %d bytes", errRPCTooLarge, req.Op, addr, len(line))
	}
	deadline := time.Now().Add(timeout)
	for redialed := false; ; redialed = true {
		c := m.pool.get(addr, time.Now())
		reused := c != nil
		if !reused {
			nc, err := m.dial(addr, connRPC, time.Until(deadline))
			if err != nil {
				return nil, err
			}
			m.pool.dials.Add(1)
			c = &rpcConn{Conn: nc, r: bufio.NewReader(nc)}
		}
		resp, written, err := c.exchange(line, deadline)
		if err == nil {
			if resp.KeepOpen && !errors.Is(resp.Err.err(), ErrNotController) {
				m.pool.put(addr, c, time.Now())
			} else {
				c.Close()
				if resp.KeepOpen {
					m.pool.drop(addr)
				}
			}
			return resp, nil
		}
		c.Close()
		m.pool.drop(addr)
		if reused && !redialed && (!written || req.Op.idempotent()) && time.Now().Before(deadline) {
			continue
		}
		return nil, fmt.Errorf("%s on controller %s: %w", req.Op, addr, err)
	}
}

// exchange writes one request line and reads its response. written says
// whether the whole line went out.
func (c *rpcConn) exchange(line []byte, deadline time.Time) (resp *rpcResponse, written bool, err error) {
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(line); err != nil {
		return nil, false, fmt.Errorf("sending: %w", err)
	}
	b, err := readLine(c.r, maxRPCMessage)
	if err != nil {
		return nil, true, fmt.Errorf("reading the response: %w", err)
	}
	resp = new(rpcResponse)
	if err := json.Unmarshal(b, resp); err != nil {
		return nil, true, fmt.Errorf("decoding the response: %w", err)
	}
	return resp, true, nil
}

// serveRPC answers requests on c, one at a time, until the client closes
// it, it stays idle for rpcServerIdle, a request is malformed or over
// maxRPCMessage, or the controller closes.
func (ctl *Controller) serveRPC(c net.Conn) {
	defer c.Close()
	ctl.rpcConns.Add(1)
	// Closing: wake a read waiting for the next request. A request being
	// handled still gets its answer.
	stop := context.AfterFunc(ctl.ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	peer, err := ctl.rpcPeerOf(c)
	if err != nil {
		ctl.log.Warn("refused a controller connection", "remote", c.RemoteAddr(), "err", err)
		return
	}
	r := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(rpcServerIdle))
		if ctl.ctx.Err() != nil {
			return
		}
		line, err := readLine(r, maxRPCMessage)
		switch {
		case errors.Is(err, errRPCTooLarge):
			ctl.log.Warn("refused a controller request", "remote", c.RemoteAddr(), "err", err)
			return
		case err != nil:
			if !errors.Is(err, io.EOF) {
				ctl.log.Debug("controller connection closed", "remote", c.RemoteAddr(), "err", err)
			}
			return
		}
		var req rpcRequest
		if err := json.Unmarshal(line, &req); err != nil {
			ctl.log.Warn("refused a malformed controller request", "remote", c.RemoteAddr(), "err", err)
			return
		}
		ctl.rpcRequests.Add(1)
		select {
		case <-ctl.ready:
		case <-ctl.ctx.Done():
			return
		}
		resp := ctl.answerRPC(req, peer)
		resp.KeepOpen = true
		out, err := json.Marshal(&resp)
		if err != nil {
			ctl.log.Warn("encoding a controller response", "op", req.Op, "err", err)
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(rpcTimeout))
		if _, err := c.Write(append(out, '\n')); err != nil {
			return
		}
	}
}

// rpcPeer is the node the certificate of an RPC connection names, if
// any: a broker's own requests on that connection (heartbeat, join, and
// the commands metadata.SelfReport names) must be for that node.
type rpcPeer struct {
	id    int32
	named bool
}

// rpcPeerOf reads the node id of a controller connection's certificate.
// A plaintext port has no certificate: finding 8 of
// docs/broker-security.md. A certificate that names no node is one issued
// before broker certificates named their node (a cluster whose brokers
// have not been renewed since): its requests are served unbound, as
// before, and logged, so that such a cluster keeps its quorum through
// the upgrade and the operator sees what is left to renew. A certificate
// naming a node in a form this version does not read is refused.
func (ctl *Controller) rpcPeerOf(c net.Conn) (rpcPeer, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return rpcPeer{}, nil
	}
	id, named, err := tlsconf.PeerNodeID(tc.ConnectionState())
	if err != nil {
		return rpcPeer{}, err
	}
	if !named {
		ctl.unboundPeers.Add(1)
		ctl.log.Warn("a controller connection's certificate names no node id; its requests are not bound to a node (renew the broker certificates)", "remote", c.RemoteAddr())
	}
	return rpcPeer{id: id, named: named}, nil
}

// check refuses a command only the active controller proposes, from any
// peer, and a request that speaks for a node other than the peer's. Other
// requests (proposals a broker forwards for clients: topics, ACLs,
// credentials, quotas, configs, elections, reassignments; a report that
// another node is unreachable, which the controller probes itself) are
// any broker's to send.
func (p rpcPeer) check(req rpcRequest) error {
	if req.Op == opApply && metadata.ControllerDuty(req.Command) {
		return fmt.Errorf("%w: command type %d from a peer", ErrControllerDuty, req.Command[0])
	}
	if !p.named {
		return nil
	}
	var claimed int32
	switch req.Op {
	case opHeartbeat, opJoin:
		claimed = req.NodeID
	case opApply:
		id, ok := metadata.SelfReport(req.Command)
		if !ok {
			return nil
		}
		claimed = id
	default:
		return nil
	}
	if claimed != p.id {
		return fmt.Errorf("%w: %s for node %d on a connection whose certificate names node %d", ErrNodeIDMismatch, req.Op, claimed, p.id)
	}
	return nil
}

// answerRPC runs one request on this node, the active controller, or
// refuses it naming the leader.
func (ctl *Controller) answerRPC(req rpcRequest, peer rpcPeer) rpcResponse {
	var resp rpcResponse
	if err := peer.check(req); err != nil {
		if errors.Is(err, ErrControllerDuty) {
			ctl.refusedDuty.Add(1)
		} else {
			ctl.refusedNodeIDs.Add(1)
		}
		ctl.log.Warn("refused a controller request", "err", err)
		resp.Err = toWire(err)
		return resp
	}
	if ctl.raft.State() != raft.Leader {
		resp.Err = toWire(ErrNotController)
	} else {
		ctx, cancel := ctl.requestContext(req)
		v, err := ctl.handleLocal(ctx, req)
		cancel()
		resp.Value, resp.Err = v, toWire(err)
	}
	if errors.Is(resp.Err.err(), ErrNotController) {
		resp.Leader, _ = ctl.leaderAddr()
	}
	return resp
}

// requestContext bounds the handling of a request from another node: by
// the time the sender gives it (TimeoutMs), at most rpcTimeout, after
// which the sender has stopped reading anyway; and by this controller's
// closing.
func (ctl *Controller) requestContext(req rpcRequest) (context.Context, context.CancelFunc) {
	timeout := rpcTimeout
	if req.TimeoutMs > 0 {
		timeout = min(timeout, time.Duration(req.TimeoutMs)*time.Millisecond)
	}
	return context.WithTimeout(ctl.ctx, timeout)
}
