// Package sasltest serves the Kafka protocol's authentication steps on
// loopback so that tests can drive real Kafka clients (franz-go, sarama,
// librdkafka through kcat and confluent-kafka, kafka-python) against the
// server side of SASL mechanisms before the broker itself is wired to
// them.
//
// It answers ApiVersions, SaslHandshake v0 (raw SASL frames afterwards, as
// kafka-python 2.0 uses) and v1, SaslAuthenticate v0-2 (with the KIP-368
// session lifetime from v1), and, once authenticated, Metadata describing
// itself with no topics, which is the first thing clients ask. Anything
// else closes the connection. It is a test double of the broker's
// authentication, not a broker: every outcome is reported to the test.
package sasltest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/sasl"
)

// Outcome is how one authentication ended.
type Outcome struct {
	Mechanism string
	Result    sasl.Result
	Err       error
	// Wire is the error message sent to the client ("" on success or
	// when the raw v0 framing has no room for one).
	Wire string
}

// Broker is a loopback listener speaking the authentication part of Kafka.
type Broker struct {
	Addr    string
	mechs   map[string]sasl.Mechanism
	order   []string
	ln      net.Listener
	wg      sync.WaitGroup
	changed chan struct{} // signalled after an outcome is recorded
	// tlsPrincipal authenticates TLS connections by their handshake.
	tlsPrincipal func(tls.ConnectionState) (string, error)

	mu       sync.Mutex
	outcomes []Outcome
	read     int            // outcomes Next has returned
	metadata map[string]int // authenticated Metadata requests by principal
}

// Options configures Start.
type Options struct {
	// TLS, when set, makes the listener SSL (or SASL_SSL with mechanisms).
	TLS *tls.Config
	// TLSPrincipal, with TLS, authenticates each connection by its TLS
	// handshake, as an SSL listener does (mutual TLS); the outcome's
	// mechanism is "SSL".
	TLSPrincipal func(tls.ConnectionState) (string, error)
}

// Start serves mechs on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts Options, mechs ...sasl.Mechanism) *Broker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	b := &Broker{Addr: ln.Addr().String(), mechs: map[string]sasl.Mechanism{}, ln: ln, changed: make(chan struct{}, 1), metadata: map[string]int{}}
	if opts.TLS != nil {
		b.tlsPrincipal = opts.TLSPrincipal
	}
	for _, m := range mechs {
		b.mechs[m.Name()] = m
		b.order = append(b.order, m.Name())
	}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(func() {
		ln.Close()
		b.wg.Wait()
	})
	return b
}

// Next waits for the next authentication outcome.
func (b *Broker) Next(t testing.TB, timeout time.Duration) Outcome {
	t.Helper()
	deadline := time.After(timeout)
	for {
		b.mu.Lock()
		if b.read < len(b.outcomes) {
			o := b.outcomes[b.read]
			b.read++
			b.mu.Unlock()
			return o
		}
		b.mu.Unlock()
		select {
		case <-b.changed:
		case <-deadline:
			t.Fatalf("no authentication ended within %v", timeout)
			return Outcome{}
		}
	}
}

// Skip forgets the outcomes not read yet (a client that retries after a
// refusal authenticates again).
func (b *Broker) Skip() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read = len(b.outcomes)
}

func (b *Broker) record(o Outcome) {
	b.mu.Lock()
	b.outcomes = append(b.outcomes, o)
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// MetadataRequests is how many Metadata requests principal made after
// authenticating.
func (b *Broker) MetadataRequests(principal string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.metadata[principal]
}

func (b *Broker) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer c.Close()
			b.serve(c)
		}()
	}
}

type conn struct {
	net.Conn
	r         *bufio.Reader
	session   sasl.Session
	mech      string
	raw       bool // after SaslHandshake v0: raw SASL frames
	principal string
}

