// Package server is the Kafka protocol side of the Tributary broker: it
// accepts connections, frames and decodes requests with franz-go's kmsg,
// dispatches them to one handler per API key (the NN_name.go files, each
// naming the versions it serves) and writes the responses back in order.
//
// Every broker is part of a cluster, a single broker being a cluster of one
// voter (as Kafka's combined KRaft mode): New starts the broker's cluster
// node (broker/cluster/node), and the server follows its Raft metadata,
// produces through its partition leaders and serves consumers only where
// this broker leads. The durable log is broker/storage.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/node"
	"github.com/tributary/tributary/broker/cluster/replica"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/groups"
	"github.com/tributary/tributary/broker/internal/reqmem"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/metrics/grouplag"
	"github.com/tributary/tributary/broker/quota"
	"github.com/tributary/tributary/broker/security/audit"
	"github.com/tributary/tributary/broker/security/authstats"
	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
	"github.com/tributary/tributary/broker/txn"
)

// Options configure a Server.
type Options struct {
	// Config is the static configuration (file and flags). Required.
	Config *config.Config
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics receives request, traffic and connection counts and is
	// asked for partition state, group lag and readiness; nil makes a
	// private registry (nothing is exported then).
	Metrics *metrics.Registry
	// Listener, when set, is the first client listener's socket, used
	// instead of listening on its configured address.
	Listener net.Listener
	// Listeners, when set, are client listeners' sockets by listener name
	// (upper-case), used instead of listening on their addresses.
	Listeners map[string]net.Listener
	// Node, when set, adjusts the cluster node's options before it starts
	// (tests shorten timings and pass listeners they opened).
	Node func(*node.Options)
	// AWSConfig is the broker's AWS configuration for IAM (simulating
	// principals' policies); nil loads the SDK's default chain when an IAM
	// listener needs it.
	AWSConfig *aws.Config
}

// Server is one broker's protocol server.
//
// Lock order, where locks nest: adminTurn, then topicsMu (topic changes);
// cfgMu, then topicsMu (dynamic broker configs, applied to every topic); a
// fetch session's mu, then topicsMu (reads while serving an incremental
// fetch). The fetch-session cache lock and a connection's queuedMu are
// never held with another.
type Server struct {
	log      *slog.Logger
	static   *config.Config
	cfg      atomic.Pointer[config.Config] // static + dynamic broker configs
	meta     *cluster.MetadataStore
	store    *storage.Store
	coord    atomic.Pointer[groups.Coordinator]
	metrics  *metrics.Registry
	audit    *audit.Logger
	serving  atomic.Bool // accepting connections (readiness)
	nodeID   int32
	dataDir  string
	cfgMu    sync.Mutex // serializes dynamic config changes
	topicsMu sync.RWMutex
	topics   map[string]*topic
	byID     map[metadata.TopicID]*topic
	// adminTurn (one slot) serializes topic creation, deletion and
	// reconfiguration on this broker; a waiter leaves at its request's
	// deadline (lockAdmin).
	adminTurn chan struct{}

	// The cluster node, the follower loop and the group coordinator's
	// load state, guarded by coordMu.
	node           *node.Node
	clusterKick    chan struct{}
	clusterWG      sync.WaitGroup
	coordMu        sync.Mutex
	coordLoaded    bool
	coordEpoch     int32
	notCoordinator *groups.Coordinator // closed: answers NOT_COORDINATOR

	access *authorizer    // who may do what (authorize.go)
	quotas *quota.Manager // client quotas in force (quotas.go)
	// The transaction coordinator (a shard per partition of
	// __transaction_state this broker leads) and the client of other
	// brokers' replication listeners it and the produce verification use.
	// offsetsMarkerMu orders a marker's CompleteTxn on the offsets
	// partition with a group coordinator's replay and swap (see
	// writeTxnMarker).
	txn             *txn.Coordinator
	peers           *replica.Peers
	offsetsMarkerMu sync.RWMutex

	producerIDs   producerIDAllocator
	data          dataNotifier
	fetchSessions fetchSessionCache
	// readBudget bounds the memory of the record batches fetches read
	// into memory (TLS listeners, the TLS replication listener) until
	// their responses are written (fetch.buffer.memory.max.bytes).
	readBudget *storage.ReadBudget
	// reqMem bounds the request bytes the client listeners hold
	// (queued.max.request.bytes, request_memory.go); replReqMem is the
	// replication listener's own bound, so that clients filling theirs
	// never hold a follower's fetch back.
	reqMem, replReqMem *reqmem.Budget
	// afterFetchRead, when set (tests), runs once a Fetch has read its
	// records, before the response is sent: a panic there is a handler
	// that fails holding read buffers, and one that drops c.readBufs a
	// path that forgets to release them.
	afterFetchRead atomic.Pointer[func(*conn)]
	// unknownTopicWaitNs, when not 0 (tests), replaces unknownTopicWait.
	unknownTopicWaitNs atomic.Int64
	// beforeTxnWrite, when set (tests), runs before a transaction
	// coordinator's write to its partition of __transaction_state is
	// handed to the replica manager: a test holds it there to make the
	// log slow, or to move the partition's leadership mid-write.
	beforeTxnWrite atomic.Pointer[func(partition int32)]

	listeners []*clientListener
	connsMu   sync.Mutex
	conns     map[*conn]struct{}
	connWG    sync.WaitGroup
	openConns atomic.Int64
	ipConns   ipConnections

	ctx      context.Context // canceled when shutdown starts: wakes long polls
	cancel   context.CancelFunc
	stopOnce sync.Once
	stopErr  error
}

