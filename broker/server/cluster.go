package server

// The server in a cluster (Options.Cluster set): the topic view follows the
// Raft metadata instead of being the source of truth, produce goes through
// the replica manager, consumers are served only by partition leaders, and
// the group coordinator lives on the leader of __consumer_offsets.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/broker/cluster/replica"
	"github.com/tributary/tributary/broker/groups"
	"github.com/tributary/tributary/broker/server/metastore"
	"github.com/tributary/tributary/broker/storage"
)

// clusterResyncInterval bounds how long the topic view may miss a local
// log the replica manager created after the metadata change that named it.
const clusterResyncInterval = 250 * time.Millisecond

// offsetsWriteTimeout bounds a group coordinator write waiting for the
// offsets partition's followers.
const offsetsWriteTimeout = 30 * time.Second

// clusterFetchPoll is how often a waiting Fetch looks again in a cluster,
// where the high watermark moves on follower fetches that do not wake it.
const clusterFetchPoll = 10 * time.Millisecond

// clustered reports whether this broker is part of a replicated cluster.
func (s *Server) clustered() bool { return s.node != nil }

// kickCluster asks the follower loop to resync the topic view and the
// group coordinator now (a leadership changed).
func (s *Server) kickCluster() {
	select {
	case s.clusterKick <- struct{}{}:
	default:
	}
}

// LeadershipChanged is node.Options.OnLeadership's target: the broker
// started or stopped leading a partition. It only wakes the follower loop,
// which compares the whole state, so a call lost before the server existed
// costs nothing.
func (s *Server) LeadershipChanged(replica.TopicPartition, bool, int32) { s.kickCluster() }

// followCluster keeps the topic view and the group coordinator in step
// with the metadata and the replica manager until shutdown.
func (s *Server) followCluster() {
	defer s.clusterWG.Done()
	tick := time.NewTicker(clusterResyncInterval)
	defer tick.Stop()
	var (
		lastState *metadata.State
		lastLogs  int
		lastDyn   = s.dynamicLayers() // what New applied
	)
	for {
		changed := s.node.Controller.Changed()
		// States are immutable once published: the same pointer is the
		// same metadata. A tick only matters when the replica manager
		// opened or deleted a log since the last resync.
		if st, logs := s.node.Controller.State(), len(s.store.Partitions()); st != lastState || logs != lastLogs {
			s.syncClusterTopics()
			lastState, lastLogs = st, logs
		}
		s.syncCoordinator()
		lastDyn = s.syncDynamicConfigs(lastDyn)
		select {
		case <-changed:
		case <-s.clusterKick:
			lastState = nil // a leadership changed: resync in any case
		case <-tick.C:
		case <-s.ctx.Done():
			return
		}
	}
}

// syncClusterTopics rebuilds the topic view from the metadata. A partition
// has a log only if this broker holds a replica and the replica manager
// (or the server) opened it; others are known for Metadata only.
func (s *Server) syncClusterTopics() {
	st := s.node.Controller.State()
	cfg := s.Config()
	topics := make(map[string]*topic, len(st.Topics))
	byID := make(map[metastore.TopicID]*topic, len(st.Topics))
	var reconfigure []*topic
	s.topicsMu.RLock()
	old := s.topics
	s.topicsMu.RUnlock()
	for name, mt := range st.Topics {
		t := &topic{name: name, id: metastore.TopicID(mt.ID), configs: maps.Clone(mt.Configs)}
		for i, mp := range mt.Partitions {
			p := &partition{
				topic: name, index: int32(i), leaderEpoch: mp.LeaderEpoch, leader: mp.Leader,
				replicas: slices.Clone(mp.Replicas), isr: slices.Clone(mp.ISR),
			}
			for _, r := range mp.Replicas {
				if b, ok := st.Brokers[r]; !ok || b.Fenced {
					p.offline = append(p.offline, r)
				}
			}
			if slices.Contains(mp.Replicas, s.nodeID) {
				if lp, ok := s.store.Partition(name, int32(i)); ok {
					p.log = lp
				}
			}
			t.partitions = append(t.partitions, p)
		}
		if o, ok := old[name]; ok && o.id == t.id && !maps.Equal(o.configs, t.configs) {
			reconfigure = append(reconfigure, t)
		}
		topics[name], byID[t.id] = t, t
	}
	s.topicsMu.Lock()
	s.topics, s.byID = topics, byID
	s.topicsMu.Unlock()
	for _, t := range reconfigure {
		tc := resolveTopicConfig(cfg, t.configs)
		for _, p := range t.partitions {
			if p.log != nil {
				p.log.SetConfig(tc)
			}
		}
	}
}

