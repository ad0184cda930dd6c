package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sort"
	"strings"
	"syscall"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/server/metastore"
	"github.com/tributary/tributary/broker/storage"
)

var errTooManyOpenFiles = syscall.EMFILE

// topic is the server's in-memory view of one topic: its metadata and the
// open log of each partition.
type topic struct {
	name       string
	id         metastore.TopicID
	configs    map[string]string // explicit overrides
	partitions []*partition
}

// partition pairs a partition's log with its leadership state. On a
// single node this broker leads every partition; in a cluster the fields
// come from the metadata and log is nil unless this broker holds a replica.
type partition struct {
	topic       string
	index       int32
	log         *storage.Partition
	leaderEpoch int32
	leader      int32
	replicas    []int32
	isr         []int32
	offline     []int32 // replicas whose broker is fenced or gone
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	return nil
}

// storageDir is where the log lives: the data directory itself, with one
// <topic>-<partition> directory per partition as in Kafka.
func storageDir(dataDir string) string { return dataDir }

// loadTopics starts a new leadership term, opens every partition the
// metadata names (creating any whose directory is missing: a crash between
// recording a topic and creating its log) and deletes partition logs whose
// topic is gone (a crash between forgetting a topic and deleting its log).
func (s *Server) loadTopics() error {
	if err := s.meta.BumpLeaderEpochs(); err != nil {
		return fmt.Errorf("starting a new leader epoch: %w", err)
	}
	cfg := s.Config()
	known := map[string]bool{}
	for _, mt := range s.meta.Topics() {
		t, err := s.openTopic(cfg, mt)
		if err != nil {
			return err
		}
		s.topics[t.name] = t
		s.byID[t.id] = t
		known[t.name] = true
	}
	orphans := map[string]bool{}
	for _, p := range s.store.Partitions() {
		if !known[p.Topic()] {
			orphans[p.Topic()] = true
		}
	}
	for name := range orphans {
		s.log.Warn("deleting log of a topic missing from the metadata (interrupted delete)", "topic", name)
		if err := s.store.DeleteTopic(name); err != nil {
			return fmt.Errorf("deleting orphaned topic %s: %w", name, err)
		}
	}
	return nil
}

func (s *Server) openTopic(cfg *config.Config, mt metastore.Topic) (*topic, error) {
	t := &topic{name: mt.Name, id: mt.ID, configs: mt.Configs}
	tc := resolveTopicConfig(cfg, mt.Configs)
	for i, mp := range mt.Partitions {
		log, err := s.store.CreatePartition(mt.Name, int32(i), tc)
		if err != nil {
			return nil, fmt.Errorf("opening partition %s-%d: %w", mt.Name, i, err)
		}
		t.partitions = append(t.partitions, s.singleNodePartition(mt.Name, int32(i), log, mp.LeaderEpoch))
	}
	return t, nil
}

// singleNodePartition is a partition led and replicated by this broker alone.
func (s *Server) singleNodePartition(topic string, index int32, log *storage.Partition, epoch int32) *partition {
	self := []int32{s.nodeID}
	return &partition{topic: topic, index: index, log: log, leaderEpoch: epoch, leader: s.nodeID, replicas: self, isr: self}
}

// lookupTopic finds a topic by name.
func (s *Server) lookupTopic(name string) (*topic, bool) {
	s.topicsMu.RLock()
	defer s.topicsMu.RUnlock()
	t, ok := s.topics[name]
	return t, ok
}

// lookupTopicID finds a topic by id.
func (s *Server) lookupTopicID(id [16]byte) (*topic, bool) {
	s.topicsMu.RLock()
	defer s.topicsMu.RUnlock()
	t, ok := s.byID[metastore.TopicID(id)]
	return t, ok
}

// lookupPartition finds a partition by topic name and index.
func (s *Server) lookupPartition(name string, index int32) (*partition, bool) {
	t, ok := s.lookupTopic(name)
	if !ok {
		return nil, false
	}
	return t.partition(index)
}

func (t *topic) partition(index int32) (*partition, bool) {
	if index < 0 || int(index) >= len(t.partitions) {
		return nil, false
	}
	return t.partitions[index], true
}

