package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/security/authstats"
)

// One controller port carries two kinds of connection, told apart by their
// first byte (as Consul does): Raft's own RPCs, and this package's small
// request/response protocol (proposals forwarded to the leader, joins).
const (
	connRaft byte = 'R'
	connRPC  byte = 'C'
)

// PeerTLS is what a node needs to run its controller port over TLS with
// broker certificates both ways (tlsconf.Peers).
type PeerTLS interface {
	ServerConfig() *tls.Config
	ClientConfig(serverName string) *tls.Config
}

// routeTimeout bounds how long a new connection may take to name its kind
// (over TLS, the handshake included).
const routeTimeout = 5 * time.Second

// mux accepts on the controller port and routes connections; it also
// dials the other nodes' controller ports.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	// clientTLS, when set, is the configuration to dial a node with
	// (its host as the server name): the port runs over TLS.
	clientTLS func(serverName string) *tls.Config
	log       *slog.Logger
	raftConns chan net.Conn
	// raftConn, when set, checks an accepted Raft connection before
	// the transport gets it, and may wrap it (Controller.guardRaftConn).
	raftConn func(net.Conn) (net.Conn, error)
	rpc      func(net.Conn)
	pool     rpcPool // idle RPC connections to other nodes
	// auth counts the TLS handshakes of accepted connections (nil
	// without TLS): tributary_authentications_total{listener="controller"}.
	auth      *authstats.Listener
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// newMux serves ln, over TLS when peerTLS is set: every node, dialing or
// dialed, presents its broker certificate and checks the other's. rpc
// serves an RPC connection; raftConn, when not nil, checks a Raft one.
func newMux(ln net.Listener, advertise net.Addr, peerTLS PeerTLS, log *slog.Logger, rpc func(net.Conn), raftConn func(net.Conn) (net.Conn, error)) *mux {
	m := &mux{ln: ln, advertise: advertise, raftConns: make(chan net.Conn), rpc: rpc, raftConn: raftConn, done: make(chan struct{}), log: log}
	if peerTLS != nil {
		m.auth = authstats.NewListener("controller", true)
		m.ln = tls.NewListener(ln, peerTLS.ServerConfig())
		m.clientTLS = peerTLS.ClientConfig
	}
	m.wg.Add(1)
	go m.serve()
	return m
}

func (m *mux) serve() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return // listener closed
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(c)
		}()
	}
}

func (m *mux) route(c net.Conn) {
	var kind [1]byte
	_ = c.SetReadDeadline(time.Now().Add(routeTimeout))
	_, err := io.ReadFull(c, kind[:])
	// The first read runs the TLS handshake (tls.NewListener's
	// connections shake hands lazily).
	if tc, isTLS := c.(*tls.Conn); isTLS {
		if tc.ConnectionState().HandshakeComplete {
			m.auth.Success(authstats.TLS)
		} else if reason, ok := authstats.HandshakeFailure(err); ok {
			// A plaintext peer, or one without a certificate of the
			// cluster's CA (a closed connection is the liveness probe).
			m.auth.Failure(authstats.TLS, reason)
			m.log.Warn("refused a controller connection: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		}
	}
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch kind[0] {
	case connRaft:
		if m.raftConn != nil {
			gc, err := m.raftConn(c)
			if err != nil {
				m.log.Warn("refused a Raft connection", "remote", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			c = gc
		}
		select {
		case m.raftConns <- c:
		case <-m.done:
			c.Close()
		}
	case connRPC:
		m.rpc(c)
	default:
		c.Close()
	}
}

func (m *mux) close() {
	m.closeOnce.Do(func() {
		close(m.done)
		m.ln.Close()
		m.pool.close()
	})
	m.wg.Wait()
}

// streamLayer is the raft.StreamLayer over the mux.
type streamLayer struct{ m *mux }

var _ raft.StreamLayer = streamLayer{}

func (s streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftConns:
		return c, nil
	case <-s.m.done:
		return nil, errors.New("controller port closed")
	}
}

// Close is a no-op: the controller closes the shared listener itself, after
// Raft has shut down.
func (s streamLayer) Close() error { return nil }

func (s streamLayer) Addr() net.Addr { return s.m.advertise }

func (s streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.m.dial(string(addr), connRaft, timeout)
}

// dial opens a connection of one kind to a node's controller port.
func (m *mux) dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if m.clientTLS != nil {
		host, _, _ := net.SplitHostPort(addr)
		tc := tls.Client(c, m.clientTLS(host))
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS with controller %s: %w", addr, err)
		}
		_ = tc.SetDeadline(time.Time{})
		c = tc
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("opening controller connection to %s: %w", addr, err)
	}
	return c, nil
}
