package replica

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxResponseSize bounds a response frame from a leader.
const maxResponseSize = 256 << 20

// conn is one Kafka protocol connection to a leader. One goroutine sends
// requests; a reader goroutine reads the responses into frames, in order,
// so that the sender can send a request while an earlier one is still
// unanswered (a follower reports new durable data behind a fetch parked at
// the leader) and wait for a response and other events at once.
type conn struct {
	c    net.Conn
	fmt  *kmsg.RequestFormatter
	corr int32
	buf  []byte
	// sent are the requests without a response yet, oldest first.
	sent []sentRequest
	// frames are the responses read, or the read error that ended the
	// reader.
	frames chan frame
	done   chan struct{} // closed by close: the reader stops
}

type sentRequest struct {
	corr int32
	req  kmsg.Request
}

type frame struct {
	body []byte
	err  error
}

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
	cn := &conn{c: c, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)), frames: make(chan frame, 2), done: make(chan struct{})}
	go cn.read()
	return cn, nil
}

func (c *conn) close() error {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	return c.c.Close()
}

// read reads response frames until the connection fails. It sets no
// deadline of its own: the sender bounds its waits, and a deadline set on
// the connection (Fetcher.Add cutting a parked fetch short, Close) ends
// the reading with an error frame.
func (c *conn) read() {
	for {
		var size [4]byte
		if _, err := io.ReadFull(c.c, size[:]); err != nil {
			c.deliver(frame{err: err})
			return
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 4 || n > maxResponseSize {
			c.deliver(frame{err: fmt.Errorf("response of impossible size %d", n)})
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c.c, body); err != nil {
			c.deliver(frame{err: err})
			return
		}
		if !c.deliver(frame{body: body}) {
			return
		}
	}
}

func (c *conn) deliver(f frame) bool {
	select {
	case c.frames <- f:
		return true
	case <-c.done:
		return false
	}
}

// send writes req, within timeout; its response is the next frame after
// those of the requests sent before it.
func (c *conn) send(req kmsg.Request, timeout time.Duration) error {
	_ = c.c.SetWriteDeadline(time.Now().Add(timeout))
	c.corr++
	c.buf = c.fmt.AppendRequest(c.buf[:0], req, c.corr)
	if _, err := c.c.Write(c.buf); err != nil {
		return fmt.Errorf("sending %s: %w", kmsg.NameForKey(req.Key()), err)
	}
	c.sent = append(c.sent, sentRequest{corr: c.corr, req: req})
	return nil
}

// decode decodes a frame as the response to the oldest request sent and
// not answered, and returns that request with it.
func (c *conn) decode(f frame) (kmsg.Request, kmsg.Response, error) {
	if len(c.sent) == 0 {
		return nil, nil, errors.New("a response to no request")
	}
	s := c.sent[0]
	c.sent = c.sent[1:]
	name := kmsg.NameForKey(s.req.Key())
	if f.err != nil {
		return nil, nil, fmt.Errorf("reading %s response: %w", name, f.err)
	}
	if corr := int32(binary.BigEndian.Uint32(f.body)); corr != s.corr {
		return nil, nil, fmt.Errorf("%s response has correlation id %d, want %d", name, corr, s.corr)
	}
	body := f.body[4:]
	resp := s.req.ResponseKind()
	resp.SetVersion(s.req.GetVersion())
	// Flexible responses (except ApiVersions) have a tagged-field section
	// in the header; we know no header tags, so skip them.
	if resp.IsFlexible() && s.req.Key() != 18 {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, nil, err
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, nil, fmt.Errorf("decoding %s response: %w", name, err)
	}
	return s.req, resp, nil
}

// request sends req and reads its response, within timeout; no other
// request may be unanswered.
func (c *conn) request(req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	if err := c.send(req, timeout); err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f := <-c.frames:
		_, resp, err := c.decode(f)
		return resp, err
	case <-t.C:
		// As a read deadline would: a timeout of the connection.
		return nil, fmt.Errorf("waiting for the %s response: %w", kmsg.NameForKey(req.Key()), os.ErrDeadlineExceeded)
	}
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
