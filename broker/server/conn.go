package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/internal/fetchwire"
	"github.com/tributary/tributary/broker/internal/reqmem"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/security/audit"
	"github.com/tributary/tributary/broker/security/sasl"
	"github.com/tributary/tributary/broker/storage"
)

// pipelineDepth is how many requests of one connection are read ahead of
// the one being processed. Clients pipeline (kgo keeps up to 5 produce
// requests in flight per broker); reading ahead overlaps decoding with
// processing while Kafka's rule holds: requests of one connection are
// processed one at a time, in order, and answered in that order.
const pipelineDepth = 8

// maxJointProduce bounds how many pipelined Produce requests of one
// connection are appended together.
const maxJointProduce = 16

// readAheadBytes bounds the request bytes a connection holds decoded but
// not yet processed, so pipelining cannot multiply socket.request.max.bytes
// by pipelineDepth. A frame is always read when nothing is queued.
const readAheadBytes = 16 << 20

// request is one decoded request frame.
type request struct {
	size     int // frame bytes, for the read-ahead budget
	key      int16
	version  int16
	corr     int32
	clientID string
	// kreq is nil only for an ApiVersions request newer than we serve,
	// whose body we must not try to parse (KIP-511).
	kreq kmsg.Request
	// mem is the frame a Produce request was read into (pooled) and its
	// charge to the request memory, given back by releaseFrame once its
	// records are appended; empty for other requests, whose frames are
	// uncharged once decoded.
	mem reqmem.Frame
}

// errMalformed marks a frame we could not decode; the connection is closed.
var errMalformed = errors.New("malformed request")

// decodeRequest parses one frame (without its 4-byte size). A non-nil error
// means the connection must be closed; it never panics on any input.
func decodeRequest(frame []byte) (req *request, err error) {
	defer func() {
		// kmsg decodes defensively, but a decoder bug must cost one
		// connection, not the broker.
		if r := recover(); r != nil {
			req, err = nil, fmt.Errorf("%w: decoder panic: %v", errMalformed, r)
		}
	}()
	if len(frame) < 8 {
		return nil, fmt.Errorf("%w: %d-byte frame is shorter than a request header", errMalformed, len(frame))
	}
	rd := kbin.Reader{Src: frame}
	key := rd.Int16()
	version := rd.Int16()
	corr := rd.Int32()
	a, ok := apiByKey(key)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported API key %d (version %d)", errMalformed, key, version)
	}
	clientID := rd.NullableString()
	if err := rd.Complete(); err != nil {
		return nil, fmt.Errorf("%w: request header of %s: %v", errMalformed, kmsg.NameForKey(key), err)
	}
	r := &request{key: key, version: version, corr: corr}
	if clientID != nil {
		r.clientID = *clientID
	}
	if version < a.min || version > a.max {
		if key == apiVersionsKey && version > a.max {
			// KIP-511: answer with our range; the body may be in a
			// format we do not know, so do not parse it.
			return r, nil
		}
		return nil, fmt.Errorf("%w: %s version %d is not supported (we serve %d-%d)", errMalformed, kmsg.NameForKey(key), version, a.min, a.max)
	}
	kreq := kmsg.RequestForKey(key)
	kreq.SetVersion(version)
	if kreq.IsFlexible() {
		kmsg.SkipTags(&rd)
		if err := rd.Complete(); err != nil {
			return nil, fmt.Errorf("%w: request header tags of %s: %v", errMalformed, kmsg.NameForKey(key), err)
		}
	}
	if err := kreq.ReadFrom(rd.Src); err != nil {
		return nil, fmt.Errorf("%w: %s v%d body: %v", errMalformed, kmsg.NameForKey(key), version, err)
	}
	r.kreq = kreq
	return r, nil
}

