package cluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// One controller port carries two kinds of connection, told apart by their
// first byte (as Consul does): Raft's own RPCs, and this package's small
// request/response protocol (proposals forwarded to the leader, joins).
const (
	connRaft byte = 'R'
	connRPC  byte = 'C'
)

// routeTimeout bounds how long a new connection may take to name its kind.
const routeTimeout = 5 * time.Second

// mux accepts on the controller port and routes connections.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	raftConns chan net.Conn
	rpc       func(net.Conn)
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newMux(ln net.Listener, advertise net.Addr, rpc func(net.Conn)) *mux {
	m := &mux{ln: ln, advertise: advertise, raftConns: make(chan net.Conn), rpc: rpc, done: make(chan struct{})}
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
	if _, err := io.ReadFull(c, kind[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch kind[0] {
	case connRaft:
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
	return dialKind(string(addr), connRaft, timeout)
}

func dialKind(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("opening controller connection to %s: %w", addr, err)
	}
	return c, nil
}