// New opens the data directory (recovering the log), binds the client
// listener, starts the broker's cluster node and waits, bounded by ctx, until
// it is registered and its metadata has caught up; it imports a metadata
// file left by an older broker (see importFileMetadata). The server is then
// ready to Serve; Shutdown stops it all.
func New(ctx context.Context, opts Options) (_ *Server, err error) {
	if opts.Config == nil {
		return nil, errors.New("server: no config")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	static := opts.Config.Clone()
	s := &Server{
		clusterKick: make(chan struct{}, 1),
		adminTurn:   make(chan struct{}, 1),
		log:         log,
		static:      static,
		nodeID:      static.NodeID,
		dataDir:     static.DataDir,
		topics:      map[string]*topic{},
		byID:        map[metadata.TopicID]*topic{},
		conns:       map[*conn]struct{}{},
	}
	s.applyZstdMaxWindow(static)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	fetchLimit, fetchLimitFrom := fetchMemoryLimit(static.FetchMemoryMaxBytes, "/proc", "/sys/fs/cgroup")
	s.readBudget = storage.NewReadBudget(fetchLimit)
	log.Info("fetch memory bound", "fetch_memory_max_bytes", fetchLimit, "from", fetchLimitFrom)
	s.audit = audit.New(log)
	s.data.init()
	s.metrics = opts.Metrics
	if s.metrics == nil {
		s.metrics = metrics.New(metrics.Options{BrokerID: static.NodeID, DataDir: static.DataDir, Logger: log})
	}
	s.metrics.SetFetchMemorySource(fetchMemory(s.readBudget))
	s.reqMem = reqmem.NewBudget(0)
	s.applyRequestMemory(static)
	s.replReqMem = reqmem.NewBudget(replica.RequestMemory)
	s.metrics.SetRequestMemorySource(requestMemory(s.reqMem, s.replReqMem))
	// Undo what was started when a later step fails.
	var undo []func()
	defer func() {
		if err != nil {
			s.cancel()
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	// The log first: it takes the data directory's lock, so a second
	// broker on the same directory stops before touching the metadata.
	start := time.Now()
	if s.store, err = OpenStore(static, log, s.metrics); err != nil {
		return nil, err
	}
	undo = append(undo, func() { s.store.Close() })
	log.Info("log recovered", "partitions", len(s.store.Partitions()), "took", time.Since(start).Round(time.Millisecond))

	file, err := readFileMetadata(static)
	if err != nil {
		return nil, err
	}
	if file != nil && static.ClusterID == "" {
		static.ClusterID = file.ClusterID // keep the id clients knew
	}

	// The client listeners before the node: the broker registers their
	// advertised addresses, which must carry the real ports when the
	// configured ones are 0.
	s.listeners, static, err = openListeners(static, opts.Listeners, opts.Listener, log)
	if err != nil {
		return nil, err
	}
	s.static = static
	undo = append(undo, func() {
		for _, l := range s.listeners {
			l.ln.Close()
		}
	})

	if err := s.openTxn(); err != nil {
		return nil, err
	}
	undo = append(undo, func() { s.txn.Close(); s.peers.Close() })
	// The node replays the metadata log as it starts, and its replica
	// manager opens the partitions it holds at once, concurrently with
	// the rest of this function: their topic configs need a broker config
	// from the start. The static one serves until the dynamic layers from
	// the metadata are applied below (reconfigureAll then updates what
	// was opened meanwhile).
	s.cfg.Store(static)
	nopts := node.Options{
		Config: static, Store: s.store, Logger: log,
		TopicConfig: func(configs map[string]string) storage.TopicConfig {
			return resolveTopicConfig(s.Config(), configs)
		},
		OnLeadership:    s.leadershipChanged,
		OnHighWatermark: func(replica.TopicPartition) { s.data.notify() },
		InterBrokerAPIs: s.interBrokerAPIs(),
		ReadBudget:      s.readBudget,
		RequestMemory:   s.replReqMem,
		Fetch:           replica.FetcherConfig{OnFetch: s.metrics.RecordFollowerFetch},
		OnFetchServed: func(took time.Duration, requestBytes, recordBytes int) {
			s.metrics.RecordRequest(metrics.RequestFetchFollower, requestBytes, took)
			s.metrics.RecordReplicationOut(recordBytes)
		},
	}
	if opts.Node != nil {
		opts.Node(&nopts)
	}
	if s.node, err = node.Start(ctx, nopts); err != nil {
		return nil, fmt.Errorf("starting the cluster node: %w", err)
	}
	undo = append(undo, func() { s.node.Close() })
	log.Info("joined the cluster", "voters", len(s.node.Controller.Voters()), "controller_addr", s.node.Controller.Addr(), "replication_addr", s.node.ReplicationAddr())
	s.meta = s.node.Metadata
	s.quotas = newQuotas(static)
	s.quotas.Update(s.meta.ClientQuotas())
	if file != nil {
		if err := s.importFileMetadata(ctx, file); err != nil {
			return nil, err
		}
	}

	if s.access, err = s.newAuthorizer(ctx, static, opts.AWSConfig); err != nil {
		return nil, err
	}
	if err := s.importScramBootstrap(); err != nil {
		return nil, err
	}
	if err := s.startSASL(ctx, opts.AWSConfig); err != nil {
		return nil, err
	}

	cfg, err := applyDynamic(static, s.meta.BrokerConfigs(metadata.ClusterDefault), s.meta.BrokerConfigs(s.nodeID))
	if err != nil {
		return nil, fmt.Errorf("applying stored dynamic broker configs: %w", err)
	}
	s.cfg.Store(cfg)
	s.producerIDs.meta = s.meta
	// The node has caught up with the metadata: follow it, and drop the
	// logs of topics deleted while this broker was down.
	s.syncClusterTopics()
	s.reconfigureAll()
	if err := s.deleteOrphanLogs(); err != nil {
		return nil, err
	}
	if err := s.openGroups(); err != nil {
		return nil, err
	}
	// A broker that leads the offsets partition loads its groups before it
	// serves, so its first group requests find them.
	s.syncCoordinator()
	s.syncTxnCoordinator()
	s.clusterWG.Add(1)
	go s.followCluster()
	s.metrics.SetStateSource(s.metricsState)
	s.metrics.SetLagSource(grouplag.Source(liveCoordinator{s}, func(topic string, p int32) (int64, bool) {
		part, ok := s.lookupPartition(topic, p)
		if !ok {
			return 0, false
		}
		if part.log == nil {
			return 0, false
		}
		return part.log.HighWatermark(), true
	}))
	s.metrics.SetReady(s.ready)
	return s, nil
}

// ready is the readiness check of /readyz: the broker serves clients from
// the moment it accepts connections until shutdown starts.
func (s *Server) ready() error {
	switch {
	case s.ctx.Err() != nil:
		return errors.New("shutting down")
	case !s.serving.Load():
		return errors.New("not accepting connections yet")
	}
	return nil
}

// metricsState reports the partition replicas this broker hosts (the
// internal __consumer_offsets included, as Kafka's counts do) for the
// metrics component, from the metadata; only the active controller reports
// the cluster-wide counts.
func (s *Server) metricsState() metrics.BrokerState {
	cfg := s.Config()
	st := metrics.BrokerState{ActiveController: s.controllerID() == s.nodeID}
	for _, t := range s.sortedTopics() {
		min := int(minInsyncReplicas(cfg, t.configs))
		for _, p := range t.partitions {
			if st.ActiveController {
				st.GlobalPartitionCount++
				if p.leader < 0 {
					st.OfflinePartitionsCount++
				}
			}
			if !slices.Contains(p.replicas, s.nodeID) {
				continue
			}
			st.Partitions = append(st.Partitions, metrics.PartitionState{
				Topic: t.name, Partition: p.index, Leader: p.leader == s.nodeID,
				Replicas: len(p.replicas), InSync: len(p.isr), MinInsync: min,
			})
		}
		if st.ActiveController {
			st.GlobalTopicCount++
		}
	}
	st.PendingDeletionSegments, st.PendingDeletionBytes = s.store.PendingDeletion()
	st.RaftStoreReserveBytes, st.RaftStoreReserveKept = s.node.Controller.RaftStoreReserve()
	st.RaftStoreOnReserve = s.node.Controller.RaftStoreOnReserve()
	st.RaftStoreLogStopped = s.node.Controller.RaftStoreLogStopped()
	st.PeerRefusals, st.PeerUnbound = peerRefusals(s.node.Controller.PeerRefusals(), s.node.ReplicationPeerRefusals())
	st.Authentications, st.AuthenticationFailures = s.authentications()
	if th := s.node.Replicas.Throttle(); th != nil {
		for _, side := range []struct {
			name string
			q    *quota.Replication
		}{{"leader", th.Leader}, {"follower", th.Follower}} {
			st.ReplicationThrottle = append(st.ReplicationThrottle, metrics.ThrottleState{
				Side: side.name, Rate: side.q.Rate(), Bound: float64(side.q.Bound()), Limited: side.q.Limited()})
		}
	}
	return st
}

// peerRefusals are the controller's and the replication listener's
// refusals of peers as the series of tributary_peer_refusals_total and
// tributary_peer_unbound_connections_total.
func peerRefusals(ctl cluster.PeerRefusals, repl replica.PeerRefusals) ([]metrics.PeerRefusal, []metrics.PeerUnbound) {
	return []metrics.PeerRefusal{
			{Listener: "controller", Reason: "node_mismatch", Count: ctl.NodeMismatch},
			{Listener: "controller", Reason: "controller_duty", Count: ctl.ControllerDuty},
			{Listener: "controller", Reason: "raft_rpc", Count: ctl.RaftRPC},
			{Listener: "replication", Reason: "node_mismatch", Count: repl.ReplicaID},
		}, []metrics.PeerUnbound{
			{Listener: "controller", Count: ctl.Unbound},
			{Listener: "replication", Count: repl.Unbound},
		}
}

// authentications are the series of tributary_authentications_total and
// tributary_authentication_failures_total: the client listeners' in the
// order of the configuration, then the controller's and the replication
// listener's (when they run over TLS).
func (s *Server) authentications() ([]metrics.Authentication, []metrics.AuthenticationFailure) {
	var (
		counts   []metrics.Authentication
		failures []metrics.AuthenticationFailure
	)
	ls := make([]*authstats.Listener, 0, len(s.listeners)+2)
	for _, l := range s.listeners {
		ls = append(ls, l.auth)
	}
	ls = append(ls, s.node.Controller.Authentications(), s.node.ReplicationAuthentications())
	for _, l := range ls {
		cs, fs := l.Series()
		for _, c := range cs {
			counts = append(counts, metrics.Authentication{Listener: c.Listener, Mechanism: c.Mechanism, Result: c.Result, Count: c.Count})
		}
		for _, f := range fs {
			failures = append(failures, metrics.AuthenticationFailure{Listener: f.Listener, Mechanism: f.Mechanism, Reason: string(f.Reason), Count: f.Count})
		}
	}
	return counts, failures
}

// offsetsTopic is Kafka's internal topic of committed offsets and group
// metadata; broker/groups writes it.
const offsetsTopic = "__consumer_offsets"

// openGroups prepares the consumer-group coordinator: it starts unloaded
// (answering NOT_COORDINATOR), and the follower loop loads it while this
// broker leads the offsets partition.
func (s *Server) openGroups() error {
	closed, err := s.newCoordinator(groups.NewMemoryLog(), slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("starting the group coordinator: %w", err)
	}
	closed.Close()
	s.notCoordinator = closed
	s.setCoordinator(closed)
	return nil
}

// offsetsTopicConfigs are the settings broker/groups needs for its log, as
// topic configs so that DescribeConfigs shows what is in force.
func offsetsTopicConfigs() map[string]string {
	oc := groups.OffsetsTopicConfig()
	return map[string]string{
		"cleanup.policy":    oc.CleanupPolicy,
		"segment.bytes":     strconv.FormatInt(oc.SegmentBytes, 10),
		"max.message.bytes": strconv.FormatInt(int64(oc.MaxMessageBytes), 10),
	}
}

// newCoordinator starts a group coordinator on an offsets log (replaying it).
func (s *Server) newCoordinator(offsets groups.OffsetLog, log *slog.Logger) (*groups.Coordinator, error) {
	cfg := s.Config()
	gc := groups.DefaultConfig()
	gc.InitialRebalanceDelay = cfg.GroupInitialRebalanceDelay
	gc.MinSessionTimeout = cfg.GroupMinSessionTimeout
	gc.MaxSessionTimeout = cfg.GroupMaxSessionTimeout
	gc.OffsetsRetention = cfg.OffsetsRetention
	gc.Logger = log
	gc.PartitionExists = func(topic string, p int32) bool {
		_, ok := s.lookupPartition(topic, p)
		return ok
	}
	return groups.New(s.ctx, offsets, gc)
}

// coordinator is the group coordinator in force: a closed one (every
// request answers NOT_COORDINATOR) while this broker does not lead the
// offsets partition.
func (s *Server) coordinator() *groups.Coordinator { return s.coord.Load() }

// setCoordinator replaces the coordinator in force, closing the previous
// one (its parked requests answer NOT_COORDINATOR).
func (s *Server) setCoordinator(c *groups.Coordinator) {
	if old := s.coord.Swap(c); old != nil && old != c {
		if err := old.Close(); err != nil {
			s.log.Warn("closing group coordinator", "err", err)
		}
	}
}

// liveCoordinator follows the coordinator in force for the lag metrics.
type liveCoordinator struct{ s *Server }

func (l liveCoordinator) Groups() []groups.GroupSummary { return l.s.coordinator().Groups() }

func (l liveCoordinator) GroupLag(group string, end func(topic string, partition int32) (int64, bool)) ([]groups.PartitionLag, []groups.TopicLag, bool) {
	return l.s.coordinator().GroupLag(group, end)
}

// Config returns the configuration in force (static plus dynamic).
func (s *Server) Config() *config.Config { return s.cfg.Load() }

// ClusterID is the cluster id clients see.
func (s *Server) ClusterID() string { return s.meta.ClusterID() }

// Addr is the first client listener's bound address.
func (s *Server) Addr() net.Addr { return s.listeners[0].ln.Addr() }

// ListenerAddr is the bound address of the client listener named name
// (upper-case); nil when there is none.
func (s *Server) ListenerAddr(name string) net.Addr {
	for _, l := range s.listeners {
		if l.name() == name {
			return l.ln.Addr()
		}
	}
	return nil
}

// Serve accepts connections on every client listener until Shutdown. It
// returns nil after a shutdown, and the first accept failure otherwise.
func (s *Server) Serve() error {
	s.store.StartCleaner(s.ctx)
	s.serving.Store(true)
	for _, l := range s.listeners {
		host, port, _ := config.AdvertisedHostPort(l.cfg)
		s.log.Info("listener", "name", l.name(), "protocol", l.cfg.Protocol, "addr", l.ln.Addr().String(), "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	// One line that says the broker serves, with the first listener's
	// address, which scripts and tests wait for.
	s.log.Info("serving Kafka protocol", "listen", s.Addr().String(), "listeners", len(s.listeners), "node_id", s.nodeID, "cluster_id", s.ClusterID())
	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		go func() { errc <- s.acceptLoop(l) }()
	}
	for range s.listeners {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

// Shutdown stops the broker cleanly: a controlled shutdown first (its
// leaderships move to other in-sync replicas, if any, while it still
// answers clients, which then find the new leaders), then stop accepting,
// let every connection finish the request it is processing and write its
// response (long polls return at once with what they have), then stop the
// cluster node and flush and close the log. If ctx ends first, the
// remaining connections are closed hard; the node and the log are closed
// in any case.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.log.Info("shutting down")
		if left, err := s.node.Controller.ControlledShutdown(ctx); err != nil {
			s.log.Warn("controlled shutdown incomplete", "leaderships_left", left, "err", err)
		}
		s.cancel()
		for _, l := range s.listeners {
			l.ln.Close()
		}
		s.connsMu.Lock()
		for c := range s.conns {
			c.stopReading()
		}
		s.connsMu.Unlock()

		done := make(chan struct{})
		go func() { s.connWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("shutdown deadline reached, closing connections with requests in flight")
			s.connsMu.Lock()
			for c := range s.conns {
				c.nc.Close()
			}
			s.connsMu.Unlock()
			<-done
		}
		s.clusterWG.Wait()
		s.txn.Close()
		s.peers.Close()
		if c := s.coordinator(); c != nil {
			if err := c.Close(); err != nil {
				s.log.Warn("closing group coordinator", "err", err)
			}
		}
		var errs []error
		if err := s.node.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the cluster node: %w", err))
		}
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing log: %w", err))
		}
		s.stopErr = errors.Join(errs...)
		if s.stopErr == nil {
			s.log.Info("shutdown complete")
		}
	})
	return s.stopErr
}

// dataNotifier wakes Fetch long polls when any partition gets new durable
// data. Waiters take the channel before looking at the log, so an append
// between their look and their wait still wakes them.
type dataNotifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *dataNotifier) init() { n.ch = make(chan struct{}) }

func (n *dataNotifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *dataNotifier) notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// producerIDAllocator hands out producer ids from blocks reserved in the
// cluster metadata, so ids are unique in the cluster and across restarts.
type producerIDAllocator struct {
	mu   sync.Mutex
	meta *cluster.MetadataStore
	next int64
	end  int64
}

func (a *producerIDAllocator) allocate() (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next >= a.end {
		first, err := a.meta.AllocateProducerIDBlock()
		if err != nil {
			return 0, fmt.Errorf("allocating producer id block: %w", err)
		}
		a.next, a.end = first, first+cluster.ProducerIDBlockSize
	}
	id := a.next
	a.next++
	return id, nil
}

// applyZstdMaxWindow sets tributary.zstd.max.window.bytes, at start and on
// every change of the dynamic broker configs. Process wide, as the
// decoding streams it bounds (recordbatch's streamSlots) are: brokers of
// one process (tests) share the last value set.
func (s *Server) applyZstdMaxWindow(cfg *config.Config) {
	if err := recordbatch.SetZstdMaxWindow(cfg.ZstdMaxWindowBytes); err != nil {
		// The setting's range is recordbatch's: refused before here.
		s.log.Error("tributary.zstd.max.window.bytes not applied", "err", err)
	}
}