// encodeResponse frames a response: size, correlation id, header tags
// (flexible versions, except ApiVersions whose response header is always
// v0 so that a client can read it before knowing our versions), body.
func encodeResponse(buf []byte, corr int32, resp kmsg.Response) []byte {
	buf = append(buf[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(buf[4:], uint32(corr))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf[:4], uint32(len(buf)-4))
	return buf
}

// responseSizeHint guesses the encoded size of a response so that large
// fetch responses are encoded into one allocation instead of a series of
// doublings, each copying every record byte again.
func responseSizeHint(resp kmsg.Response) int {
	const overhead = 64
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 256
	}
	n := overhead
	for _, t := range fr.Topics {
		n += len(t.Topic) + overhead
		for _, p := range t.Partitions {
			n += len(p.RecordBatches) + overhead
		}
	}
	return n
}

// conn is one client connection.
type conn struct {
	s        *Server
	listener *clientListener
	// nc is the TCP connection: deadlines and Close go there, from any
	// goroutine. rw carries the Kafka protocol: nc, or the TLS
	// connection over it.
	nc       net.Conn
	rw       net.Conn
	addr     netip.AddrPort // the client's address
	log      *slog.Logger
	stopping atomic.Bool
	// ctx ends when the client stops sending (the reader ends) or the
	// broker shuts down: blocked JoinGroup/SyncGroup calls and long polls
	// give up then, since nobody will read their answer.
	ctx    context.Context
	cancel context.CancelFunc
	// clientID is the client.id of the request being processed (requests
	// of a connection are processed one at a time).
	clientID string

	// queued is the size of the requests read but not yet processed;
	// the reader waits on queuedCond while it is over readAheadBytes.
	queuedMu   sync.Mutex
	queuedCond *sync.Cond
	queued     int
	processing bool // false once the processing loop ended

	// inFlight counts requests read and not yet answered. A connection
	// waiting for its own answer (a JoinGroup held for a rebalance, a
	// long poll) is not idle, whatever connections.max.idle.ms says.
	inFlight atomic.Int32

	// mutedUntil (Unix ns) is when a client quota's throttle ends
	// (quotas.go): until then nothing of the connection is read or
	// processed.
	mutedUntil atomic.Int64

	// The identity (auth.go, sasl.go): set before the first request is
	// processed, and by re-authentications, all on the processing
	// goroutine, which alone reads it.
	principal     string
	iam           bool // authenticated by an IAM identity token
	authenticated bool // may send every request (false on SASL listeners until SASL succeeds)
	// The SASL exchange: session is the one in progress, mechanism the
	// mechanism of the last handshake, saslRaw true after a v0 handshake
	// (raw SASL frames follow). sessionEnd ends the KIP-368 session (zero:
	// none) and sessionLifetime is its length, reported to the client.
	session         sasl.Session
	mechanism       string
	saslRaw         bool
	sessionEnd      time.Time
	sessionLifetime time.Duration
	// closeAfterResponse closes the connection once the response to the
	// request being handled is written (a failed authentication).
	closeAfterResponse bool
	// readBufs holds the records of the Fetch response being built; the
	// writer releases it once the response is written. readFiles are its
	// records left in their segment files (plain TCP), which the writer
	// sends with sendfile.
	readBufs  *storage.ReadBuffers
	readFiles fetchFiles
	// reads lists the connection's read buffers that hold memory and
	// were not released: when the connection ends, serve releases what a
	// path that dropped a response forgot to (releaseLeaked).
	reads *storage.ReadTracker
	// reqMem is the connection's account with the broker's request
	// memory: what its frames hold, all given back when serve ends.
	// readsEnded is closed when the connection stops reading (a wait
	// for request memory then ends).
	reqMem         *reqmem.Tracker
	readsEnded     chan struct{}
	readsEndedOnce sync.Once
}

// endReads ends a wait for request memory: the connection is stopping or
// has ended.
func (c *conn) endReads() { c.readsEndedOnce.Do(func() { close(c.readsEnded) }) }

// sendsFiles says whether the connection's writer sends record batches
// from their segment files (fetchwire.Writer.CanSendFiles): on plain TCP,
// SASL_PLAINTEXT included; over TLS they must be read to be encrypted.
func (c *conn) sendsFiles() bool {
	_, plain := c.rw.(*net.TCPConn)
	return plain
}

