package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/storage"
)

var errTooManyOpenFiles = syscall.EMFILE

// topic is the server's in-memory view of one topic: its metadata and the
// open log of each partition this broker holds.
type topic struct {
	name       string
	id         metadata.TopicID
	configs    map[string]string // explicit overrides
	partitions []*partition
}

// partition pairs a partition's log with its replication state from the
// metadata; log is nil unless this broker holds a replica.
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

// deleteOrphanLogs deletes the partition logs of topics the metadata does
// not have: topics deleted while this broker was down, or whose deletion
// was interrupted. The node has caught up with the metadata when it
// started, so a topic missing from it is really gone.
func (s *Server) deleteOrphanLogs() error {
	st := s.node.Controller.State()
	orphans := map[string]bool{}
	for _, p := range s.store.Partitions() {
		if _, ok := st.Topic(p.Topic()); !ok {
			orphans[p.Topic()] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(orphans)) {
		s.log.Warn("deleting log of a topic missing from the metadata (deleted while this broker was down, or an interrupted delete)", "topic", name)
		if err := s.store.DeleteTopic(name); err != nil && !errors.Is(err, storage.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("deleting orphaned topic %s: %w", name, err)
		}
	}
	return nil
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
	t, ok := s.byID[metadata.TopicID(id)]
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
	errReservedTopic     = errors.New("reserved topic name")
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

// clusterMetadataTopic is the name of Kafka's metadata log, which Kafka
// refuses to create as a topic. Tributary's metadata is not a topic, but a
// topic of that name would be taken for it by the tools that know Kafka's.
const clusterMetadataTopic = "__cluster_metadata"

// reservedTopicError says why a client may not create topic name itself
// (CreateTopics), or is nil. The internal topics are the broker's to
// create, with their own settings (compaction, partition count, replication)
// when a coordinator is first looked for, or when a Metadata request
// auto-creates them, as Kafka's auto-creation does: one a client created
// with its own (cleanup.policy=delete) would lose every group's committed
// offsets at the first retention pass. Kafka lets a client create them and
// refuses only __cluster_metadata; this refuses all three, with the code
// and words Kafka refuses that one with.
func reservedTopicError(name string) error {
	switch name {
	case offsetsTopic:
		return fmt.Errorf("%w: creation of internal topic %s is prohibited: the broker creates it, compacted, when a group coordinator is first looked for", errReservedTopic, name)
	case txnTopic:
		return fmt.Errorf("%w: creation of internal topic %s is prohibited: the broker creates it, compacted and with transaction.state.log.num.partitions partitions, when a transaction coordinator is first looked for", errReservedTopic, name)
	case clusterMetadataTopic:
		return fmt.Errorf("%w: creation of internal topic %s is prohibited", errReservedTopic, name)
	}
	return nil
}

// autoCreateTopic creates a topic a client's Metadata request named and
// may create, as Kafka's auto-creation does: an internal topic with its
// own settings, as at the first coordinator lookup; __cluster_metadata
// never (errReservedTopic); any other with num.partitions and
// default.replication.factor; within ctx.
func (s *Server) autoCreateTopic(ctx context.Context, name string) (*topic, error) {
	var err error
	switch name {
	case offsetsTopic:
		err = s.ensureOffsetsTopic(ctx)
	case txnTopic:
		err = s.ensureTxnTopic(ctx)
	case clusterMetadataTopic:
		return nil, reservedTopicError(name)
	default:
		return s.createTopicRF(ctx, name, s.Config().NumPartitions, -1, nil)
	}
	if err != nil {
		return nil, err
	}
	t, ok := s.lookupTopic(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s vanished right after its creation", errUnknownTopic, name)
	}
	return t, nil
}

// createTopic creates a topic with the default replication factor.
func (s *Server) createTopic(name string, partitions int32, configs map[string]string) (*topic, error) {
	return s.createTopicRF(context.Background(), name, partitions, -1, configs)
}

// createTopicRF creates a topic with a replication factor (-1: the default)
// through the controller, which places the replicas; the replica manager
// of each broker holding one opens its log. ctx bounds the wait for the
// controller (a client's timeout_ms), as well as the metadata store's own
// bound.
func (s *Server) createTopicRF(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*topic, error) {
	if rf == -1 {
		rf = s.Config().DefaultReplicationFactor
	}
	return s.newTopic(ctx, name, partitions, rf, nil, configs)
}

// createTopicAssigned creates a topic on explicitly chosen replicas, one
// list per partition.
func (s *Server) createTopicAssigned(ctx context.Context, name string, assignments [][]int32, configs map[string]string) (*topic, error) {
	if len(assignments) == 0 {
		return nil, fmt.Errorf("%w: no partitions", errInvalidPartitions)
	}
	return s.newTopic(ctx, name, int32(len(assignments)), int16(len(assignments[0])), assignments, configs)
}

func (s *Server) newTopic(ctx context.Context, name string, partitions int32, rf int16, assignments [][]int32, configs map[string]string) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, err
	}
	if partitions < 1 {
		return nil, fmt.Errorf("%w: %d", errInvalidPartitions, partitions)
	}
	if err := s.lockAdmin(ctx); err != nil {
		return nil, err
	}
	defer s.unlockAdmin()
	if _, ok := s.lookupTopic(name); ok {
		return nil, fmt.Errorf("%w: %s", errTopicExists, name)
	}
	if collides := s.collidingTopic(name); collides != "" {
		return nil, fmt.Errorf("%w: %s collides with existing topic %s ('.' and '_' are interchangeable in metric names)", errInvalidTopic, name, collides)
	}
	var err error
	if assignments != nil {
		_, err = s.meta.CreateTopicAssigned(ctx, name, assignments, configs)
	} else {
		if live := s.liveBrokerCount(); int(rf) > live || rf < 1 {
			return nil, fmt.Errorf("%w: replication factor %d, %d live brokers", errReplicationFactor, rf, live)
		}
		_, err = s.meta.CreateTopic(ctx, name, partitions, rf, configs)
	}
	if err != nil {
		return nil, clusterAdminError(err)
	}
	t, err := s.syncedTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	s.log.Info("created topic", "topic", name, "partitions", partitions, "replication_factor", rf, "topic_id", t.id.String())
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

// deleteTopic deletes a topic, waiting for the controller within ctx (a
// client's timeout_ms). The replica manager of every broker holding
// replicas deletes them; this one deletes its own at once, so that the
// disk is free when the request is answered.
func (s *Server) deleteTopic(ctx context.Context, name string) error {
	if err := s.lockAdmin(ctx); err != nil {
		return err
	}
	defer s.unlockAdmin()
	if _, ok := s.lookupTopic(name); !ok {
		return fmt.Errorf("%w: %s", errUnknownTopic, name)
	}
	if err := s.meta.DeleteTopic(ctx, name); err != nil {
		return clusterAdminError(err)
	}
	s.syncAfterChange(ctx)
	if err := s.store.DeleteTopic(name); err != nil && !errors.Is(err, storage.ErrUnknownTopicOrPartition) {
		// The metadata no longer names the topic; the next start deletes
		// the leftover files.
		return fmt.Errorf("deleting log of %s: %w", name, err)
	}
	s.data.notify() // long polls on the topic answer now
	s.coordMu.Lock()
	loaded := s.coordLoaded
	s.coordMu.Unlock()
	if loaded {
		// Kafka drops committed offsets of a deleted topic; only the
		// broker that leads the offsets partition holds them.
		if err := s.coordinator().DeleteTopicOffsets(s.ctx, name); err != nil {
			s.log.Warn("deleting committed offsets of deleted topic", "topic", name, "err", err)
		}
	}
	s.metrics.RemoveTopic(name)
	s.log.Info("deleted topic", "topic", name)
	return nil
}

// addPartitions grows a topic to count partitions: placed by the
// controller, or on the given replicas (one list per new partition),
// waiting for the controller within ctx (a client's timeout_ms).
func (s *Server) addPartitions(ctx context.Context, name string, count int32, assignments [][]int32) error {
	if err := s.lockAdmin(ctx); err != nil {
		return err
	}
	defer s.unlockAdmin()
	if _, ok := s.lookupTopic(name); !ok {
		return fmt.Errorf("%w: %s", errUnknownTopic, name)
	}
	if _, err := s.meta.AddPartitions(ctx, name, count, assignments); err != nil {
		return clusterAdminError(err)
	}
	s.syncAfterChange(ctx)
	s.log.Info("added partitions", "topic", name, "partitions", count)
	return nil
}

// setTopicConfigs replaces a topic's overrides and reconfigures its logs,
// waiting for the controller within ctx.
func (s *Server) setTopicConfigs(ctx context.Context, name string, configs map[string]string) error {
	if err := s.lockAdmin(ctx); err != nil {
		return err
	}
	defer s.unlockAdmin()
	if _, ok := s.lookupTopic(name); !ok {
		return fmt.Errorf("%w: %s", errUnknownTopic, name)
	}
	if _, err := s.meta.SetTopicConfigs(ctx, name, configs); err != nil {
		return clusterAdminError(err)
	}
	s.syncAfterChange(ctx) // reconfigures the local logs
	return nil
}

// reconfigureAll re-resolves every topic's config after a broker default
// changed.
func (s *Server) reconfigureAll() {
	cfg := s.Config()
	s.applyRequestMemory(cfg)
	s.applyZstdMaxWindow(cfg)
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

// OpenStore opens (recovering) the log in the configured data directory;
// its sync rounds are counted in reg when reg is not nil.
func OpenStore(cfg *config.Config, log *slog.Logger, reg *metrics.Registry) (*storage.Store, error) {
	if err := ensureDir(cfg.DataDir); err != nil {
		return nil, err
	}
	opts := storageOptions(cfg, log)
	if reg != nil {
		opts.OnSyncRound = reg.RecordLogFlush
	}
	st, err := storage.Open(storageDir(cfg.DataDir), opts)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	return st, nil
}

// storageOptions maps broker settings to the log's options.
func storageOptions(cfg *config.Config, log *slog.Logger) storage.Options {
	return storage.Options{
		FlushPolicy:            storage.FlushPolicy(cfg.LogFlushPolicy),
		SyncMethod:             storage.SyncMethod(cfg.LogFlushSync),
		FlushInterval:          cfg.LogFlushInterval,
		RetentionCheckInterval: cfg.LogRetentionCheck,
		ProducerIDExpiration:   cfg.ProducerIDExpiration,
		Logger:                 log,
	}
}
