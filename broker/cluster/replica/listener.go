package replica

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/internal/fetchwire"
	"github.com/tributary/tributary/broker/internal/reqmem"
	"github.com/tributary/tributary/broker/security/authstats"
	"github.com/tributary/tributary/broker/security/tlsconf"
	"github.com/tributary/tributary/broker/storage"
)

// Limits of the replication listener.
const (
	maxRequestSize   = 1 << 20 // follower requests are small
	requestTimeout   = 60 * time.Second
	handshakeTimeout = 10 * time.Second
)

// Versions the replication listener serves, per API key.
var replicationAPIs = map[int16][2]int16{
	1:  {4, fetchVersion},                // Fetch
	18: {0, 3},                           // ApiVersions
	23: {2, offsetForLeaderEpochVersion}, // OffsetForLeaderEpoch
}

// InterBrokerAPI is a request other brokers send on the replication
// listener besides replication itself: the transaction coordinator's
// WriteTxnMarkers and a partition leader's AddPartitionsToTxn verification.
// Handle answers a decoded request of a version in [Min, Max].
type InterBrokerAPI struct {
	Min, Max int16
	Handle   func(ctx context.Context, req kmsg.Request) kmsg.Response
}

// ReplicationServer serves followers on the inter-broker port
// (inter.broker.listener.port, 9093): ApiVersions, Fetch with a replica id
// and OffsetForLeaderEpoch, over the Kafka protocol, and the inter-broker
// APIs it was given. Clients use the broker's client listeners; anything
// else here closes the connection.
type ReplicationServer struct {
	ln     net.Listener
	lookup Lookup
	// throttle is the leader side of the replication throttle (nil: none).
	throttle *Throttle
	extra    map[int16]InterBrokerAPI
	// budget bounds the memory of the batches read for followers over
	// TLS, with the client listeners' (nil: unbounded).
	budget *storage.ReadBudget
	// reqMem bounds the request bytes the listener holds read from its
	// sockets (RequestMemory by default; UseRequestMemory).
	reqMem atomic.Pointer[reqmem.Budget]
	log    *slog.Logger
	// sessions are the followers' fetch sessions (session.go).
	sessions *sessionCache
	// onFetch, when set, is told of every follower Fetch served (OnFetch).
	onFetch atomic.Pointer[func(took time.Duration, requestBytes, recordBytes int)]
	// unboundPeers counts the TLS connections whose certificate names no
	// node; refusedReplicaIDs the requests refused for a replica id other
	// than their certificate's (replicaPeer).
	unboundPeers, refusedReplicaIDs atomic.Int64
	// auth counts the TLS handshakes of accepted connections (unset
	// without TLS).
	auth atomic.Pointer[authstats.Listener]
	// afterFetchRead, when set (tests), runs once a follower Fetch has
	// read its batches, with the connection's read tracker: buffers it
	// reads into and drops are a path that forgets to release them.
	afterFetchRead atomic.Pointer[func(*storage.ReadTracker)]

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// ServeReplication serves followers, and the extra inter-broker APIs by
// key, on ln until Close; throttle (nil: none) holds back throttled
// replicas' data (see HandleFetch). Over TLS, the batches a Fetch reads
// into memory are charged to budget (nil: to none) until written.
func ServeReplication(ln net.Listener, lookup Lookup, throttle *Throttle, extra map[int16]InterBrokerAPI, budget *storage.ReadBudget, logger *slog.Logger) *ReplicationServer {
	if logger == nil {
		logger = slog.Default()
	}
	s := &ReplicationServer{ln: ln, lookup: lookup, throttle: throttle, extra: extra, budget: budget, log: logger.With("component", "replication-listener"), sessions: newSessionCache(defaultMaxFetchSessions), conns: map[net.Conn]struct{}{}}
	s.reqMem.Store(reqmem.NewBudget(RequestMemory))
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	return s
}

// RequestMemory is the default bound on the request bytes the replication
// listener holds read from its sockets, its own and not the client
// listeners' (queued.max.request.bytes): followers' fetches must not wait
// behind clients' Produce requests, or a client flood would shrink the
// ISRs and stall every acks=all produce. Follower requests are a few KiB
// (at most maxRequestSize), so 64 such requests at their largest fit: a
// follower waits only when something else floods the port.
const RequestMemory = 64 << 20

// UseRequestMemory charges the requests of connections accepted from now
// on to b (one the broker reports in its metrics).
func (s *ReplicationServer) UseRequestMemory(b *reqmem.Budget) { s.reqMem.Store(b) }

// OnFetch sets fn to be told of every follower Fetch this listener
// answers: the time from the request read to its response written (a
// parked fetch's wait included, as Kafka's FetchFollower request time),
// the request's size, and the record bytes sent. fn runs on the
// connection's goroutine and must be quick; nil removes it.
func (s *ReplicationServer) OnFetch(fn func(took time.Duration, requestBytes, recordBytes int)) {
	if fn == nil {
		s.onFetch.Store(nil)
		return
	}
	s.onFetch.Store(&fn)
}

// PeerRefusals are the replication listener's refusals of peers that
// speak for another node, counted since the start: the broker exports
// them as tributary_peer_refusals_total{listener="replication"} and
// tributary_peer_unbound_connections_total (docs/broker-metrics.md).
type PeerRefusals struct {
	// ReplicaID: Fetch and OffsetForLeaderEpoch requests refused for a
	// replica id other than their certificate's node.
	ReplicaID int64
	// Unbound: TLS connections served unbound because their certificate
	// names no node.
	Unbound int64
}

// CountAuthentications counts the TLS handshakes of the connections
// accepted from now on in l.
func (s *ReplicationServer) CountAuthentications(l *authstats.Listener) { s.auth.Store(l) }

// Authentications are the counts CountAuthentications set (nil: none).
func (s *ReplicationServer) Authentications() *authstats.Listener { return s.auth.Load() }

// PeerRefusals reads the refusal counters.
func (s *ReplicationServer) PeerRefusals() PeerRefusals {
	return PeerRefusals{ReplicaID: s.refusedReplicaIDs.Load(), Unbound: s.unboundPeers.Load()}
}

// Addr is the listening address.
func (s *ReplicationServer) Addr() string { return s.ln.Addr().String() }

// Close stops accepting, closes every connection and waits.
func (s *ReplicationServer) Close() {
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *ReplicationServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			if tc, ok := c.(interface {
				HandshakeContext(context.Context) error
				SetDeadline(time.Time) error
			}); ok {
				// Over TLS (in-cluster encryption) the peer proves it is a
				// broker of the cluster with its certificate first.
				_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
				if err := tc.HandshakeContext(s.ctx); err != nil {
					// A connection closed without a word is the
					// controller's liveness probe, not a refusal.
					if reason, ok := authstats.HandshakeFailure(err); ok && s.ctx.Err() == nil {
						s.auth.Load().Failure(authstats.TLS, reason)
						s.log.Warn("refused a replication connection: TLS handshake failed", "remote", c.RemoteAddr(), "err", err)
					}
					return
				}
				s.auth.Load().Success(authstats.TLS)
				_ = tc.SetDeadline(time.Time{})
			}
			peer, err := s.peerOf(c)
			if err != nil {
				s.log.Warn("refused a replication connection", "remote", c.RemoteAddr(), "err", err)
				return
			}
			w := fetchwire.NewWriter(c)
			reads := s.budget.Tracker()
			defer s.releaseLeaked(c, reads)
			rb := reads.Buffers("Fetch")
			mem := s.reqMem.Load().Tracker()
			defer mem.ReleaseAll()
			for {
				if err := s.serveOne(c, peer, w, rb, reads, mem); err != nil {
					if !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
						s.log.Debug("closing replication connection", "remote", c.RemoteAddr(), "err", err)
					}
					return
				}
			}
		}()
	}
}