func newConn(s *Server, l *clientListener, nc net.Conn) *conn {
	c := &conn{s: s, listener: l, nc: nc, rw: nc, addr: remoteAddrPort(nc), principal: anonymous, authenticated: !l.cfg.SASL(),
		log: s.log.With("remote", nc.RemoteAddr().String(), "listener", l.name()), processing: true, reads: s.readBudget.Tracker(),
		reqMem: s.reqMem.Tracker(), readsEnded: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	context.AfterFunc(c.ctx, c.endReads)
	c.queuedCond = sync.NewCond(&c.queuedMu)
	return c
}

// clientAuth is how the connection's client authenticated, once it has
// (a re-authentication keeps the mechanism).
func (c *conn) clientAuth() metrics.ClientAuth {
	switch {
	case c.listener.cfg.SASL() && c.iam:
		return metrics.AuthIAM
	case c.listener.cfg.SASL():
		return metrics.AuthSCRAM
	case c.listener.cfg.TLS() && c.principal != anonymous:
		return metrics.AuthTLS
	default:
		return metrics.AuthNone
	}
}

// stopReading makes the connection stop taking new requests; those already
// read are processed and answered.
// remoteHost is the client's address as Kafka shows it in group
// descriptions: "/" + IP.
func (c *conn) remoteHost() string {
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return "/" + c.nc.RemoteAddr().String()
	}
	return "/" + host
}

func (c *conn) stopReading() {
	c.stopping.Store(true)
	c.endReads()
	_ = c.nc.SetReadDeadline(time.Now())
}

// resetIfStopping makes the close of a connection whose TLS handshake or
// SASL exchange the broker's shutdown cut short a reset, not an orderly
// FIN. A client sees an end of stream in its handshake as a
// misconfiguration (franz-go's ErrFirstReadEOF, "is TLS misconfigured?",
// which it does not retry; the Java client's handshake failure is an
// authentication error) and fails the records it was sending, where a
// reset is a network error it retries on another broker: a rolling
// restart failed produces so (TestAccCluster_authChangeInPlace, in CI).
func (c *conn) resetIfStopping() {
	if c.s.ctx.Err() == nil {
		return
	}
	if l, ok := c.nc.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
}

