package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// peerRequestTimeout bounds a request to another broker when the caller's
// context has no deadline.
const peerRequestTimeout = 30 * time.Second

// maxIdlePerPeer is how many idle connections are kept per broker.
const maxIdlePerPeer = 4

// Peers sends Kafka-protocol requests to other brokers' replication
// listeners (their InterBrokerAPIs), reusing connections. Requests on one
// connection run one at a time; concurrent requests to one broker use
// several connections. Safe for concurrent use.
type Peers struct {
	clientID string
	tlsFor   func(serverName string) *tls.Config
	mu       sync.Mutex
	idle     map[string][]*conn
	closed   bool
}

// NewPeers returns a client that names itself clientID to other brokers,
// over TLS when tlsFor is set (in-cluster encryption: the configuration
// to dial a broker's replication listener, its host as the server name).
func NewPeers(clientID string, tlsFor func(serverName string) *tls.Config) *Peers {
	return &Peers{clientID: clientID, tlsFor: tlsFor, idle: map[string][]*conn{}}
}

var errPeersClosed = errors.New("inter-broker client closed")

// Request sends req (its version set by the caller) to the replication
// listener at addr and returns the response. A failed exchange closes its
// connection.
func (p *Peers) Request(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	c, err := p.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	timeout := peerRequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		p.put(addr, c)
		return nil, fmt.Errorf("%s to %s: %w", kmsg.NameForKey(req.Key()), addr, context.DeadlineExceeded)
	}
	// The exchange ends at its deadline, or early when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Now()) })
	resp, err := c.request(req, timeout)
	interrupted := !stop()
	if err != nil || interrupted {
		c.close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%s to %s: %w", kmsg.NameForKey(req.Key()), addr, err)
	}
	p.put(addr, c)
	return resp, nil
}

func (p *Peers) get(ctx context.Context, addr string) (*conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPeersClosed
	}
	if idle := p.idle[addr]; len(idle) > 0 {
		c := idle[len(idle)-1]
		p.idle[addr] = idle[:len(idle)-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return dialLeader(dctx, addr, p.clientID, p.tlsFor)
}

func (p *Peers) put(addr string, c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= maxIdlePerPeer {
		c.close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
}

// Close closes the idle connections; later requests fail.
func (p *Peers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for addr, cs := range p.idle {
		for _, c := range cs {
			c.close()
		}
		delete(p.idle, addr)
	}
}
