package replica

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxResponseSize bounds a response frame from a leader.
const maxResponseSize = 256 << 20

// conn is one Kafka protocol connection to a leader, used by one goroutine:
// requests are written and answered in turn.
type conn struct {
	c    net.Conn
	fmt  *kmsg.RequestFormatter
	corr int32
	buf  []byte
	// fetchBody is the buffer Fetch responses are read into, used again
	// for the next one: a follower's fetch response is as large as the
	// data it copies, and a fresh buffer each time cost about a tenth of
	// a follower's CPU (cleared by the runtime, then overwritten by the
	// read). The fetcher writes a response's batches to its logs, which
	// keep no reference to them (Log.AppendAsFollower), before it sends
	// its next request on the connection. Other responses get buffers of
	// their own: a Peers connection goes back to its pool while the
	// caller still reads the response.
	fetchBody []byte
}

// keptFetchBody bounds the buffer a connection keeps between Fetch
// responses: one larger is allocated for its response alone.
const keptFetchBody = 16 << 20

// dialLeader connects to a leader's replication listener, over TLS when
// tlsFor is set (the handshake bounded by ctx).
func dialLeader(ctx context.Context, addr, clientID string, tlsFor func(serverName string) *tls.Config) (*conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing leader %s: %w", addr, err)
	}
	if tlsFor != nil {
		host, _, _ := net.SplitHostPort(addr)
		tc := tls.Client(c, tlsFor(host))
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS with leader %s: %w", addr, err)
		}
		c = tc
	}
	return &conn{c: c, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))}, nil
}

func (c *conn) close() error { return c.c.Close() }

// request sends req and reads its response, within timeout. A Fetch
// response's record batches are valid until the next request on c.
func (c *conn) request(req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	_ = c.c.SetDeadline(time.Now().Add(timeout))
	c.corr++
	c.buf = c.fmt.AppendRequest(c.buf[:0], req, c.corr)
	if _, err := c.c.Write(c.buf); err != nil {
		return nil, fmt.Errorf("sending %s: %w", kmsg.NameForKey(req.Key()), err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c.c, size[:]); err != nil {
		return nil, fmt.Errorf("reading %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 4 || n > maxResponseSize {
		return nil, fmt.Errorf("%s response of impossible size %d", kmsg.NameForKey(req.Key()), n)
	}
	var body []byte
	switch {
	case req.Key() == 1 && int(n) <= cap(c.fetchBody):
		body = c.fetchBody[:n]
	case req.Key() == 1 && n <= keptFetchBody:
		c.fetchBody = make([]byte, n)
		body = c.fetchBody
	default:
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(c.c, body); err != nil {
		return nil, fmt.Errorf("reading %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != c.corr {
		return nil, fmt.Errorf("%s response has correlation id %d, want %d", kmsg.NameForKey(req.Key()), corr, c.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	// Flexible responses (except ApiVersions) have a tagged-field section
	// in the header; we know no header tags, so skip them.
	if resp.IsFlexible() && req.Key() != 18 {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decoding %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

var errBadTags = errors.New("malformed tagged fields in a response header")

func skipTags(b []byte) ([]byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, errBadTags
	}
	b = b[w:]
	for range n {
		if _, w = binary.Uvarint(b); w <= 0 {
			return nil, errBadTags
		}
		b = b[w:]
		size, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < size {
			return nil, errBadTags
		}
		b = b[w+int(size):]
	}
	return b, nil
}