// serve runs the connection: a reader goroutine decodes frames ahead, this
// goroutine processes them one at a time, a writer goroutine sends the
// responses in the same order.
func (c *conn) serve() {
	defer c.nc.Close()
	defer c.cancel()
	// Last: the frames of requests read and never processed (a
	// connection that failed with requests queued) give back their
	// charge. A reader still running then finds its account closed.
	defer c.reqMem.ReleaseAll()
	if !c.startTLS() {
		c.resetIfStopping()
		return
	}
	br := bufio.NewReaderSize(trafficReader{c.rw, c.s.metrics}, 64<<10)
	if !c.authenticated && !c.authenticate(br) {
		c.resetIfStopping()
		return
	}
	kind := c.clientAuth()
	c.s.metrics.ClientAuthenticated(kind)
	defer c.s.metrics.ClientAuthClosed(kind)
	reqs := make(chan *request, pipelineDepth)
	go c.readLoop(br, reqs)

	out := make(chan outgoing, pipelineDepth)
	writeDone := make(chan struct{})
	go c.writeLoop(out, writeDone)

	defer func() {
		c.queuedMu.Lock()
		c.processing = false
		c.queuedCond.Broadcast()
		c.queuedMu.Unlock()
	}()
	var (
		pending *request // read while collecting a produce group, not yet handled
		closed  bool     // reqs is closed and empty
	)
	next := func() (*request, bool) {
		if pending != nil {
			r := pending
			pending = nil
			return r, true
		}
		if closed {
			return nil, false
		}
		r, ok := <-reqs
		if !ok {
			closed = true
			return nil, false
		}
		c.release(r.size)
		return r, true
	}
	fail := func(req *request, err error) {
		c.log.Warn("closing connection", "api", kmsg.NameForKey(req.key), "version", req.version, "client_id", req.clientID, "reason", err)
		c.nc.Close()
		c.drain(reqs)
	}
	// queue hands a response to the writer, with the read buffers its
	// records are in; false when the writer failed (it closed the
	// connection). The buffers of a response that is not queued are
	// released here: nothing else would give them back to the read
	// budget.
	queue := func(req *request, resp kmsg.Response, rd fetchRead) bool {
		o := outgoing{bufs: rd.rb}
		var ok bool
		if o.pieces, o.filePieces, ok = c.frame(req.corr, resp, rd.files); !ok {
			rd.rb.Release()
			c.nc.Close()
			return false
		}
		select {
		case out <- o:
			return true
		case <-writeDone:
			rd.rb.Release()
			return false
		}
	}
	write := func(req *request, resp kmsg.Response) bool { return queue(req, resp, fetchRead{}) }
	// send queues the response of the request just handled, with the read
	// buffers its handler filled.
	send := func(req *request, resp kmsg.Response, rd fetchRead) bool {
		if !queue(req, resp, rd) {
			c.drain(reqs)
			return false
		}
		return true
	}
	// graceful: stop after the responses already queued are written (a
	// failed re-authentication, an expired session).
	graceful := false
	answers := c.startAnswers(write)
serving:
	for {
		req, ok := next()
		if !ok {
			break
		}
		if c.sessionExpired(req) {
			// KIP-368: the session ended without a re-authentication;
			// the connection closes at its next request, after the
			// responses already on their way.
			c.log.Info("closing connection: SASL session expired without re-authentication", "principal", c.principal, "session_lifetime", c.sessionLifetime, "api", kmsg.NameForKey(req.key))
			graceful = true
			break
		}
		if answers.failed.Load() {
			c.drain(reqs)
			break
		}
		// A throttle the answers set holds the next request too.
		if !c.waitUnmuted() {
			break
		}
		if answeredLater(req) && c.authenticated && c.session == nil {
			// Produce requests the client pipelined and that are
			// already here are appended together (one fsync); a
			// transactional one goes alone.
			group := []*request{req}
			_, mergeable := mergeableProduce(req)
		collect:
			for mergeable && len(group) < maxJointProduce && !closed && pending == nil {
				select {
				case r, ok := <-reqs:
					if !ok {
						closed = true
						break collect
					}
					c.release(r.size)
					if _, m := mergeableProduce(r); m {
						group = append(group, r)
					} else {
						pending = r
					}
				default:
					break collect
				}
			}
			start := time.Now()
			answer, err := c.s.dispatchProduceGroup(c.ctx, c, group)
			if err == nil {
				// Appended (or refused): storage holds no reference
				// to the records, and answering reads none.
				for _, r := range group {
					r.releaseFrame()
				}
			}
			if err != nil {
				answers.wait()
				c.inFlight.Add(-int32(len(group)))
				fail(req, err)
				break serving
			}
			answers.push(answerJob{group: group, start: start, answer: answer})
			continue
		}
		// Any other request is handled once the Produce requests before
		// it are answered: responses go out in request order, and the
		// handler sees the connection as they left it.
		if !answers.wait() {
			c.drain(reqs)
			break
		}
		var parked atomic.Int64
		start := time.Now()
		resp, err := c.s.dispatch(withParked(c.ctx, &parked), c, req)
		if err == nil {
			// A Produce handled here (acks=0, or in the middle of a
			// SASL exchange) is appended before dispatch returns.
			req.releaseFrame()
		}
		// From here every path that does not queue the response
		// releases its buffers (rd.rb): their charge to the read
		// budget would otherwise stay for good.
		rd := fetchRead{rb: c.readBufs, files: c.readFiles}
		c.readBufs, c.readFiles = nil, nil
		c.inFlight.Add(-1)
		if err != nil {
			rd.rb.Release()
			fail(req, err)
			break
		}
		throttle := c.s.quotaThrottle(c, req, resp, rd.files, time.Since(start)-time.Duration(parked.Load()))
		if resp == nil {
			// acks=0 produce: no response to carry the throttle;
			// the muted connection is all the client sees.
			rd.rb.Release()
			if !c.mute(throttle) {
				break
			}
			continue
		}
		// A client from before KIP-219 does not back off by itself:
		// its response waits out the throttle. A newer one has it at
		// once, and the connection is muted after it.
		backsOff := throttle <= 0 || setThrottle(resp, throttle)
		if !backsOff && !c.mute(throttle) {
			rd.rb.Release()
			break
		}
		if !send(req, resp, rd) {
			break
		}
		if backsOff && !c.mute(throttle) {
			break
		}
		if c.closeAfterResponse {
			graceful = true
			break
		}
	}
	answers.close()
	close(out)
	<-writeDone
	// A writer that failed left the responses queued after it unsent.
	for o := range out {
		o.bufs.Release()
	}
	c.releaseLeaked()
	if graceful {
		c.nc.Close()
		c.drain(reqs)
	}
}