// syncDynamicConfigs applies dynamic broker configs changed through another
// broker (cluster-wide defaults, or this broker's own) and returns the
// layers now in force.
func (s *Server) syncDynamicConfigs(last dynamicLayers) dynamicLayers {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	dyn := s.dynamicLayers()
	if maps.Equal(dyn.clusterDefault, last.clusterDefault) && maps.Equal(dyn.node, last.node) {
		return last
	}
	cfg, err := applyDynamic(s.static, dyn.clusterDefault, dyn.node)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		s.log.Error("dynamic broker configs from the cluster metadata not applied", "err", err)
		return dyn
	}
	s.cfg.Store(cfg)
	s.reconfigureAll()
	s.log.Info("applied dynamic broker configs from the cluster metadata", "cluster_default", dyn.clusterDefault, "node", dyn.node)
	return dyn
}

// waitClusterTopic waits until this broker's metadata holds the topic with
// at least the given partitions, then resyncs the topic view.
func (s *Server) waitClusterTopic(ctx context.Context, name string, ok func(*metadata.Topic) bool) (*topic, error) {
	for {
		ch := s.node.Controller.Changed()
		if mt, found := s.node.Controller.State().Topic(name); found && ok(mt) {
			s.syncClusterTopics()
			if t, found := s.lookupTopic(name); found {
				return t, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for topic %s to reach this broker's metadata: %w", name, ctx.Err())
		}
	}
}

// adminTimeout bounds a metadata change made for a client request.
const adminTimeout = 15 * time.Second

// createClusterTopic creates a topic with a replication factor through the
// controller, which places the replicas.
func (s *Server) createClusterTopic(name string, partitions int32, rf int16, configs map[string]string) (*topic, error) {
	ctx, cancel := context.WithTimeout(s.ctx, adminTimeout)
	defer cancel()
	mt, err := s.node.Controller.CreateTopic(ctx, name, partitions, rf, configs)
	if err != nil {
		return nil, clusterAdminError(err)
	}
	return s.waitClusterTopic(ctx, name, func(t *metadata.Topic) bool { return t.ID == mt.ID })
}

// clusterAdminError maps controller errors to the ones the handlers test.
func clusterAdminError(err error) error {
	switch {
	case errors.Is(err, metadata.ErrTopicExists):
		return fmt.Errorf("%w: %w", metastore.ErrTopicExists, err)
	case errors.Is(err, metadata.ErrUnknownTopicOrPartition):
		return fmt.Errorf("%w: %w", metastore.ErrUnknownTopic, err)
	case errors.Is(err, metadata.ErrInvalidPartitions):
		return fmt.Errorf("%w: %w", errInvalidPartitions, err)
	case errors.Is(err, metadata.ErrInvalidReplicaAssignment):
		return fmt.Errorf("%w: %w", errReplicaAssignment, err)
	case errors.Is(err, placement.ErrNotEnoughBrokers):
		return fmt.Errorf("%w: %w", errReplicationFactor, err)
	}
	return err
}

// assignReplicas moves a new topic's partitions to explicitly requested
// replicas. The controller places replicas itself at creation (its API takes
// no assignment), so the request's assignment is applied as a reassignment
// of the still empty partitions right after; it completes as soon as the
// new replicas have fetched the (empty) logs.
func (s *Server) assignReplicas(t *topic, assignment [][]int32) (*topic, error) {
	var rs []metadata.Reassignment
	for i, replicas := range assignment {
		if i < len(t.partitions) && slices.Equal(t.partitions[i].replicas, replicas) {
			continue
		}
		rs = append(rs, metadata.Reassignment{Topic: t.name, Partition: int32(i), Replicas: replicas})
	}
	if len(rs) == 0 {
		return t, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, adminTimeout)
	defer cancel()
	errs, err := s.node.Controller.Reassign(ctx, rs)
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: topic %s was created with placed replicas, moving them to the requested ones failed: %w", errReplicaAssignment, t.name, err)
	}
	return s.waitClusterTopic(ctx, t.name, func(mt *metadata.Topic) bool {
		for i, replicas := range assignment {
			if i >= len(mt.Partitions) || !slices.Equal(mt.Partitions[i].Replicas, replicas) {
				return false
			}
		}
		return true
	})
}

