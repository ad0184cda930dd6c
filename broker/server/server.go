// Package server is the Kafka protocol side of the Tributary broker: it
// accepts connections, frames and decodes requests with franz-go's kmsg,
// dispatches them to one handler per API key (the NN_name.go files, each
// naming the versions it serves) and writes the responses back in order.
//
// The durable log is broker/storage; topics, configs and producer-id blocks
// live behind the Metadata interface (a file today, a Raft log in the
// cluster release).
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

	"github.com/tributary/tributary/broker/cluster/node"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/groups"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/metrics/grouplag"
	"github.com/tributary/tributary/broker/server/metastore"
	"github.com/tributary/tributary/broker/storage"
)

// Metadata is the cluster metadata the server needs: topics and their
// partitions, topic and dynamic broker configs, producer-id blocks. Every
// change is durable when the method returns. metastore.Store implements it
// with a file; the cluster release implements it with the Raft log.
type Metadata interface {
	ClusterID() string
	Topics() []metastore.Topic
	CreateTopic(name string, partitions int32, configs map[string]string) (metastore.Topic, error)
	DeleteTopic(name string) error
	AddPartitions(name string, count int32) (metastore.Topic, error)
	SetTopicConfigs(name string, configs map[string]string) (metastore.Topic, error)
	BumpLeaderEpochs() error
	// BrokerConfigs and SetBrokerConfigs keep dynamic broker configs of
	// one node, or the cluster-wide defaults with metastore.ClusterDefault.
	BrokerConfigs(node int32) map[string]string
	SetBrokerConfigs(node int32, configs map[string]string) error
	AllocateProducerIDBlock() (int64, error)
}

// Options configure a Server.
type Options struct {
	// Config is the static configuration (file and flags). Required.
	Config *config.Config
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metadata defaults to a metastore.Store in the data directory.
	Metadata Metadata
	// Metrics receives request, traffic and connection counts and is
	// asked for partition state, group lag and readiness; nil makes a
	// private registry (nothing is exported then).
	Metrics *metrics.Registry
	// Store is an already open log store (in a cluster the node shares
	// it); the caller closes it after Shutdown. Nil: the server opens the
	// data directory itself and closes it.
	Store *storage.Store
	// Listener, when set, is used instead of listening on the configured
	// address (tests that must know the port before the node registers).
	Listener net.Listener
	// Cluster, when set, is this broker's running cluster node: topics
	// follow its metadata, produce and consumer reads go through its
	// replica manager, and Metadata defaults to Cluster.Metadata.
	Cluster *node.Node
}

// Server is one broker's protocol server.
//
// Lock order, where locks nest: adminMu, then the Metadata store's lock,
// then topicsMu (topic changes); cfgMu, then the Metadata store's lock,
// then topicsMu (dynamic broker configs, applied to every topic); a fetch
// session's mu, then topicsMu (reads while serving an incremental fetch).
// The fetch-session cache lock and a connection's queuedMu are never held
// with another.
type Server struct {
	log      *slog.Logger
	static   *config.Config
	cfg      atomic.Pointer[config.Config] // static + dynamic broker configs
	meta     Metadata
	store    *storage.Store
	ownStore bool // opened by New, closed by Shutdown
	coord    atomic.Pointer[groups.Coordinator]
	metrics  *metrics.Registry
	serving  atomic.Bool // accepting connections (readiness)
	nodeID   int32
	host     string
	port     int32
	dataDir  string
	cfgMu    sync.Mutex // serializes dynamic config changes
	topicsMu sync.RWMutex
	topics   map[string]*topic
	byID     map[metastore.TopicID]*topic
	adminMu  sync.Mutex // serializes topic creation, deletion and reconfiguration

	// In a cluster (nil node on a single node): the follower loop and the
	// group coordinator's load state, guarded by coordMu.
	node           *node.Node
	clusterKick    chan struct{}
	clusterWG      sync.WaitGroup
	coordMu        sync.Mutex
	coordLoaded    bool
	coordEpoch     int32
	notCoordinator *groups.Coordinator // closed: answers NOT_COORDINATOR

	producerIDs   producerIDAllocator
	data          dataNotifier
	fetchSessions fetchSessionCache

	ln        net.Listener
	connsMu   sync.Mutex
	conns     map[*conn]struct{}
	connWG    sync.WaitGroup
	openConns atomic.Int64

	ctx      context.Context // canceled when shutdown starts: wakes long polls
	cancel   context.CancelFunc
	stopOnce sync.Once
	stopErr  error
}