// sortedTopics returns every topic, by name.
func (s *Server) sortedTopics() []*topic {
	s.topicsMu.RLock()
	defer s.topicsMu.RUnlock()
	out := make([]*topic, 0, len(s.topics))
	for _, t := range s.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

var (
	errInvalidTopic      = errors.New("invalid topic name")
	errInvalidPartitions = errors.New("invalid number of partitions")
)

// validTopicName applies Kafka's topic name rules.
func validTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", errInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not allowed", errInvalidTopic, name)
	case len(name) > 249:
		return fmt.Errorf("%w: longer than 249 characters", errInvalidTopic)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: %q contains %q; only ASCII letters, digits, '.', '_' and '-' are allowed", errInvalidTopic, name, r)
		}
	}
	return nil
}

// createTopic records a topic and opens its partitions. The metadata is
// written first, so a crash leaves a topic whose missing logs are created
// at the next start.
func (s *Server) createTopic(name string, partitions int32, configs map[string]string) (*topic, error) {
	return s.createTopicRF(name, partitions, -1, configs)
}

// createTopicRF is createTopic with a replication factor (-1: the default);
// in a cluster the controller places the replicas.
func (s *Server) createTopicRF(name string, partitions int32, rf int16, configs map[string]string) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, err
	}
	if partitions < 1 {
		return nil, fmt.Errorf("%w: %d", errInvalidPartitions, partitions)
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if _, ok := s.lookupTopic(name); ok {
		return nil, fmt.Errorf("%w: %s", metastore.ErrTopicExists, name)
	}
	if collides := s.collidingTopic(name); collides != "" {
		return nil, fmt.Errorf("%w: %s collides with existing topic %s ('.' and '_' are interchangeable in metric names)", errInvalidTopic, name, collides)
	}
	if s.clustered() {
		if rf == -1 {
			rf = s.Config().DefaultReplicationFactor
		}
		if live := s.liveBrokerCount(); int(rf) > live || rf < 1 {
			return nil, fmt.Errorf("%w: replication factor %d, %d live brokers", errReplicationFactor, rf, live)
		}
		t, err := s.createClusterTopic(name, partitions, rf, configs)
		if err != nil {
			return nil, err
		}
		s.log.Info("created topic", "topic", name, "partitions", partitions, "replication_factor", rf, "topic_id", t.id.String())
		return t, nil
	}
	mt, err := s.meta.CreateTopic(name, partitions, configs)
	if err != nil {
		return nil, err
	}
	t, err := s.openTopic(s.Config(), mt)
	if err != nil {
		return nil, err
	}
	s.topicsMu.Lock()
	s.topics[t.name] = t
	s.byID[t.id] = t
	s.topicsMu.Unlock()
	s.log.Info("created topic", "topic", name, "partitions", partitions, "topic_id", mt.ID.String())
	return t, nil
}

// collidingTopic returns an existing topic whose name equals name once '.'
// is read as '_', which Kafka forbids because their metrics would collide.
func (s *Server) collidingTopic(name string) string {
	norm := strings.ReplaceAll(name, ".", "_")
	s.topicsMu.RLock()
	defer s.topicsMu.RUnlock()
	for other := range s.topics {
		if other != name && strings.ReplaceAll(other, ".", "_") == norm {
			return other
		}
	}
	return ""
}

// deleteTopic forgets a topic and frees its disk.
func (s *Server) deleteTopic(name string) error {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	t, ok := s.lookupTopic(name)
	if !ok {
		return fmt.Errorf("%w: %s", metastore.ErrUnknownTopic, name)
	}
	if err := s.meta.DeleteTopic(name); err != nil {
		return err
	}
	s.topicsMu.Lock()
	delete(s.topics, name)
	delete(s.byID, t.id)
	s.topicsMu.Unlock()
	// In a cluster the replica manager of every broker holding replicas
	// deletes them too; this broker may hold none.
	if err := s.store.DeleteTopic(name); err != nil && !(s.clustered() && errors.Is(err, storage.ErrUnknownTopicOrPartition)) {
		// The metadata no longer names the topic; the next start deletes
		// the leftover files.
		return fmt.Errorf("deleting log of %s: %w", name, err)
	}
	s.data.notify() // long polls on the topic answer now
	if c := s.coordinator(); c != nil {
		// Kafka drops committed offsets of a deleted topic. In a cluster
		// only the coordinator's broker holds them: elsewhere the closed
		// coordinator has none to drop.
		if err := c.DeleteTopicOffsets(s.ctx, name); err != nil && !s.clustered() {
			s.log.Warn("deleting committed offsets of deleted topic", "topic", name, "err", err)
		}
	}
	s.metrics.RemoveTopic(name)
	s.log.Info("deleted topic", "topic", name)
	return nil
}