// liveBrokerCount counts the brokers that may take replicas now: this one
// on a single node.
func (s *Server) liveBrokerCount() int {
	if !s.clustered() {
		return 1
	}
	n := 0
	for _, b := range s.node.Controller.State().Brokers {
		if b.Eligible() {
			n++
		}
	}
	return n
}

// servingLog returns the log of a partition this broker serves to clients
// and its leader epoch, or the error code to answer: on one node every
// partition, in a cluster only those it leads (NOT_LEADER_OR_FOLLOWER
// otherwise, so the client refreshes its metadata). When check is set,
// current is the client's CurrentLeaderEpoch (KIP-320).
func (s *Server) servingLog(p *partition, current int32, check bool) (*storage.Partition, int32, int16) {
	log, epoch := p.log, p.leaderEpoch
	if s.clustered() {
		e, ok := s.node.LeaderEpoch(p.topic, p.index)
		if !ok {
			return nil, 0, kerr.NotLeaderForPartition.Code
		}
		epoch = e
		if log == nil {
			// Led since the last resync of the topic view.
			if log, ok = s.store.Partition(p.topic, p.index); !ok {
				return nil, 0, kerr.NotLeaderForPartition.Code
			}
		}
	}
	if check {
		if code := leaderEpochErrorCode(current, epoch); code != 0 {
			return nil, 0, code
		}
	}
	return log, epoch, 0
}