// New opens the data directory (recovering the log) and returns a server
// that is ready to Serve.
func New(opts Options) (*Server, error) {
	if opts.Config == nil {
		return nil, errors.New("server: no config")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	static := opts.Config.Clone()
	host, port, err := static.AdvertisedHostPort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		node:        opts.Cluster,
		clusterKick: make(chan struct{}, 1),
		log:         log,
		static:      static,
		nodeID:      static.NodeID,
		host:        host,
		port:        port,
		dataDir:     static.DataDir,
		topics:      map[string]*topic{},
		byID:        map[metastore.TopicID]*topic{},
		conns:       map[*conn]struct{}{},
		ln:          opts.Listener,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.data.init()
	s.metrics = opts.Metrics
	if s.metrics == nil {
		s.metrics = metrics.New(metrics.Options{BrokerID: static.NodeID, DataDir: static.DataDir, Logger: log})
	}

	if err := ensureDir(static.DataDir); err != nil {
		return nil, err
	}
	// The log first: it takes the data directory's lock, so a second
	// broker on the same directory stops before touching the metadata.
	start := time.Now()
	s.store = opts.Store
	if s.store == nil {
		s.store, err = storage.Open(storageDir(static.DataDir), storageOptions(static, log))
		if err != nil {
			return nil, fmt.Errorf("opening log: %w", err)
		}
		s.ownStore = true
	}
	closeStore := func() {
		if s.ownStore {
			s.store.Close()
		}
	}
	s.meta = opts.Metadata
	if s.meta == nil && s.node != nil {
		s.meta = s.node.Metadata
	}
	if s.meta == nil {
		ms, err := metastore.Open(static.DataDir, static.ClusterID)
		if err != nil {
			closeStore()
			return nil, err
		}
		s.meta = ms
	}
	cfg, err := applyDynamic(static, s.meta.BrokerConfigs(metastore.ClusterDefault), s.meta.BrokerConfigs(s.nodeID))
	if err != nil {
		closeStore()
		return nil, fmt.Errorf("applying stored dynamic broker configs: %w", err)
	}
	s.cfg.Store(cfg)
	s.producerIDs.meta = s.meta
	if s.node != nil {
		// The node has caught up with the metadata (node.Start returned):
		// follow it. No orphan deletion here: the replica manager deletes
		// the logs of topics that really were deleted.
		s.syncClusterTopics()
	} else if err := s.loadTopics(); err != nil {
		closeStore()
		return nil, err
	}
	log.Info("log recovered", "partitions", len(s.store.Partitions()), "took", time.Since(start).Round(time.Millisecond))
	if err := s.openGroups(cfg); err != nil {
		closeStore()
		return nil, err
	}
	if s.node != nil {
		s.clusterWG.Add(1)
		go s.followCluster()
	}
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
// metrics component. On one node this broker leads everything and is the
// active controller; in a cluster the counts come from the metadata, and
// only the active controller reports the cluster-wide ones.
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
	return st
}

// offsetsTopic is Kafka's internal topic of committed offsets and group
// metadata; broker/groups writes it.
const offsetsTopic = "__consumer_offsets"

// openGroups starts the consumer-group coordinator on the offsets topic,
// which is recorded in the metadata like any topic (one partition,
// compacted) so clients see it, internal, in Metadata. In a cluster the
// coordinator starts unloaded (answering NOT_COORDINATOR) and the follower
// loop loads it while this broker leads the offsets partition.
func (s *Server) openGroups(cfg *config.Config) error {
	closed, err := s.newCoordinator(groups.NewMemoryLog(), slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("starting the group coordinator: %w", err)
	}
	closed.Close()
	s.notCoordinator = closed
	if s.clustered() {
		s.setCoordinator(closed)
		return nil
	}
	if _, ok := s.lookupTopic(offsetsTopic); !ok {
		if _, err := s.createTopic(offsetsTopic, 1, offsetsTopicConfigs()); err != nil {
			return fmt.Errorf("creating %s: %w", offsetsTopic, err)
		}
	}
	p, ok := s.lookupPartition(offsetsTopic, 0)
	if !ok {
		return fmt.Errorf("%s has no partition 0", offsetsTopic)
	}
	start := time.Now()
	c, err := s.newCoordinator(groups.NewPartitionLog(p.log), s.log)
	if err != nil {
		return fmt.Errorf("starting the group coordinator: %w", err)
	}
	s.setCoordinator(c)
	s.log.Info("group coordinator ready", "took", time.Since(start).Round(time.Millisecond))
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
// request answers NOT_COORDINATOR) on a cluster broker that does not lead
// the offsets partition.
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

// Listen binds the configured listener; Addr is valid afterwards.
func (s *Server) Listen() error {
	ln := s.ln // Options.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.static.ListenAddr); err != nil {
			return fmt.Errorf("listening on %s: %w", s.static.ListenAddr, err)
		}
		s.ln = ln
	}
	// A listener on port 0 (tests) advertises the port it got.
	if s.port == 0 {
		s.port = int32(ln.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// Addr is the bound listener address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Shutdown. It returns nil after a
// shutdown.
func (s *Server) Serve() error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.store.StartCleaner(s.ctx)
	s.serving.Store(true)
	s.log.Info("serving Kafka protocol", "listen", s.ln.Addr().String(), "advertised", net.JoinHostPort(s.host, fmt.Sprint(s.port)), "node_id", s.nodeID, "cluster_id", s.ClusterID())
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyOpenFiles) {
				// Temporary (out of file descriptors, ...): back off
				// rather than spin, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("accepting connections: %w", err)
		}
		backoff = 0
		if n := s.openConns.Add(1); n > int64(s.Config().MaxConnections) {
			s.openConns.Add(-1)
			s.log.Warn("closing connection: max.connections reached", "remote", nc.RemoteAddr().String(), "max_connections", s.Config().MaxConnections)
			nc.Close()
			continue
		}
		s.metrics.ConnOpened()
		c := newConn(s, nc)
		s.connsMu.Lock()
		s.conns[c] = struct{}{}
		s.connsMu.Unlock()
		s.connWG.Add(1)
		go func() {
			defer s.connWG.Done()
			defer s.openConns.Add(-1)
			defer s.metrics.ConnClosed()
			c.serve()
			s.connsMu.Lock()
			delete(s.conns, c)
			s.connsMu.Unlock()
		}()
	}
}

// Shutdown stops the broker cleanly: stop accepting, let every connection
// finish the request it is processing and write its response (long polls
// return at once with what they have), then flush and close the log. If ctx
// ends first, the remaining connections are closed hard; the log is closed
// in any case.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.log.Info("shutting down")
		s.cancel()
		if s.ln != nil {
			s.ln.Close()
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
		if c := s.coordinator(); c != nil {
			if err := c.Close(); err != nil {
				s.log.Warn("closing group coordinator", "err", err)
			}
		}
		if !s.ownStore {
			s.log.Info("shutdown complete")
			return
		}
		if err := s.store.Close(); err != nil {
			s.stopErr = fmt.Errorf("closing log: %w", err)
			return
		}
		s.log.Info("shutdown complete")
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

// producerIDAllocator hands out producer ids from durable blocks, so ids
// are unique on this broker across restarts.
type producerIDAllocator struct {
	mu   sync.Mutex
	meta Metadata
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
		a.next, a.end = first, first+metastore.ProducerIDBlockSize
	}
	id := a.next
	a.next++
	return id, nil
}