// addPartitions grows a topic.
func (s *Server) addPartitions(name string, count int32) error {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	t, ok := s.lookupTopic(name)
	if !ok {
		return fmt.Errorf("%w: %s", metastore.ErrUnknownTopic, name)
	}
	mt, err := s.meta.AddPartitions(name, count)
	if err != nil {
		return err
	}
	if s.clustered() {
		ctx, cancel := context.WithTimeout(s.ctx, adminTimeout)
		defer cancel()
		if _, err := s.waitClusterTopic(ctx, name, func(t *metadata.Topic) bool { return len(t.Partitions) >= int(count) }); err != nil {
			return err
		}
		s.log.Info("added partitions", "topic", name, "partitions", count)
		return nil
	}
	tc := resolveTopicConfig(s.Config(), t.configs)
	nt := &topic{name: t.name, id: t.id, configs: t.configs, partitions: append([]*partition(nil), t.partitions...)}
	for i := len(t.partitions); i < len(mt.Partitions); i++ {
		log, err := s.store.CreatePartition(name, int32(i), tc)
		if err != nil {
			return fmt.Errorf("creating partition %s-%d: %w", name, i, err)
		}
		nt.partitions = append(nt.partitions, s.singleNodePartition(name, int32(i), log, mt.Partitions[i].LeaderEpoch))
	}
	s.swapTopic(nt)
	s.log.Info("added partitions", "topic", name, "partitions", count)
	return nil
}

// setTopicConfigs replaces a topic's overrides and reconfigures its logs.
func (s *Server) setTopicConfigs(name string, configs map[string]string) error {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	t, ok := s.lookupTopic(name)
	if !ok {
		return fmt.Errorf("%w: %s", metastore.ErrUnknownTopic, name)
	}
	if _, err := s.meta.SetTopicConfigs(name, configs); err != nil {
		return err
	}
	if s.clustered() {
		s.syncClusterTopics() // reconfigures the local logs
		return nil
	}
	nt := &topic{name: t.name, id: t.id, configs: maps.Clone(configs), partitions: t.partitions}
	tc := resolveTopicConfig(s.Config(), nt.configs)
	for _, p := range nt.partitions {
		p.log.SetConfig(tc)
	}
	s.swapTopic(nt)
	return nil
}

// swapTopic replaces a topic's in-memory view. Views are never changed in
// place, so a handler holding the old one sees a consistent topic.
func (s *Server) swapTopic(nt *topic) {
	s.topicsMu.Lock()
	s.topics[nt.name] = nt
	s.byID[nt.id] = nt
	s.topicsMu.Unlock()
}

// reconfigureAll re-resolves every topic's config after a broker default
// changed.
func (s *Server) reconfigureAll() {
	cfg := s.Config()
	for _, t := range s.sortedTopics() {
		tc := resolveTopicConfig(cfg, t.configs)
		for _, p := range t.partitions {
			if p.log != nil {
				p.log.SetConfig(tc)
			}
		}
	}
}

// applyDynamic returns static with the dynamic broker configs applied: the
// cluster-wide defaults, then this node's own, which win (Kafka's order).
func applyDynamic(static *config.Config, clusterDefault, node map[string]string) (*config.Config, error) {
	cfg := static.Clone()
	for _, layer := range []map[string]string{clusterDefault, node} {
		for k, v := range layer {
			if err := cfg.Set(k, v); err != nil {
				return nil, err
			}
		}
	}
	return cfg, nil
}

// OpenStore opens (recovering) the log in the configured data directory,
// for a caller that shares the store with the cluster node
// (Options.Store).
func OpenStore(cfg *config.Config, log *slog.Logger) (*storage.Store, error) {
	if err := ensureDir(cfg.DataDir); err != nil {
		return nil, err
	}
	st, err := storage.Open(storageDir(cfg.DataDir), storageOptions(cfg, log))
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	return st, nil
}

// TopicStorageConfig resolves a topic's configs (explicit overrides) over
// the broker's defaults into the log's settings; the cluster node opens
// replicas with it.
func TopicStorageConfig(cfg *config.Config, configs map[string]string) storage.TopicConfig {
	return resolveTopicConfig(cfg, configs)
}

// storageOptions maps broker settings to the log's options.
func storageOptions(cfg *config.Config, log *slog.Logger) storage.Options {
	return storage.Options{
		FlushPolicy:            storage.FlushPolicy(cfg.LogFlushPolicy),
		FlushInterval:          cfg.LogFlushInterval,
		RetentionCheckInterval: cfg.LogRetentionCheck,
		Logger:                 log,
	}
}
