package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAction is what a fakeController does with a request it read.
type fakeAction int

const (
	answerKeep      fakeAction = iota // answer, keep reading (this version)
	answerClose                       // answer, close (a version before keep_open)
	closeSilent                       // close without an answer (a crash after the request)
	answerKeepClose                   // answer saying it keeps the connection, then close it
)

// fakeController serves the controller RPC on a plain TCP listener, each
// answer decided by decide (from the connection's index, from 1, and the
// request). It counts the connections it accepted and records the requests.
type fakeController struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	reqs     []rpcRequest
	decide   func(conn int, req rpcRequest) (rpcResponse, fakeAction)
}

func newFakeController(t *testing.T, decide func(conn int, req rpcRequest) (rpcResponse, fakeAction)) *fakeController {
	t.Helper()
	f := &fakeController{ln: listen(t, "127.0.0.1:0"), decide: decide}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		f.ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return
			}
			n := int(f.accepted.Add(1))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.serve(c, n)
			}()
		}
	}()
	return f
}

func (f *fakeController) serve(c net.Conn, n int) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if kind, err := r.ReadByte(); err != nil || kind != connRPC {
		return
	}
	for {
		line, err := readLine(r, maxRPCMessage)
		if err != nil {
			return
		}
		var req rpcRequest
		if err := json.Unmarshal(line, &req); err != nil {
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		f.mu.Unlock()
		resp, act := f.decide(n, req)
		if act == closeSilent {
			return
		}
		resp.KeepOpen = act == answerKeep || act == answerKeepClose
		if err := json.NewEncoder(c).Encode(&resp); err != nil || act != answerKeep {
			return
		}
	}
}

func (f *fakeController) requests() []rpcRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rpcRequest(nil), f.reqs...)
}

func (f *fakeController) addr() string { return f.ln.Addr().String() }

// clientMux is a mux that only dials (plain TCP).
func clientMux(t *testing.T) *mux {
	m := &mux{log: slog.New(slog.DiscardHandler), done: make(chan struct{})}
	t.Cleanup(m.pool.close)
	return m
}

func callOK(t *testing.T, m *mux, addr string, req rpcRequest) *rpcResponse {
	t.Helper()
	resp, err := m.call(addr, req, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", req.Op, err)
	}
	return resp
}

// TestRPCReusesConnections: requests to a server of this version share one
// connection; concurrent ones take a connection each.
func TestRPCReusesConnections(t *testing.T) {
	f := newFakeController(t, func(int, rpcRequest) (rpcResponse, fakeAction) { return rpcResponse{}, answerKeep })
	m := clientMux(t)
	for range 10 {
		callOK(t, m, f.addr(), rpcRequest{Op: opHeartbeat, NodeID: 2})
	}
	if got := f.accepted.Load(); got != 1 {
		t.Fatalf("10 requests in series opened %d connections, want 1", got)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			callOK(t, m, f.addr(), rpcRequest{Op: opHeartbeat, NodeID: 2})
		}()
	}
	wg.Wait()
	if got := f.accepted.Load(); got > 3 {
		t.Fatalf("3 concurrent requests after a series opened %d connections in all, want at most 3", got)
	}
	if got := len(f.requests()); got != 13 {
		t.Fatalf("server read %d requests, want 13", got)
	}
}

// TestRPCOneShotServer: a server of a version that answers one request and
// closes (a rolling upgrade) still serves every request, each on its own
// connection, and none is sent twice.
func TestRPCOneShotServer(t *testing.T) {
	f := newFakeController(t, func(_ int, req rpcRequest) (rpcResponse, fakeAction) {
		return rpcResponse{Value: json.RawMessage(`"` + string(req.Op) + `"`)}, answerClose
	})
	m := clientMux(t)
	ops := []rpcOp{opApply, opHeartbeat, opCreateTopic, opApply}
	for _, op := range ops {
		resp := callOK(t, m, f.addr(), rpcRequest{Op: op})
		if string(resp.Value) != `"`+string(op)+`"` {
			t.Fatalf("%s answered %s", op, resp.Value)
		}
	}
	if got := f.accepted.Load(); got != int64(len(ops)) {
		t.Fatalf("%d requests to a one-shot server opened %d connections, want one each", len(ops), got)
	}
	if got := len(f.requests()); got != len(ops) {
		t.Fatalf("server read %d requests, want %d (none twice)", got, len(ops))
	}
}