// replicaPeer is the node the certificate of a replication connection
// names, if any: the replica id of its Fetch and OffsetForLeaderEpoch
// requests must be that node's, so that a broker's key lets it fetch only
// as itself. A replica id is what the leader acts on: the offsets a
// follower fetches at move the high watermark and the ISR, and a fetch
// session is keyed by session id and replica id.
type replicaPeer struct {
	id    int32
	named bool
}

// peerOf reads the node id of a replication connection's certificate. A
// plaintext listener has no certificate (finding 8 of
// docs/broker-security.md). A certificate that names no node was issued
// before broker certificates named theirs: its requests are served
// unbound, as before, and logged, so that a cluster keeps replicating
// through the upgrade until its certificates are renewed. A certificate
// naming a node in a form this version does not read is refused.
func (s *ReplicationServer) peerOf(c net.Conn) (replicaPeer, error) {
	tc, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return replicaPeer{}, nil
	}
	id, named, err := tlsconf.PeerNodeID(tc.ConnectionState())
	if err != nil {
		return replicaPeer{}, err
	}
	if !named {
		s.unboundPeers.Add(1)
		s.log.Warn("a replication connection's certificate names no node id; its replica ids are not bound to a node (renew the broker certificates)", "remote", c.RemoteAddr())
	}
	return replicaPeer{id: id, named: named}, nil
}

// check refuses a request of api whose replica id is not the peer's. A
// negative replica id (a consumer's) is refused elsewhere.
func (p replicaPeer) check(api string, replicaID int32) error {
	if !p.named || replicaID < 0 || replicaID == p.id {
		return nil
	}
	return fmt.Errorf("%s as replica %d on a connection whose certificate names node %d", api, replicaID, p.id)
}

