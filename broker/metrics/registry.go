package metrics

import (
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Options configure a Registry.
type Options struct {
	// ClusterName and BrokerID are the values of the `Cluster Name` and
	// `Broker ID` dimensions in CloudWatch (MSK's names); BrokerID is the
	// broker's node.id.
	ClusterName string
	BrokerID    int32
	// DataDir is the data volume's mount (log.dirs): KafkaDataLogsDiskUsed
	// is measured on the file system holding it. "" leaves it unmeasured.
	DataDir string
	// RootDir is the file system of RootDiskUsed; default "/".
	RootDir string
	// ProcRoot is where /proc is mounted; default "/proc" (tests point it
	// at fixture files).
	ProcRoot string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Registry holds the broker's metrics. The Record and Conn methods are the
// hot path: they only add to atomic counters and never allocate (a topic's
// counters are allocated once, on its first record). Everything else
// (partition counts, disk, CPU, lag) is pulled from the broker and the host
// when the metrics are read, through the state and lag sources registered
// with SetStateSource and SetLagSource.
//
// A Registry is safe for concurrent use.
type Registry struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	bytesIn, bytesOut, messagesIn     atomic.Int64
	replicationBytesIn                atomic.Int64
	replicationBytesOut               atomic.Int64
	produceConversions                atomic.Int64 // never incremented: records are stored as sent
	connOpen, connCreated, connClosed atomic.Int64
	trafficIn, trafficOut             atomic.Int64 // client listeners' bytes (TrafficBytes)
	clientConns                       [numClientAuths]atomic.Int64
	connRefused                       [numRefusals]atomic.Int64
	requestBytes                      sizeSum
	requests                          [numRequestKinds]histogram
	logFlush                          histogram    // one observation per sync round of the data directory
	logFlushFiles                     atomic.Int64 // files those rounds synced
	followerFetch                     histogram    // a follower's Fetch round trip, the leader's wait included
	followerDurable                   histogram    // a follower writing a fetch response and waiting until it is durable
	topics                            atomic.Pointer[map[string]*topicCounters]
	topicsMu                          sync.Mutex // serializes copy-on-write updates of topics
	sourcesMu                         sync.RWMutex
	state                             StateSource
	lag                               LagSource
	ready                             func() error
	timeLag                           timeLagEstimator
	shipper                           atomic.Pointer[Shipper] // for its stats in /metrics; nil when not shipping
	throttles                         [numThrottleKinds]throttleCounters
	exempt                            sizeSum                // nanoseconds of requests exempt from quotas
	logDropped                        func() int64           // under sourcesMu
	fetchMemory                       func() FetchMemory     // under sourcesMu
	requestMemory                     func() []RequestMemory // under sourcesMu
}

// topicCounters are one topic's totals on this broker since start.
type topicCounters struct {
	bytesIn, bytesOut, messagesIn atomic.Int64
}

// sizeSum is a sum and a count, for means (RequestBytesMean).
type sizeSum struct {
	sum, count atomic.Int64
}

func (s *sizeSum) add(v int64) {
	s.sum.Add(v)
	s.count.Add(1)
}

// New returns an empty registry.
func New(opts Options) *Registry {
	if opts.RootDir == "" {
		opts.RootDir = "/"
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Registry{opts: opts, log: opts.Logger, now: time.Now}
	empty := map[string]*topicCounters{}
	r.topics.Store(&empty)
	r.timeLag.init()
	return r
}

// ClusterName is the `Cluster Name` dimension's value.
func (r *Registry) ClusterName() string { return r.opts.ClusterName }

// BrokerID is the `Broker ID` dimension's value.
func (r *Registry) BrokerID() int32 { return r.opts.BrokerID }

// topic returns the counters of a topic, creating them on first use. The
// lookup is a map read through an atomic pointer: no lock, no allocation.
// New topics copy the map (rare: once per topic per process).
func (r *Registry) topic(name string) *topicCounters {
	if t, ok := (*r.topics.Load())[name]; ok {
		return t
	}
	r.topicsMu.Lock()
	defer r.topicsMu.Unlock()
	cur := *r.topics.Load()
	if t, ok := cur[name]; ok {
		return t
	}
	next := make(map[string]*topicCounters, len(cur)+1)
	maps.Copy(next, cur)
	t := &topicCounters{}
	next[name] = t
	r.topics.Store(&next)
	return t
}

// RecordProduce counts records appended to a topic's partition by a
// client's Produce (BytesInPerSec, MessagesInPerSec): bytes is the size of
// the record batches as the client sent them (before the leader
// re-compresses them for the topic's compression.type, as Kafka counts),
// records the number of records they hold.
// Call it once per partition that was appended, not for duplicates of
// idempotent batches nor for failed appends (Kafka counts accepted data).
func (r *Registry) RecordProduce(topic string, bytes, records int) {
	t := r.topic(topic)
	t.bytesIn.Add(int64(bytes))
	t.messagesIn.Add(int64(records))
	r.bytesIn.Add(int64(bytes))
	r.messagesIn.Add(int64(records))
}

// RecordFetch counts record bytes sent to a consumer by Fetch
// (BytesOutPerSec). Call it with the records of the response actually sent,
// per topic; follower fetches go to RecordReplicationOut instead, as in
// Kafka, where BytesOutPerSec excludes replication.
func (r *Registry) RecordFetch(topic string, bytes int) {
	if bytes == 0 {
		return
	}
	r.topic(topic).bytesOut.Add(int64(bytes))
	r.bytesOut.Add(int64(bytes))
}

// RecordReplicationIn counts record bytes a follower appended from its
// leader (ReplicationBytesInPerSec).
func (r *Registry) RecordReplicationIn(bytes int) { r.replicationBytesIn.Add(int64(bytes)) }

// RecordReplicationOut counts record bytes a leader sent to followers
// (ReplicationBytesOutPerSec).
func (r *Registry) RecordReplicationOut(bytes int) { r.replicationBytesOut.Add(int64(bytes)) }

// RecordLogFlush counts one sync round of the log (Kafka's
// LogFlushRateAndTimeMs): how long it took to make the partitions enrolled
// in it durable, and how many files it synced (0 when the round synced the
// data directory's file system at once, or had nothing new to sync).
func (r *Registry) RecordLogFlush(d time.Duration, files int) {
	r.logFlush.observe(d)
	r.logFlushFiles.Add(int64(files))
}

// RecordFollowerFetch counts one Fetch a follower of this broker sent to a
// leader and got an answer to: request is its round trip, the time the
// leader parked it included; durable is the time the follower then took to
// write the partitions of the response and wait until they were durable
// (the flush policy's wait), after which it fetches again; bytes are the
// record bytes it appended (ReplicationBytesInPerSec).
func (r *Registry) RecordFollowerFetch(request, durable time.Duration, bytes int) {
	r.followerFetch.observe(request)
	r.followerDurable.observe(durable)
	r.replicationBytesIn.Add(int64(bytes))
}

// RequestKind is the class of a request for the request-time metrics.
type RequestKind int

// Request kinds, after Kafka's request metrics (RequestMetrics name=...).
const (
	RequestProduce       RequestKind = iota // Produce (ProduceTotalTimeMsMean)
	RequestFetchConsumer                    // Fetch from a client (FetchConsumerTotalTimeMsMean)
	RequestFetchFollower                    // Fetch from a follower replica (FetchFollowerTotalTimeMsMean)
	RequestOther                            // every other API
	numRequestKinds
)

// String is the kind's label value in Prometheus.
func (k RequestKind) String() string {
	switch k {
	case RequestProduce:
		return "produce"
	case RequestFetchConsumer:
		return "fetch_consumer"
	case RequestFetchFollower:
		return "fetch_follower"
	default:
		return "other"
	}
}

// ClassifyRequest tells a request's kind from its decoded form: a Fetch
// with a replica id (ReplicaID before v15, ReplicaState.ID from v15) of 0 or
// more comes from a follower.
func ClassifyRequest(req kmsg.Request) RequestKind {
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		return RequestProduce
	case *kmsg.FetchRequest:
		id := r.ReplicaID
		if r.Version >= 15 {
			id = r.ReplicaState.ID
		}
		if id >= 0 {
			return RequestFetchFollower
		}
		return RequestFetchConsumer
	default:
		return RequestOther
	}
}

// RecordRequest counts one request served: its size on the wire (the
// frame after the length prefix; RequestBytesMean) and the time from the
// start of its handling to its response being ready (the *TotalTimeMsMean
// metrics and RequestTime). A Fetch's time includes its long-poll wait, as
// in Kafka.
func (r *Registry) RecordRequest(kind RequestKind, bytes int, d time.Duration) {
	if kind < 0 || kind >= numRequestKinds {
		kind = RequestOther
	}
	r.requests[kind].observe(d)
	r.requestBytes.add(int64(bytes))
}

// ConnOpened counts an accepted client connection (ConnectionCount,
// ConnectionCreationRate).
func (r *Registry) ConnOpened() {
	r.connOpen.Add(1)
	r.connCreated.Add(1)
}

// ConnClosed counts a closed client connection (ConnectionCloseRate). Call
// it exactly once per ConnOpened.
func (r *Registry) ConnClosed() {
	r.connOpen.Add(-1)
	r.connClosed.Add(1)
}

// RecordTrafficIn counts bytes read from a client connection (TrafficBytes):
// the Kafka protocol's bytes as the connection delivers them, request
// frames and SASL tokens alike. Replication and quorum traffic go through
// other listeners and are not counted, as MSK counts only the traffic
// between clients and brokers.
func (r *Registry) RecordTrafficIn(n int) { r.trafficIn.Add(int64(n)) }

// RecordTrafficOut counts bytes written to a client connection
// (TrafficBytes), as the writes report them: a response cut short by a
// failed write counts the part that went out.
func (r *Registry) RecordTrafficOut(n int64) { r.trafficOut.Add(n) }

// Refusal is why a client connection was closed at accept, unserved.
type Refusal int

const (
	// RefusedMaxConnections: max.connections were open.
	RefusedMaxConnections Refusal = iota
	// RefusedPerIP: its source address held max.connections.per.ip (or
	// its override) already.
	RefusedPerIP
	// RefusedCreationRate: its address was over its
	// connection_creation_rate quota (held for the throttle time, then
	// closed).
	RefusedCreationRate
	numRefusals
)

func (r Refusal) String() string {
	switch r {
	case RefusedPerIP:
		return "per_ip"
	case RefusedCreationRate:
		return "creation_rate"
	default:
		return "max_connections"
	}
}

// ConnRefused counts a connection closed at accept, unserved.
func (r *Registry) ConnRefused(why Refusal) {
	if why >= 0 && why < numRefusals {
		r.connRefused[why].Add(1)
	}
}

// ClientAuth is how an open client connection authenticated: the value of
// MSK's Client Authentication dimension of ClientConnectionCount.
type ClientAuth int

const (
	// AuthNone: a PLAINTEXT listener, or TLS without a client
	// certificate (User:ANONYMOUS).
	AuthNone ClientAuth = iota
	// AuthTLS: a client certificate (mutual TLS).
	AuthTLS
	// AuthSCRAM: SASL SCRAM-SHA-256 or SCRAM-SHA-512.
	AuthSCRAM
	// AuthIAM: SASL OAUTHBEARER with an IAM identity token.
	AuthIAM
	numClientAuths
)

func (a ClientAuth) String() string {
	switch a {
	case AuthTLS:
		return "TLS"
	case AuthSCRAM:
		return "SASL/SCRAM"
	case AuthIAM:
		return "IAM"
	default:
		return "Unauthenticated"
	}
}

// ClientAuthenticated counts an open connection under how its client
// authenticated (ClientConnectionCount), once it has: a connection still
// in its TLS handshake or SASL exchange is in ConnectionCount only.
func (r *Registry) ClientAuthenticated(a ClientAuth) {
	if a >= 0 && a < numClientAuths {
		r.clientConns[a].Add(1)
	}
}

// ClientAuthClosed uncounts a connection counted by ClientAuthenticated
// with the same kind, when it closes. Call it exactly once per
// ClientAuthenticated.
func (r *Registry) ClientAuthClosed(a ClientAuth) {
	if a >= 0 && a < numClientAuths {
		r.clientConns[a].Add(-1)
	}
}

// RemoveTopic forgets a deleted topic's counters, so its series stop being
// exported. A topic created again with the same name starts from zero.
func (r *Registry) RemoveTopic(name string) {
	r.topicsMu.Lock()
	defer r.topicsMu.Unlock()
	cur := *r.topics.Load()
	if _, ok := cur[name]; !ok {
		return
	}
	next := maps.Clone(cur)
	delete(next, name)
	r.topics.Store(&next)
}

// SetStateSource registers the function that reports the broker's
// partitions and cluster view when metrics are read.
func (r *Registry) SetStateSource(f StateSource) {
	r.sourcesMu.Lock()
	r.state = f
	r.sourcesMu.Unlock()
}

// SetLagSource registers the function that reports consumer-group lag
// when metrics are read (see broker/metrics/grouplag).
func (r *Registry) SetLagSource(f LagSource) {
	r.sourcesMu.Lock()
	r.lag = f
	r.sourcesMu.Unlock()
}

// SetReady registers the readiness check of /readyz: nil from it means the
// broker serves clients. Until it is set, /readyz answers 503.
func (r *Registry) SetReady(f func() error) {
	r.sourcesMu.Lock()
	r.ready = f
	r.sourcesMu.Unlock()
}

func (r *Registry) sources() (StateSource, LagSource, func() error) {
	r.sourcesMu.RLock()
	defer r.sourcesMu.RUnlock()
	return r.state, r.lag, r.ready
}