// releaseLeaked is the backstop behind the release paths of serve: once
// the handlers have returned and the writer has stopped, every read
// buffer of the connection was released, or a path that dropped a
// response forgot to. What such a path holds would otherwise stay charged
// to the fetch memory bound for good, which then cuts every fetch short
// as such leaks add up; released here, it is counted
// (tributary_fetch_memory_leaked_releases_total) and logged, once per
// connection, as the bug it is.
func (c *conn) releaseLeaked() {
	if leak := c.reads.ReleaseAll(); leak.Buffers > 0 {
		c.log.Error("released fetch read buffers a dropped response left held (a bug: a path that drops a response without releasing them)", "api", leak.Tags, "buffers", leak.Buffers, "bytes", leak.Bytes)
	}
}

// trafficReader counts what a client connection delivers (TrafficBytes).
// It sits under the connection's read buffer, so it counts once per read
// from the socket, not per frame or field; the write side counts in
// fetchwire.Writer, which keeps the vectored write of fetch responses.
type trafficReader struct {
	r io.Reader
	m *metrics.Registry
}

func (t trafficReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.m.RecordTrafficIn(n)
	return n, err
}

func (c *conn) readLoop(br *bufio.Reader, reqs chan<- *request) {
	defer close(reqs)
	defer func() {
		if !c.stopping.Load() {
			c.cancel()
		}
	}()
	var size [4]byte
	// arrived: the body bytes already received, for a frame's first
	// block (reqmem.Options.Arrived). Over TLS the socket holds records
	// not yet decrypted, which are not counted: only what br holds.
	arrived := br.Buffered
	if c.rw == c.nc {
		arrived = func() int { return br.Buffered() + socketUnread(c.nc) }
	}
	for {
		cfg := c.s.Config()
		if c.stopping.Load() {
			return
		}
		// A throttled client's connection is muted: its next request
		// stays in the socket until the throttle time has passed.
		if !c.waitUnmuted() {
			return
		}
		if idle := cfg.ConnectionsMaxIdle; idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		// Shutdown sets the flag, then a deadline in the past; checking
		// again after our own deadline means one of the two always wins.
		if c.stopping.Load() {
			return
		}
		if err := c.readSize(br, size[:], cfg.ConnectionsMaxIdle); err != nil {
			c.logReadEnd(err, "waiting for a request")
			return
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 0 || n > cfg.SocketRequestMaxBytes {
			c.log.Warn("closing connection: impossible request size", "size", uint32(n), "socket_request_max_bytes", cfg.SocketRequestMaxBytes, "hint", frameHint(size))
			c.nc.Close()
			return
		}
		mem, err := reqmem.ReadFrame(br, int(n), c.reqMem, reqmem.Options{Pooled: isProduceFrame(br, int(n)), Done: c.readsEnded, Arrived: arrived})
		if tooLarge := (*reqmem.TooLargeError)(nil); errors.As(err, &tooLarge) {
			c.log.Warn("closing connection: request larger than the broker's whole request memory", "size", tooLarge.Size, "queued_max_request_bytes", tooLarge.Limit, "hint", "raise queued.max.request.bytes, or send smaller requests")
			c.nc.Close()
			return
		}
		if err != nil {
			c.logReadEnd(err, "reading a request body")
			return
		}
		req, err := decodeRequest(mem.B)
		if err != nil {
			mem.Release()
			c.log.Warn("closing connection", "reason", err)
			c.nc.Close()
			return
		}
		req.size = len(mem.B)
		if req.key == produceAPI.key {
			req.mem = mem
		} else {
			mem.Uncharge()
		}
		if !c.reserve(req.size) {
			req.mem.Release()
			return
		}
		c.inFlight.Add(1)
		reqs <- req
	}
}

// isProduceFrame says whether the next frame, of n bytes, is a Produce
// request, whose frame is pooled: its API key, the frame's first two
// bytes, is peeked from the read buffer.
func isProduceFrame(br *bufio.Reader, n int) bool {
	key, err := br.Peek(2)
	return err == nil && n >= 2 && int16(binary.BigEndian.Uint16(key)) == produceAPI.key
}

// drain discards the requests still queued until the reader ends (the
// connection is closed), returning their read-ahead budget so the reader
// is never left waiting for room.
func (c *conn) drain(reqs <-chan *request) {
	for r := range reqs {
		c.release(r.size)
		r.mem.Uncharge()
	}
}

// reserve waits until the read-ahead budget has room for a request of n
// bytes (at once when nothing is queued). It returns false when the
// processing loop has ended.
func (c *conn) reserve(n int) bool {
	c.queuedMu.Lock()
	defer c.queuedMu.Unlock()
	for c.processing && c.queued > 0 && c.queued+n > readAheadBytes {
		c.queuedCond.Wait()
	}
	c.queued += n
	return c.processing
}

// release returns a request's bytes to the budget when its processing
// starts.
func (c *conn) release(n int) {
	c.queuedMu.Lock()
	c.queued -= n
	c.queuedCond.Broadcast()
	c.queuedMu.Unlock()
}

// readSize reads the 4-byte size of the next frame. The idle deadline
// only closes the connection when no request of it is in flight; while one
// is, the wait simply goes on.
func (c *conn) readSize(br *bufio.Reader, size []byte, idle time.Duration) error {
	got := 0
	for got < len(size) {
		n, err := br.Read(size[got:])
		got += n
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && idle > 0 && !c.stopping.Load() && c.inFlight.Load() > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
			if c.stopping.Load() { // see the comment in readLoop
				return err
			}
			continue
		}
		return err
	}
	return nil
}