// releaseLeaked is the backstop behind serveOne's release of rb: once a
// connection's requests are all served, its read buffers were all
// released, or a path forgot to; what it holds would stay charged to the
// broker's fetch memory bound for good. Released here, it is counted
// (the budget's Leaked) and logged as the bug it is.
func (s *ReplicationServer) releaseLeaked(c net.Conn, reads *storage.ReadTracker) {
	if leak := reads.ReleaseAll(); leak.Buffers > 0 {
		s.log.Error("released follower fetch read buffers a response left held (a bug: a path that drops a response without releasing them)", "remote", c.RemoteAddr(), "api", leak.Tags, "buffers", leak.Buffers, "bytes", leak.Bytes)
	}
}

// serveOne reads one request and writes its response. Batches a Fetch
// reads into memory go into rb (over TLS; reads tracks it), released once
// the response is written.
func (s *ReplicationServer) serveOne(c net.Conn, peer replicaPeer, w *fetchwire.Writer, rb *storage.ReadBuffers, reads *storage.ReadTracker, mem *reqmem.Tracker) error {
	defer rb.Release()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Minute)) // idle followers still fetch every few hundred ms
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 10 || n > maxRequestSize {
		return fmt.Errorf("request of impossible size %d", n)
	}
	_ = c.SetReadDeadline(time.Now().Add(requestTimeout))
	f, err := reqmem.ReadFrame(c, int(n), mem, reqmem.Options{First: firstRead, Done: s.ctx.Done()})
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	b := f.B
	defer f.Uncharge() // the paths that return before the decoding
	read := time.Now()
	key, version := int16(binary.BigEndian.Uint16(b)), int16(binary.BigEndian.Uint16(b[2:]))
	corr := binary.BigEndian.Uint32(b[4:])
	idLen := int(int16(binary.BigEndian.Uint16(b[8:])))
	if 10+max(idLen, 0) > len(b) {
		return errors.New("client id past the end of the request")
	}
	body := b[10+max(idLen, 0):]
	span, ok := replicationAPIs[key]
	if x, isExtra := s.extra[key]; isExtra && !ok {
		span, ok = [2]int16{x.Min, x.Max}, true
	}
	if !ok {
		return fmt.Errorf("API key %d is not served on the replication listener", key)
	}
	var (
		resp  kmsg.Response
		files fileBatches
	)
	if key == 18 && version > span[1] {
		// KIP-511: answer a too-new ApiVersions with a v0 body.
		r := kmsg.NewPtrApiVersionsResponse()
		r.ErrorCode = kerr.UnsupportedVersion.Code
		r.ApiKeys = s.apiKeys()
		return writeResponse(w, corr, r)
	}
	if version < span[0] || version > span[1] {
		return fmt.Errorf("API key %d version %d not served (%d-%d)", key, version, span[0], span[1])
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	if req.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return fmt.Errorf("decoding API key %d v%d: %w", key, version, err)
	}
	// Decoded: the frame's charge goes back before the request is
	// handled (a parked fetch would otherwise hold it while it waits);
	// its bytes are the garbage collector's.
	f.Uncharge()
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		out := r.ResponseKind().(*kmsg.ApiVersionsResponse)
		out.ApiKeys = s.apiKeys()
		resp = out
	case *kmsg.FetchRequest:
		if r.ReplicaID < 0 {
			return errors.New("consumer fetch on the replication listener")
		}
		if err := peer.check("Fetch", r.ReplicaID); err != nil {
			s.refusedReplicaIDs.Add(1)
			s.log.Warn("refused a follower fetch", "remote", c.RemoteAddr(), "err", err)
			if version < 7 {
				return err // no error code at the top of the response before v7
			}
			out := r.ResponseKind().(*kmsg.FetchResponse)
			out.ErrorCode = kerr.ClusterAuthorizationFailed.Code
			return writeResponse(w, corr, out)
		}
		// On plain TCP the batches go from the segment files to the
		// socket by sendfile; over TLS they must be read to be encrypted.
		resp, files = s.serveFetch(r, readVia{files: w.CanSendFiles(), rb: rb})
		if f := s.afterFetchRead.Load(); f != nil {
			(*f)(reads)
		}
	case *kmsg.OffsetForLeaderEpochRequest:
		// Its replica id (v3+) names the follower asking; only a
		// follower's own truncation point is for it to learn.
		if err := peer.check("OffsetForLeaderEpoch", r.ReplicaID); err != nil {
			s.refusedReplicaIDs.Add(1)
			s.log.Warn("refused an OffsetForLeaderEpoch", "remote", c.RemoteAddr(), "err", err)
			return err
		}
		resp = HandleOffsetForLeaderEpoch(r, s.lookup)
	default:
		resp = s.extra[key].Handle(s.ctx, req)
		if resp == nil {
			return fmt.Errorf("API key %d v%d: no response", key, version)
		}
	}
	_ = c.SetWriteDeadline(time.Now().Add(requestTimeout))
	if files != nil {
		err = writeFetchFiles(w, corr, resp.(*kmsg.FetchResponse), files)
	} else {
		err = writeResponse(w, corr, resp)
	}
	if fr, isFetch := resp.(*kmsg.FetchResponse); isFetch && err == nil {
		if fn := s.onFetch.Load(); fn != nil {
			records := 0
			for i := range fr.Topics {
				for j := range fr.Topics[i].Partitions {
					records += len(fr.Topics[i].Partitions[j].RecordBatches) + files.bytes(i, j)
				}
			}
			(*fn)(time.Since(read), len(b), records)
		}
	}
	return err
}