// produceClustered appends one produce job through the replica manager:
// leadership and min.insync.replicas checks, the leader epoch, and for
// acks=all the wait for the ISR.
func (s *Server) produceClustered(ctx context.Context, j produceJob) (storage.AppendResult, error) {
	log, _, code := s.servingLog(j.p, -1, false)
	if code != 0 {
		return storage.AppendResult{}, fmt.Errorf("%w: %s-%d", replica.ErrNotLeader, j.p.topic, j.p.index)
	}
	timeout := time.Duration(j.timeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.node.Produce(pctx, j.p.topic, j.p.index, j.acks, func(epoch int32) (storage.AppendResult, error) {
		// The append itself runs to durability whatever the produce
		// timeout: only the wait for the followers is bounded.
		return log.Append(context.WithoutCancel(pctx), j.record, storage.AppendOptions{LeaderEpoch: epoch})
	})
}

// syncCoordinator loads the group coordinator when this broker leads the
// offsets partition and unloads it when it stops leading (or leads at a new
// epoch: the log may have changed under another leader meanwhile).
func (s *Server) syncCoordinator() {
	epoch, leading := s.node.LeaderEpoch(offsetsTopic, 0)
	s.coordMu.Lock()
	defer s.coordMu.Unlock()
	if s.coordLoaded && (!leading || epoch != s.coordEpoch) {
		s.log.Info("group coordinator unloading", "epoch", s.coordEpoch)
		s.setCoordinator(s.notCoordinator)
		s.coordLoaded = false
	}
	if !leading || s.coordLoaded {
		return
	}
	log, ok := s.store.Partition(offsetsTopic, 0)
	if !ok {
		return // the replica manager has not opened it yet: next round
	}
	c, err := s.newCoordinator(replicatedOffsetsLog(s, log), s.log)
	if err != nil {
		s.log.Error("loading the group coordinator", "err", err)
		return
	}
	s.setCoordinator(c)
	s.coordLoaded, s.coordEpoch = true, epoch
	s.log.Info("group coordinator loaded", "epoch", epoch, "groups", len(c.Groups()))
}

// replicatedOffsetsLog writes the coordinator's records through the replica
// manager with acks=all, so a commit is acknowledged only when the ISR has
// it and survives the coordinator's broker.
func replicatedOffsetsLog(s *Server, log *storage.Partition) *groups.PartitionLog {
	return groups.NewReplicatedPartitionLog(log, func(ctx context.Context, batch []byte) error {
		// The coordinator writes without the request's cancellation;
		// bound the wait for the followers (COORDINATOR_NOT_AVAILABLE
		// then, and the client retries).
		ctx, cancel := context.WithTimeout(ctx, offsetsWriteTimeout)
		defer cancel()
		_, err := s.node.Produce(ctx, offsetsTopic, 0, -1, func(epoch int32) (storage.AppendResult, error) {
			return log.Append(context.WithoutCancel(ctx), batch, storage.AppendOptions{LeaderEpoch: epoch})
		})
		if errors.Is(err, replica.ErrNotLeader) {
			// Leadership moved: the coordinator moves with it, so the
			// client should look for it again (NOT_COORDINATOR).
			return fmt.Errorf("%w: %w", groups.ErrLogClosed, err)
		}
		return err
	})
}

// ensureOffsetsTopic creates __consumer_offsets in a cluster the first time
// a coordinator is looked for, as Kafka does: one partition, replicated to
// min(3, live brokers).
func (s *Server) ensureOffsetsTopic() error {
	if _, ok := s.lookupTopic(offsetsTopic); ok {
		return nil
	}
	rf := int16(min(3, s.liveBrokerCount()))
	if rf < 1 {
		return errors.New("no live broker")
	}
	_, err := s.createClusterTopic(offsetsTopic, 1, rf, offsetsTopicConfigs())
	if errors.Is(err, metastore.ErrTopicExists) {
		return nil
	}
	return err
}

// coordinatorBroker returns the broker that leads the offsets partition.
func (s *Server) coordinatorBroker() (brokerInfo, bool) {
	st := s.node.Controller.State()
	p, ok := st.Partition(offsetsTopic, 0)
	if !ok || p.Leader == metadata.NoLeader {
		return brokerInfo{}, false
	}
	return s.brokerByID(st, p.Leader)
}

// brokerInfo is a broker as clients see it.
type brokerInfo struct {
	id   int32
	host string
	port int32
	rack string
}

// brokerByID returns a registered, unfenced broker's client listener.
func (s *Server) brokerByID(st *metadata.State, id int32) (brokerInfo, bool) {
	b, ok := st.Brokers[id]
	if !ok || b.Fenced || len(b.Listeners) == 0 {
		return brokerInfo{}, false
	}
	l := b.Listeners[0]
	return brokerInfo{id: id, host: l.Host, port: l.Port, rack: b.Rack}, true
}

// brokers lists the brokers clients may use: this one on a single node,
// every unfenced registered broker in a cluster (by id).
func (s *Server) brokers() []brokerInfo {
	if !s.clustered() {
		return []brokerInfo{{id: s.nodeID, host: s.host, port: s.port, rack: s.Config().Rack}}
	}
	st := s.node.Controller.State()
	var out []brokerInfo
	for _, id := range st.BrokerIDs() {
		if b, ok := s.brokerByID(st, id); ok {
			out = append(out, b)
		}
	}
	return out
}

// controllerEndpoints lists the metadata quorum's voters (DescribeCluster
// with the controller endpoint type).
func (s *Server) controllerEndpoints() []brokerInfo {
	voters, err := cluster.ParseVoters(s.static.ControllerQuorumVoters)
	if err != nil {
		return nil // node.Start parsed the same list
	}
	st := s.node.Controller.State()
	var out []brokerInfo
	for _, v := range voters {
		host, portStr, err := net.SplitHostPort(v.Addr)
		if err != nil {
			continue
		}
		port, err := strconv.ParseInt(portStr, 10, 32)
		if err != nil {
			continue
		}
		b := brokerInfo{id: v.ID, host: host, port: int32(port)}
		if rb, ok := st.Brokers[v.ID]; ok {
			b.rack = rb.Rack
		}
		out = append(out, b)
	}
	return out
}

// controllerID is the active controller, -1 when none is known.
func (s *Server) controllerID() int32 {
	if !s.clustered() {
		return s.nodeID
	}
	if id, ok := s.node.Controller.ActiveController(); ok {
		return id
	}
	return -1
}