func (b *Broker) serve(nc net.Conn) {
	c := &conn{Conn: nc, r: bufio.NewReader(nc)}
	defer func() {
		// A client that leaves mid-exchange may leave a decided refusal.
		if p, ok := c.session.(sasl.Pending); ok {
			if err := p.PendingFailure(); err != nil {
				b.record(Outcome{Mechanism: c.mech, Err: err})
			}
		}
	}()
	if tc, ok := nc.(*tls.Conn); ok && b.tlsPrincipal != nil {
		_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
		err := tc.Handshake()
		var p string
		if err == nil {
			p, err = b.tlsPrincipal(tc.ConnectionState())
		}
		if err != nil {
			b.record(Outcome{Mechanism: "SSL", Err: err})
			return
		}
		c.principal = p
		b.record(Outcome{Mechanism: "SSL", Result: sasl.Result{Principal: p}})
	}
	for {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		frame, err := readFrame(c.r)
		if err != nil {
			return
		}
		if c.raw {
			if !b.rawStep(c, frame) {
				return
			}
			continue
		}
		if !b.request(c, frame) {
			return
		}
	}
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

func writeFrame(w io.Writer, body []byte) error {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	_, err := w.Write(append(out, body...))
	return err
}

// rawStep is one SASL token after SaslHandshake v0. Kafka closes the
// connection on a failure; the token goes back size-prefixed, empty when
// the mechanism has nothing to say.
func (b *Broker) rawStep(c *conn, token []byte) bool {
	challenge, done, err := c.session.Step(context.Background(), token)
	if err != nil {
		b.record(Outcome{Mechanism: c.mech, Err: err})
		return false
	}
	if werr := writeFrame(c, challenge); werr != nil {
		return false
	}
	if done {
		c.raw, c.principal = false, c.session.Result().Principal
		b.record(Outcome{Mechanism: c.mech, Result: c.session.Result()})
	}
	return true
}

// request reads a request header and answers the APIs this double serves.
func (b *Broker) request(c *conn, frame []byte) bool {
	if len(frame) < 8 {
		return false
	}
	key := int16(binary.BigEndian.Uint16(frame[0:2]))
	version := int16(binary.BigEndian.Uint16(frame[2:4]))
	corr := int32(binary.BigEndian.Uint32(frame[4:8]))
	body := frame[8:]
	if len(body) < 2 {
		return false
	}
	idLen := int16(binary.BigEndian.Uint16(body))
	body = body[2:]
	if idLen > 0 {
		if len(body) < int(idLen) {
			return false
		}
		body = body[idLen:]
	}
	req := kmsg.RequestForKey(key)
	if req == nil {
		return false
	}
	if key == kmsg.ApiVersions.Int16() && version > 3 {
		// KIP-511: a v0 answer with UNSUPPORTED_VERSION and our range.
		return b.respond(c, corr, false, b.apiVersions(0, kerr.UnsupportedVersion.Code))
	}
	req.SetVersion(version)
	if req.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return false
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return false
	}
	flexibleHeader := req.IsFlexible() && key != kmsg.ApiVersions.Int16()
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return b.respond(c, corr, false, b.apiVersions(version, 0))
	case *kmsg.SASLHandshakeRequest:
		resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = b.order
		m, ok := b.mechs[r.Mechanism]
		if !ok || c.principal != "" {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
			b.respond(c, corr, flexibleHeader, resp)
			return false
		}
		c.session, c.mech, c.raw = m.NewSession(), r.Mechanism, version == 0
		return b.respond(c, corr, flexibleHeader, resp)
	case *kmsg.SASLAuthenticateRequest:
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		if c.session == nil {
			resp.ErrorCode = kerr.IllegalSaslState.Code
			b.respond(c, corr, flexibleHeader, resp)
			return false
		}
		challenge, done, err := c.session.Step(context.Background(), r.SASLAuthBytes)
		if err != nil {
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := sasl.ClientMessage(err)
			resp.ErrorMessage = &msg
			b.record(Outcome{Mechanism: c.mech, Err: err, Wire: msg})
			b.respond(c, corr, flexibleHeader, resp)
			return false
		}
		resp.SASLAuthBytes = challenge
		if done {
			res := c.session.Result()
			resp.SessionLifetimeMillis = res.SessionLifetime.Milliseconds()
			c.principal, c.session = res.Principal, nil
			b.record(Outcome{Mechanism: c.mech, Result: res})
		}
		return b.respond(c, corr, flexibleHeader, resp)
	case *kmsg.MetadataRequest:
		if c.principal == "" {
			return false // Kafka closes unauthenticated connections that skip SASL
		}
		b.mu.Lock()
		b.metadata[c.principal]++
		b.mu.Unlock()
		resp := r.ResponseKind().(*kmsg.MetadataResponse)
		host, portStr, _ := net.SplitHostPort(b.Addr)
		port, _ := strconv.Atoi(portStr)
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID, br.Host, br.Port = 0, host, int32(port)
		resp.Brokers = []kmsg.MetadataResponseBroker{br}
		resp.ControllerID = 0
		clusterID := "sasltest"
		resp.ClusterID = &clusterID
		for _, t := range r.Topics {
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic, rt.ErrorCode = t.Topic, kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, rt)
		}
		return b.respond(c, corr, flexibleHeader, resp)
	default:
		return false
	}
}

func (b *Broker) apiVersions(version int16, errCode int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	resp.ErrorCode = errCode
	for _, k := range [][3]int16{{kmsg.ApiVersions.Int16(), 0, 3}, {kmsg.SASLHandshake.Int16(), 0, 1}, {kmsg.SASLAuthenticate.Int16(), 0, 2}, {kmsg.Metadata.Int16(), 0, 12}} {
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = k[0], k[1], k[2]
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	return resp
}

func (b *Broker) respond(c *conn, corr int32, flexibleHeader bool, resp kmsg.Response) bool {
	out := binary.BigEndian.AppendUint32(nil, uint32(corr))
	if flexibleHeader {
		out = append(out, 0) // no tagged fields
	}
	out = resp.AppendTo(out)
	return writeFrame(c, out) == nil
}

// skipTags skips a request header's tagged fields.
func skipTags(b []byte) ([]byte, error) {
	n, used := binary.Uvarint(b)
	if used <= 0 {
		return nil, errors.New("bad tag count")
	}
	b = b[used:]
	for range n {
		_, used = binary.Uvarint(b) // tag
		if used <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[used:]
		size, used := binary.Uvarint(b)
		if used <= 0 || uint64(len(b)-used) < size {
			return nil, errors.New("bad tag size")
		}
		b = b[used+int(size):]
	}
	return b, nil
}