func (c *conn) logReadEnd(err error, during string) {
	switch {
	case c.stopping.Load():
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("connection closed by client")
	case errors.Is(err, reqmem.ErrClosed):
		c.log.Debug("connection ended while waiting for request memory")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Info("closing idle connection", "connections_max_idle", c.s.Config().ConnectionsMaxIdle)
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Warn("connection closed mid-request", "during", during)
	default:
		c.log.Info("connection read failed", "during", during, "err", err)
	}
}

// frameHint names the usual reason for a nonsense size: something other
// than a Kafka client on the port.
func frameHint(size [4]byte) string {
	switch {
	case size[0] == 0x16 && size[1] == 0x03:
		return "looks like a TLS handshake on a plaintext listener"
	case string(size[:]) == "GET " || string(size[:]) == "POST" || string(size[:]) == "HEAD":
		return "looks like HTTP"
	}
	return ""
}

// frame encodes a response for the writer. A fetch response keeps its
// record batches where storage put them: left in their segment files
// (files, plain TCP only), they are encoded as file pieces
// (fetchwire.EncodeFiles) that the writer sends with sendfile; in memory
// (fetchwire.Encode), they go out with one vectored write on plaintext,
// straight into the records on TLS (fetchwire.Writer).
//
// ok is false when a response whose batches are in files cannot be encoded
// in pieces (a kmsg field the piece encoder leaves to kmsg, which this
// broker never sets): encoded by kmsg instead it would go out without
// those batches, an empty answer the consumer would take for "nothing
// new" and ask again forever, so the connection is closed instead.
func (c *conn) frame(corr int32, resp kmsg.Response, files fetchFiles) (_ net.Buffers, _ []fetchwire.Piece, ok bool) {
	if fr, ok := resp.(*kmsg.FetchResponse); ok {
		if len(files) > 0 {
			if pieces, ok := fetchwire.EncodeFiles(corr, fr, files.records(fr)); ok {
				return nil, pieces, true
			}
			c.log.Error("closing connection: a fetch response with record batches in files cannot be encoded in pieces")
			return nil, nil, false
		}
		if pieces, ok := fetchwire.Encode(corr, fr); ok {
			return pieces, nil, true
		}
	}
	return net.Buffers{encodeResponse(make([]byte, 0, responseSizeHint(resp)), corr, resp)}, nil, true
}