// TestRPCDeposedControllerConnectionNotReused: a connection whose server
// answered ErrNotController (it lost the leadership) is closed, and the
// next request to that address dials anew.
func TestRPCDeposedControllerConnectionNotReused(t *testing.T) {
	var deposed atomic.Bool
	f := newFakeController(t, func(int, rpcRequest) (rpcResponse, fakeAction) {
		if deposed.Load() {
			return rpcResponse{Err: toWire(ErrNotController), Leader: "127.0.0.1:1"}, answerKeep
		}
		return rpcResponse{}, answerKeep
	})
	m := clientMux(t)
	callOK(t, m, f.addr(), rpcRequest{Op: opHeartbeat})
	callOK(t, m, f.addr(), rpcRequest{Op: opHeartbeat})
	if got := f.accepted.Load(); got != 1 {
		t.Fatalf("two requests opened %d connections, want 1", got)
	}
	deposed.Store(true)
	resp := callOK(t, m, f.addr(), rpcRequest{Op: opHeartbeat})
	if !errors.Is(resp.Err.err(), ErrNotController) || resp.Leader != "127.0.0.1:1" {
		t.Fatalf("deposed controller answered err %v leader %q", resp.Err.err(), resp.Leader)
	}
	deposed.Store(false)
	callOK(t, m, f.addr(), rpcRequest{Op: opHeartbeat})
	if got := f.accepted.Load(); got != 2 {
		t.Fatalf("a request after an ErrNotController answer reused its connection (%d connections in all, want 2)", got)
	}
}

// TestRPCReusedConnectionLost: a pooled connection the server closed while
// idle is not written to; one lost after the request was written is
// retried on a new connection only for an idempotent op, so a proposal is
// never sent twice by the RPC itself.
func TestRPCReusedConnectionLost(t *testing.T) {
	// The server closes every connection after its second request
	// without answering it, as a controller that crashed while applying.
	var perConn sync.Map
	f := newFakeController(t, func(conn int, req rpcRequest) (rpcResponse, fakeAction) {
		v, _ := perConn.LoadOrStore(conn, new(atomic.Int64))
		if v.(*atomic.Int64).Add(1) == 2 {
			return rpcResponse{}, closeSilent
		}
		return rpcResponse{}, answerKeep
	})
	m := clientMux(t)
	callOK(t, m, f.addr(), rpcRequest{Op: opApply})
	if _, err := m.call(f.addr(), rpcRequest{Op: opApply, Command: []byte("x")}, 5*time.Second); err == nil {
		t.Fatal("a proposal whose connection closed before the answer succeeded")
	}
	if got := len(f.requests()); got != 2 {
		t.Fatalf("server read %d requests, want 2: a proposal of unknown outcome must not be sent again", got)
	}
	callOK(t, m, f.addr(), rpcRequest{Op: opApply}) // connection 2, first request
	callOK(t, m, f.addr(), rpcRequest{Op: opHeartbeat})
	if got, want := len(f.requests()), 5; got != want {
		t.Fatalf("server read %d requests, want %d: a heartbeat is sent again once", got, want)
	}
	if got := f.accepted.Load(); got != 3 {
		t.Fatalf("%d connections, want 3", got)
	}

	// A server that closes a connection it said it keeps (a restart, its
	// idle timeout): the client sees it closed before writing to it, and
	// a proposal goes out once, on a new connection.
	g := newFakeController(t, func(int, rpcRequest) (rpcResponse, fakeAction) { return rpcResponse{}, answerKeepClose })
	callOK(t, m, g.addr(), rpcRequest{Op: opApply})
	m.pool.mu.Lock()
	idle := append([]*rpcConn(nil), m.pool.idle[g.addr()]...)
	m.pool.mu.Unlock()
	if len(idle) != 1 {
		t.Fatalf("%d idle connections to the server, want 1", len(idle))
	}
	checkFor(t, 5*time.Second, func() error {
		if connOpen(idle[0].Conn) {
			return errors.New("the idle connection the server closed still looks open")
		}
		return nil
	})
	callOK(t, m, g.addr(), rpcRequest{Op: opApply})
	if got := len(g.requests()); got != 2 {
		t.Fatalf("server read %d requests, want 2", got)
	}
	if got := g.accepted.Load(); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}
}

func TestConnOpen(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if !connOpen(c) {
		t.Fatal("an idle open connection looks closed")
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		if connOpen(c) {
			return errors.New("a connection with unread data looks idle")
		}
		return nil
	})
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Fatal(err)
	}
	if !connOpen(c) {
		t.Fatal("an idle open connection looks closed after a read")
	}
	s.Close()
	checkFor(t, 5*time.Second, func() error {
		if connOpen(c) {
			return errors.New("a connection its peer closed looks open")
		}
		return nil
	})
}