// firstRead is the memory a request's body is first read into
// (reqmem.ReadFrame); it grows as the bytes arrive, up to the size the
// request's header announced: on a plaintext replication listener anyone
// who reaches the port could otherwise make the broker allocate
// maxRequestSize per connection with four bytes, held for requestTimeout.
// Follower requests are far smaller, so they are read in one buffer.
const firstRead = 64 << 10

// serveFetch answers a follower's Fetch, in its fetch session if it has
// one (session.go).
func (s *ReplicationServer) serveFetch(req *kmsg.FetchRequest, via readVia) (*kmsg.FetchResponse, fileBatches) {
	sess, all, code := s.sessions.begin(req, time.Now())
	if code != 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = code
		return resp, nil
	}
	var refs [][]leaderRef
	if sess != nil {
		refs = sess.leaders
	}
	resp, files := handleFetch(s.ctx, all, s.lookup, refs, s.throttle, via)
	if sess != nil {
		files = sess.finish(req, resp, files)
	}
	return resp, files
}

func (s *ReplicationServer) apiKeys() []kmsg.ApiVersionsResponseApiKey {
	var out []kmsg.ApiVersionsResponseApiKey
	for _, key := range []int16{1, 18, 23} {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, replicationAPIs[key][0], replicationAPIs[key][1]
		out = append(out, k)
	}
	for key, x := range s.extra {
		if _, ok := replicationAPIs[key]; ok {
			continue
		}
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, x.Min, x.Max
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b kmsg.ApiVersionsResponseApiKey) int { return int(a.ApiKey) - int(b.ApiKey) })
	return out
}

func writeResponse(w *fetchwire.Writer, corr uint32, resp kmsg.Response) error {
	// A fetch response goes out from the record batches storage read
	// (fetchwire): a follower's fetch is most of the bytes a leader sends,
	// and copying them into one buffer first cost a large allocation and
	// a copy per fetch.
	if fr, ok := resp.(*kmsg.FetchResponse); ok {
		if pieces, ok := fetchwire.Encode(int32(corr), fr); ok {
			return w.Write(pieces)
		}
	}
	out := binary.BigEndian.AppendUint32(make([]byte, 4, responseSizeHint(resp)), corr)
	// Flexible responses carry a tagged-field header, except ApiVersions.
	if resp.IsFlexible() && resp.Key() != 18 {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return w.Write(net.Buffers{out})
}

// writeFetchFiles writes a Fetch response whose record batches are partly
// in segment files (files), which go to the socket by sendfile.
func writeFetchFiles(w *fetchwire.Writer, corr uint32, fr *kmsg.FetchResponse, files fileBatches) error {
	pieces, ok := fetchwire.EncodeFiles(int32(corr), fr, files.records)
	if !ok {
		// Fields the encoder leaves to kmsg, which the brokers never set:
		// an error, not a response without its batches.
		return errors.New("fetch response with record batches in files cannot be encoded in pieces")
	}
	return w.WritePieces(pieces)
}

// responseSizeHint guesses the encoded size of a response that is not
// sent in pieces, so that it is encoded into one allocation rather than a
// series of doublings that each copy every byte again.
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

// HandleOffsetForLeaderEpoch answers OffsetForLeaderEpoch as the leader:
// NOT_LEADER_OR_FOLLOWER unless this broker leads the partition, the
// CurrentLeaderEpoch check (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH),
// then the largest epoch <= the requested one and its end offset.
func HandleOffsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest, lookup Lookup) *kmsg.OffsetForLeaderEpochResponse {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			l, log, ok := lookup(t.Topic, p.Partition)
			switch {
			case !ok:
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			case p.CurrentLeaderEpoch >= 0 && p.CurrentLeaderEpoch < l.Epoch():
				rp.ErrorCode = kerr.FencedLeaderEpoch.Code
			case p.CurrentLeaderEpoch > l.Epoch():
				rp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			default:
				rp.LeaderEpoch, rp.EndOffset = log.EndOffsetForLeaderEpoch(p.LeaderEpoch)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