// outgoing is a response on its way to the writer: its encoded pieces (or
// filePieces, when some of its record batches are in segment files), and
// the read buffers its record batches are in (nil: none).
type outgoing struct {
	pieces     net.Buffers
	filePieces []fetchwire.Piece
	bufs       *storage.ReadBuffers
}

func (c *conn) writeLoop(out <-chan outgoing, done chan<- struct{}) {
	defer close(done)
	w := fetchwire.NewWriter(c.rw)
	for o := range out {
		if idle := c.s.Config().ConnectionsMaxIdle; idle > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(idle))
		}
		sent := w.Sent()
		var err error
		if o.filePieces != nil {
			err = w.WritePieces(o.filePieces)
		} else {
			err = w.Write(o.pieces)
		}
		// Written or failed, the connection holds no reference to the
		// records any more (writev and crypto/tls copy what they send):
		// their memory can serve the next read.
		o.bufs.Release()
		c.s.metrics.RecordTrafficOut(w.Sent() - sent)
		if err != nil {
			level := slog.LevelInfo
			if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
				level = slog.LevelDebug // the client hung up first: routine
			}
			c.log.Log(context.Background(), level, "closing connection: writing response failed", "err", err)
			c.nc.Close()
			return
		}
	}
}

// dispatchProduceGroup appends consecutive Produce requests together and
// returns answer, which waits for their replication and returns their
// responses (see handleProduceGroup).
func (s *Server) dispatchProduceGroup(ctx context.Context, c *conn, group []*request) (answer func() ([]kmsg.Response, error), err error) {
	recovered := func(err *error) {
		if r := recover(); r != nil {
			s.log.Error("handler panic", "api", "Produce", "requests", len(group), "panic", r, "stack", string(debug.Stack()))
			*err = fmt.Errorf("internal error handling %d pipelined Produce requests", len(group))
		}
	}
	defer recovered(&err)
	c.clientID = group[0].clientID
	prs := make([]*kmsg.ProduceRequest, len(group))
	for i, r := range group {
		prs[i] = r.kreq.(*kmsg.ProduceRequest)
	}
	start := time.Now()
	wait := s.handleProduceGroup(ctx, s.authFor(c, produceAPI.key), prs)
	return func() (resps []kmsg.Response, err error) {
		defer recovered(&err)
		resps = wait()
		took := time.Since(start)
		for _, r := range group {
			s.metrics.RecordRequest(metrics.RequestProduce, r.size, took)
		}
		return resps, nil
	}, nil
}

// answerJob is a group of pipelined Produce requests, appended, whose
// responses wait for their replication.
type answerJob struct {
	group  []*request
	start  time.Time
	answer func() ([]kmsg.Response, error)
}