func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
		err   error
	}{
		{in: "{}\n", limit: 3, want: "{}\n"},
		{in: "{}\n{\"a\":1}\n", limit: 3, want: "{}\n"},
		{in: strings.Repeat("x", 40) + "\n", limit: 41, want: strings.Repeat("x", 40) + "\n"},
		{in: strings.Repeat("x", 41) + "\n", limit: 41, err: errRPCTooLarge},
		{in: strings.Repeat("x", 1000), limit: 41, err: errRPCTooLarge},
		{in: "{\"op\":", limit: 100, err: io.ErrUnexpectedEOF},
		{in: "", limit: 100, err: io.EOF},
	} {
		// A buffer smaller than the lines, so that they span reads.
		got, err := readLine(bufio.NewReaderSize(strings.NewReader(tc.in), 16), tc.limit)
		if !errors.Is(err, tc.err) || string(got) != tc.want {
			t.Errorf("readLine(%.20q, %d) = %q, %v; want %q, %v", tc.in, tc.limit, got, err, tc.want, tc.err)
		}
	}
}

// TestRPCClusterKeepsConnections: in a cluster, the brokers' heartbeats to
// the active controller reuse their connections; a client of a version
// that sends one request per connection is still answered; a request over
// maxRPCMessage is refused by closing the connection.
func TestRPCClusterKeepsConnections(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	conns, reqs := leader.rpcConns.Load(), leader.rpcRequests.Load()
	window := 10 * leader.cfg.HeartbeatInterval
	time.Sleep(window)
	dConns, dReqs := leader.rpcConns.Load()-conns, leader.rpcRequests.Load()-reqs
	// Two followers heartbeat every interval: about 20 requests.
	if dReqs < 10 {
		t.Fatalf("the active controller read %d requests in %v, want at least 10 heartbeats", dReqs, window)
	}
	if dConns > 4 {
		t.Fatalf("the active controller accepted %d connections for %d requests in %v: connections are not kept", dConns, dReqs, window)
	}

	// A one-request client, as every version before keep_open.
	f := tc.follower()
	c, err := f.mux.dial(leader.Addr(), connRPC, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := rpcRequest{Op: opHeartbeat, NodeID: f.NodeID(), BrokerEpoch: f.BrokerEpoch(), LeaseMs: f.cfg.Lease.Milliseconds()}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		t.Fatal(err)
	}
	var resp rpcResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("reading the answer to a one-request client: %v", err)
	}
	if err := resp.Err.err(); err != nil && !errors.Is(err, ErrNotController) {
		t.Fatalf("a one-request client's heartbeat: %v", err)
	}
	c.Close()

	// An endless line: the server stops reading at maxRPCMessage and
	// closes; the client's writes fail (or its read ends) well before
	// it has sent twice the bound.
	c, err = f.mux.dial(leader.Addr(), connRPC, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	chunk := []byte(strings.Repeat("x", 1<<20))
	sent := 0
	for sent <= 2*maxRPCMessage {
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			break
		}
	}
	if sent > 2*maxRPCMessage {
		t.Fatalf("the server read %d bytes of one request, over twice the bound of %d", sent, maxRPCMessage)
	}
	if sent < maxRPCMessage {
		t.Fatalf("the connection failed after %d bytes, before the bound of %d", sent, maxRPCMessage)
	}
	var b [1]byte
	if n, err := c.Read(b[:]); err == nil {
		t.Fatalf("the server answered an oversized request (%d bytes)", n)
	}
	// The port still serves.
	if _, err := f.onLeader(ctxT(t), req); err != nil {
		t.Fatalf("a heartbeat after the oversized request: %v", err)
	}
}

// TestRPCAppliedIndexSentAgainOnLostConnection: the applied-index read,
// lost with a pooled connection after it was written (a controller that
// closed it), is sent again on a new connection and answered, as a
// heartbeat is: a broker asked about a topic it does not know otherwise
// waited for nothing and answered from stale metadata.
func TestRPCAppliedIndexSentAgainOnLostConnection(t *testing.T) {
	var perConn sync.Map
	f := newFakeController(t, func(conn int, req rpcRequest) (rpcResponse, fakeAction) {
		v, _ := perConn.LoadOrStore(conn, new(atomic.Int64))
		if v.(*atomic.Int64).Add(1) == 2 {
			return rpcResponse{}, closeSilent
		}
		return rpcResponse{Value: json.RawMessage("42")}, answerKeep
	})
	m := clientMux(t)
	callOK(t, m, f.addr(), rpcRequest{Op: opHeartbeat}) // leaves connection 1 pooled
	resp := callOK(t, m, f.addr(), rpcRequest{Op: opAppliedIndex})
	if string(resp.Value) != "42" {
		t.Fatalf("applied-index answered %q, want 42", resp.Value)
	}
	reqs := f.requests()
	if len(reqs) != 3 || reqs[1].Op != opAppliedIndex || reqs[2].Op != opAppliedIndex {
		t.Fatalf("server read %v, want heartbeat then applied-index twice", reqs)
	}
	if got := f.accepted.Load(); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}
}
