package fetchwire

import (
	"crypto/tls"
	"net"
	"sync"
)

// coalesceBytes is how much TLS output a Coalescer gathers before it
// writes: 16 records of 16 KiB, four loopback segments of 64 KiB.
const coalesceBytes = 256 << 10

// Coalescer sits between a TLS connection and its TCP connection and
// gathers the records crypto/tls writes while a response is being
// written, so that they reach the socket in writes of 256 KiB instead of
// one write system call, and one TCP segment, per 16 KiB record: a large
// fetch response over TLS was 64 writes and 64 segments per MiB, each
// costing the broker a system call and the client a wake-up and a read.
// Gathering costs one copy of the encrypted bytes, cheaper than the
// writes it saves. Outside a response (the handshake, alerts, session
// tickets) every write goes through at once, as without it.
//
// crypto/tls writes to it under its own output lock, from the goroutine
// writing responses or, for an alert, from the one reading requests; the
// mutex keeps the buffer whole either way.
type Coalescer struct {
	net.Conn
	mu   sync.Mutex
	buf  []byte
	held bool
}

// newCoalescer wraps the TCP connection c, for tls.Server (NewTLSServer).
func newCoalescer(c net.Conn) *Coalescer { return &Coalescer{Conn: c} }

// Write writes p, or keeps a copy of it to write with the next records
// while a response is being written. An error of a gathered write is
// reported by the write that sends it, or by release.
func (c *Coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held || len(p) >= coalesceBytes {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > coalesceBytes {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	if c.buf == nil {
		c.buf = make([]byte, 0, coalesceBytes)
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *Coalescer) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// hold gathers the writes that follow, until release.
func (c *Coalescer) hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// release writes what was gathered and lets later writes through at once.
func (c *Coalescer) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = false
	return c.flushLocked()
}

// TLSConn is the server side of a TLS connection whose records go through
// a Coalescer: NewWriter gathers a response's records there.
type TLSConn struct {
	*tls.Conn
	co *Coalescer
}

// NewTLSServer starts the server side of TLS over raw through a Coalescer
// (the handshake runs on first use, as with tls.Server).
func NewTLSServer(raw net.Conn, cfg *tls.Config) *TLSConn {
	co := newCoalescer(raw)
	return &TLSConn{Conn: tls.Server(co, cfg), co: co}
}

// tlsListener accepts TLSConns.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

// NewTLSListener is tls.NewListener whose connections are TLSConns, for a
// listener whose responses are written with NewWriter.
func NewTLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	return &tlsListener{Listener: ln, cfg: cfg}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewTLSServer(c, l.cfg), nil
}