// answers is the second stage of a connection's processing: the
// processing loop appends a group of pipelined Produce requests and hands
// it over; here its acks=all replication is waited for and its responses
// are sent, in order, while the loop appends the groups that came next.
// With the wait in the loop, each group waited for the previous one's
// replication before it was even appended, so a producer's pipelined
// requests were replicated one group at a time (at 20 MiB/s over three
// brokers, 14 of a request's 35 ms at p50 were spent queued behind the
// previous group). Appends still run one group at a time in request order;
// any other request waits until the answers before it are sent.
type answers struct {
	c       *conn
	send    func(*request, kmsg.Response) bool
	queue   chan answerJob
	pending sync.WaitGroup // groups handed over, not yet answered
	// failed: answering ended the connection (a failed write, a panic,
	// the connection closing while muted); the loop stops.
	failed atomic.Bool
	done   chan struct{}
}

func (c *conn) startAnswers(send func(*request, kmsg.Response) bool) *answers {
	a := &answers{c: c, send: send, queue: make(chan answerJob, pipelineDepth), done: make(chan struct{})}
	go a.run()
	return a
}

// push hands a group over.
func (a *answers) push(j answerJob) {
	a.pending.Add(1)
	a.queue <- j
}

// wait returns once every group handed over is answered; false when
// answering ended the connection.
func (a *answers) wait() bool {
	a.pending.Wait()
	return !a.failed.Load()
}

// close waits for the groups handed over and stops the goroutine.
func (a *answers) close() {
	close(a.queue)
	<-a.done
}

func (a *answers) run() {
	defer close(a.done)
	for j := range a.queue {
		if !a.failed.Load() && !a.answer(j) {
			a.failed.Store(true)
			a.c.nc.Close()
		}
		a.pending.Done()
	}
}

// answer waits for a group's replication and sends its responses; false
// when the connection must close.
func (a *answers) answer(j answerJob) bool {
	c, group := a.c, j.group
	resps, err := j.answer()
	c.inFlight.Add(-int32(len(group)))
	if err != nil {
		c.log.Warn("closing connection", "api", "Produce", "requests", len(group), "reason", err)
		return false
	}
	// Each request counts against the client's quotas, the group's
	// handling time shared among them; the throttle is the longest, in
	// every response.
	var throttle time.Duration
	each := time.Since(j.start) / time.Duration(len(group))
	for i, r := range group {
		throttle = max(throttle, c.s.quotaThrottle(c, r, resps[i], nil, each))
	}
	backsOff := true
	for i := range group {
		backsOff = (throttle <= 0 || setThrottle(resps[i], throttle)) && backsOff
	}
	if !backsOff && !c.mute(throttle) {
		return false
	}
	for i, r := range group {
		if !a.send(r, resps[i]) {
			return false
		}
	}
	return !backsOff || c.mute(throttle)
}

// dispatch runs the handler of one request. A nil response with a nil
// error means "send nothing" (acks=0).
func (s *Server) dispatch(ctx context.Context, c *conn, req *request) (resp kmsg.Response, err error) {
	defer func() {
		// A bug in one handler must cost one connection, not the
		// broker and every other client: Kafka, too, turns an
		// unexpected exception into a closed connection.
		if r := recover(); r != nil {
			s.log.Error("handler panic", "api", kmsg.NameForKey(req.key), "version", req.version, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("internal error handling %s v%d", kmsg.NameForKey(req.key), req.version)
		}
	}()
	if req.kreq == nil {
		return apiVersionsTooNew(req.version), nil
	}
	switch {
	case !c.authenticated && !beforeAuthentication(req.key):
		// Kafka closes a SASL connection that skips authentication.
		return nil, fmt.Errorf("%s before SASL authentication", kmsg.NameForKey(req.key))
	case c.session != nil && req.key != saslAuthenticateKey:
		return nil, fmt.Errorf("%s in the middle of a SASL exchange", kmsg.NameForKey(req.key))
	}
	a, _ := apiByKey(req.key)
	c.clientID = req.clientID
	start := time.Now()
	resp, err = a.handle(ctx, s, c, req.kreq)
	s.metrics.RecordRequest(metrics.ClassifyRequest(req.kreq), req.size, time.Since(start))
	if err == nil && audit.AdminAPI(req.key) {
		// What an admin request did, after the decisions that let it.
		s.audit.Result(ctx, c.auditRequest(req.key), req.kreq, resp)
	}
	return resp, err
}
