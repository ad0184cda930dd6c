package server

// Following the cluster: the topic view follows the Raft metadata, produce
// goes through the replica manager, consumers are served only by partition
// leaders, and the group coordinator lives on the leader of
// __consumer_offsets. A single broker is a cluster of one and runs the same
// code: it leads every partition, with an ISR of itself.

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
	"github.com/tributary/tributary/broker/storage"
)

// clusterResyncInterval bounds how long the topic view may miss a local
// log the replica manager created after the metadata change that named it.
const clusterResyncInterval = 250 * time.Millisecond

// offsetsWriteTimeout bounds a group coordinator write waiting for the
// offsets partition's followers.
const offsetsWriteTimeout = 30 * time.Second

// kickCluster asks the follower loop to resync the topic view and the
// group coordinator now (a leadership changed).
func (s *Server) kickCluster() {
	select {
	case s.clusterKick <- struct{}{}:
	default:
	}
}

// leadershipChanged is node.Options.OnLeadership's target: the broker
// started or stopped leading a partition. It only wakes the follower loop,
// which compares the whole state.
func (s *Server) leadershipChanged(replica.TopicPartition, bool, int32) { s.kickCluster() }

// followCluster keeps the topic view and the group coordinator in step
// with the metadata and the replica manager until shutdown.
func (s *Server) followCluster() {
	defer s.clusterWG.Done()
	tick := time.NewTicker(clusterResyncInterval)
	defer tick.Stop()
	var (
		lastState *metadata.State
		lastDyn   = s.dynamicLayers() // what New applied
	)
	for {
		changed := s.node.Controller.Changed()
		// A state where only leases moved (heartbeats) changes nothing
		// in the view; a tick matters only while the replica manager has
		// not opened a replica's log yet.
		if st := s.node.Controller.State(); lastState == nil || !st.OnlyLeasesDiffer(lastState) || s.replicaLogMissing() {
			s.syncClusterTopics()
			s.quotas.Update(st.ClientQuotas)
			lastState = st
		}
		s.syncCoordinator()
		s.syncTxnCoordinator()
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

// replicaLogMissing reports whether the topic view has a partition this
// broker holds a replica of without its log (opened by the replica manager
// after the view was built).
func (s *Server) replicaLogMissing() bool {
	s.topicsMu.RLock()
	defer s.topicsMu.RUnlock()
	for _, t := range s.topics {
		for _, p := range t.partitions {
			if p.log == nil && slices.Contains(p.replicas, s.nodeID) {
				return true
			}
		}
	}
	return false
}

// syncClusterTopics rebuilds the topic view from the metadata. A partition
// has a log only if this broker holds a replica and the replica manager
// (or the server) opened it; others are known for Metadata only.
func (s *Server) syncClusterTopics() {
	st := s.node.Controller.State()
	cfg := s.Config()
	topics := make(map[string]*topic, len(st.Topics))
	byID := make(map[metadata.TopicID]*topic, len(st.Topics))
	var reconfigure []*topic
	s.topicsMu.RLock()
	old := s.topics
	s.topicsMu.RUnlock()
	for name, mt := range st.Topics {
		o := old[name]
		t := topicView(name, mt, o, st.Brokers, s.nodeID, s.store.Partition)
		if o != nil && o.id == t.id && !maps.Equal(o.configs, t.configs) {
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

// topicView is the view of topic name, whose metadata is mt: its partitions' leaders, ISRs,
// replicas whose broker is gone or fenced, and for those this broker holds
// a replica of, the log (from logOf, once opened). A partition of old, the
// view of the same topic built before, is kept as it is when mt says the
// same of it and it has its log, still open (a partition moved off this
// broker and straight back, its log deleted in between, has a new log
// while its metadata may read the same): the views are never changed once
// built, and with thousands of partitions most metadata changes (an ISR change,
// an election) leave all but one alone, so a new view for each made every
// change cost every broker thousands of allocations and log lookups.
func topicView(name string, mt *metadata.Topic, old *topic, brokers map[int32]*metadata.Broker, nodeID int32, logOf func(string, int32) (*storage.Partition, bool)) *topic {
	t := &topic{name: name, id: mt.ID, configs: maps.Clone(mt.Configs), partitions: make([]*partition, 0, mt.NumPartitions())}
	if old != nil && old.id != mt.ID {
		old = nil // deleted and created again: nothing to keep
	}
	for i, mp := range mt.Partitions() {
		mine := slices.Contains(mp.Replicas, nodeID)
		if old != nil && int(i) < len(old.partitions) {
			if op := old.partitions[i]; op.leader == mp.Leader && op.leaderEpoch == mp.LeaderEpoch &&
				slices.Equal(op.replicas, mp.Replicas) && slices.Equal(op.isr, mp.ISR) &&
				sameOffline(op.offline, mp.Replicas, brokers) && (!mine || op.log != nil && !op.log.Closed()) {
				t.partitions = append(t.partitions, op)
				continue
			}
		}
		p := &partition{
			topic: name, index: i, leaderEpoch: mp.LeaderEpoch, leader: mp.Leader,
			replicas: slices.Clone(mp.Replicas), isr: slices.Clone(mp.ISR),
		}
		for _, r := range mp.Replicas {
			if b, ok := brokers[r]; !ok || b.Fenced {
				p.offline = append(p.offline, r)
			}
		}
		if mine {
			if lp, ok := logOf(name, int32(i)); ok {
				p.log = lp
			}
		}
		t.partitions = append(t.partitions, p)
	}
	return t
}

// sameOffline reports whether offline lists exactly the replicas whose
// broker brokers lacks or has fenced, in replica order.
func sameOffline(offline, replicas []int32, brokers map[int32]*metadata.Broker) bool {
	n := 0
	for _, r := range replicas {
		if b, ok := brokers[r]; !ok || b.Fenced {
			if n >= len(offline) || offline[n] != r {
				return false
			}
			n++
		}
	}
	return n == len(offline)
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

// waitState waits until this broker's metadata satisfies ok.
func (s *Server) waitState(ctx context.Context, ok func(*metadata.State) bool) error {
	for {
		ch := s.node.Controller.Changed()
		if ok(s.node.Controller.State()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for a metadata change to reach this broker: %w", ctx.Err())
		}
	}
}

// syncAfterChange brings the topic view in line with a metadata change
// this broker just made (and applied): once the replica manager acts on it,
// so that the partitions this broker now leads are served at once. The
// wait ends with ctx (the request's deadline), the change being made.
func (s *Server) syncAfterChange(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	if err := s.node.WaitCaughtUp(ctx); err != nil {
		s.log.Warn("the replicas have not followed a metadata change yet", "err", err)
	}
	s.syncClusterTopics()
}

// syncedTopic resyncs the topic view after a change of topic name and
// returns the topic in it.
func (s *Server) syncedTopic(ctx context.Context, name string) (*topic, error) {
	s.syncAfterChange(ctx)
	t, ok := s.lookupTopic(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s vanished right after the change", errUnknownTopic, name)
	}
	return t, nil
}

// adminTimeout bounds a metadata change made for a client request.
const adminTimeout = 15 * time.Second

// untimedAdminTimeout bounds an admin request that carries no timeout of
// its own (AlterConfigs, IncrementalAlterConfigs, CreateAcls, DeleteAcls,
// AlterClientQuotas, AlterUserScramCredentials) or a timeout_ms of zero
// or less: its wait for this broker's previous topic change and for the
// metadata quorum. It is below franz-go's read deadline for such a
// request (kgo.RequestTimeoutOverhead, 10 s by default), and so below the
// Java and kafka-python clients' 30 s request.timeout.ms, so that the
// client reads REQUEST_TIMED_OUT (retriable) instead of giving up on the
// connection. Kafka's brokers bound their forwarding of these requests to
// the controller by 60 s, longer than any of those clients waits.
const untimedAdminTimeout = 8 * time.Second

// requestTimeout is how long an admin request with timeout_ms ms may take:
// ms when positive, at most adminTimeout; untimedAdminTimeout otherwise.
func requestTimeout(ms int32) time.Duration {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d <= 0:
		return untimedAdminTimeout
	case d > adminTimeout:
		return adminTimeout
	}
	return d
}

// lockAdmin takes this broker's admin turn (topic creation, deletion and
// reconfiguration, one at a time), or gives up when ctx ends: a request
// queued behind another's commit answers by its own deadline, not by the
// other's. unlockAdmin gives the turn back.
func (s *Server) lockAdmin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for this broker's previous topic change: %w", context.Cause(ctx))
	}
	select {
	case s.adminTurn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for this broker's previous topic change: %w", context.Cause(ctx))
	}
}

func (s *Server) unlockAdmin() { <-s.adminTurn }

// Errors of topic changes, which the handlers map to Kafka codes.
var (
	errTopicExists       = errors.New("topic already exists")
	errUnknownTopic      = errors.New("unknown topic")
	errReplicationFactor = errors.New("invalid replication factor")
	errReplicaAssignment = errors.New("invalid replica assignment")
	errPolicyViolation   = errors.New("policy violation")
)

// clusterAdminError maps metadata errors to the ones the handlers test.
func clusterAdminError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, metadata.ErrTopicExists):
		return fmt.Errorf("%w: %w", errTopicExists, err)
	case errors.Is(err, metadata.ErrUnknownTopicOrPartition):
		return fmt.Errorf("%w: %w", errUnknownTopic, err)
	case errors.Is(err, metadata.ErrInvalidPartitions):
		return fmt.Errorf("%w: %w", errInvalidPartitions, err)
	case errors.Is(err, metadata.ErrInvalidReplicaAssignment):
		return fmt.Errorf("%w: %w", errReplicaAssignment, err)
	case errors.Is(err, metadata.ErrPolicyViolation):
		return fmt.Errorf("%w: %w", errPolicyViolation, err)
	case errors.Is(err, placement.ErrNotEnoughBrokers):
		return fmt.Errorf("%w: %w", errReplicationFactor, err)
	case errors.Is(err, cluster.ErrTopicCollides):
		return fmt.Errorf("%w: %w", errInvalidTopic, err)
	}
	return err
}

// liveBrokerCount counts the brokers that may take replicas now.
func (s *Server) liveBrokerCount() int {
	n := 0
	for _, b := range s.node.Controller.State().Brokers {
		if b.Eligible() {
			n++
		}
	}
	return n
}

// servingLog returns the log of a partition this broker serves to clients
// (those it leads) and its leader epoch, or the error code to answer
// (NOT_LEADER_OR_FOLLOWER, so the client refreshes its metadata). When
// check is set, current is the client's CurrentLeaderEpoch (KIP-320).
func (s *Server) servingLog(p *partition, current int32, check bool) (*storage.Partition, int32, int16) {
	l, ok := s.node.Leader(p.topic, p.index)
	if !ok {
		return nil, 0, kerr.NotLeaderForPartition.Code
	}
	epoch := l.Epoch()
	log := p.log
	if log == nil {
		// Led since the last resync of the topic view.
		if log, ok = s.store.Partition(p.topic, p.index); !ok {
			return nil, 0, kerr.NotLeaderForPartition.Code
		}
	}
	if check {
		if code := leaderEpochErrorCode(current, epoch); code != 0 {
			return nil, 0, code
		}
	}
	return log, epoch, 0
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
	s.offsetsMarkerMu.Lock() // see writeTxnMarker
	defer s.offsetsMarkerMu.Unlock()
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
	}, s.offsetsTxnWrite(log))
}

// ensureOffsetsTopic creates __consumer_offsets the first time a
// coordinator is looked for, as Kafka does: one partition, replicated to
// min(3, live brokers), waiting for the controller within ctx.
func (s *Server) ensureOffsetsTopic(ctx context.Context) error {
	if _, ok := s.lookupTopic(offsetsTopic); ok {
		return nil
	}
	rf := int16(min(3, s.liveBrokerCount()))
	if rf < 1 {
		return errors.New("no live broker")
	}
	_, err := s.createTopicRF(ctx, offsetsTopic, 1, rf, offsetsTopicConfigs())
	if errors.Is(err, errTopicExists) {
		return nil
	}
	if err == nil {
		s.syncCoordinator() // load at once when this broker got the leadership
	}
	return err
}

// coordinatorBroker returns the broker that leads the offsets partition,
// at its endpoint for the named listener. noListener reports a leader that
// has no such listener.
func (s *Server) coordinatorBroker(listener string) (b brokerInfo, ok, noListener bool) {
	st := s.node.Controller.State()
	p, ok := st.Partition(offsetsTopic, 0)
	if !ok || p.Leader == metadata.NoLeader {
		return brokerInfo{}, false, false
	}
	if b, ok = s.brokerByID(st, p.Leader, listener); ok {
		return b, true, false
	}
	return brokerInfo{}, false, s.liveWithoutListener(st, p.Leader, listener)
}

// brokerInfo is a broker as clients see it.
type brokerInfo struct {
	id   int32
	host string
	port int32
	rack string
}

// brokerByID returns a registered, unfenced broker's endpoint for the named
// client listener. Clients are only ever given endpoints of the listener
// they connected on (Kafka's rule): a TLS client is never sent to a
// plaintext port, nor an IAM client to the SCRAM one.
func (s *Server) brokerByID(st *metadata.State, id int32, listener string) (brokerInfo, bool) {
	b, ok := st.Brokers[id]
	if !ok || b.Fenced {
		return brokerInfo{}, false
	}
	for _, l := range b.Listeners {
		if l.Name == listener {
			return brokerInfo{id: id, host: l.Host, port: l.Port, rack: b.Rack}, true
		}
	}
	return brokerInfo{}, false
}

// liveWithoutListener reports an unfenced broker that has no endpoint for
// the named listener (its configuration differs from this broker's).
func (s *Server) liveWithoutListener(st *metadata.State, id int32, listener string) bool {
	b, ok := st.Brokers[id]
	return ok && !b.Fenced && !slices.ContainsFunc(b.Listeners, func(l metadata.Listener) bool { return l.Name == listener })
}

// brokers lists the brokers clients of the named listener may use: every
// unfenced registered broker with an endpoint for it, by id.
func (s *Server) brokers(listener string) []brokerInfo {
	st := s.node.Controller.State()
	var out []brokerInfo
	for _, id := range st.BrokerIDs() {
		if b, ok := s.brokerByID(st, id, listener); ok {
			out = append(out, b)
		}
	}
	return out
}

// controllerEndpoints lists the metadata quorum's voters with their
// controller (Raft) addresses (DescribeCluster with the controller
// endpoint type).
func (s *Server) controllerEndpoints() []brokerInfo {
	st := s.node.Controller.State()
	var out []brokerInfo
	for _, v := range s.node.Controller.Voters() {
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
	if id, ok := s.node.Controller.ActiveController(); ok {
		return id
	}
	return -1
}

// listedControllerID is the controller id to give a client whose broker
// list is brokers: the active controller when the list has it; else, while
// a controller is active, this broker (self) when the list has it; else -1
// (no controller known). The active controller (the Raft leader) can be a
// broker the list leaves out: fenced because its lease ran out while it
// still leads the quorum, restarted and elected before it registered
// again, or without an endpoint for the client's listener (during a roll
// that adds a listener, the first rolled broker is the only one with it).
// A client told about a node that no Metadata lists cannot reach it
// (franz-go fetches Metadata twice, then fails the request with "unknown
// broker"). Naming this broker instead is what a KRaft broker does (its
// Metadata names an alive broker, never the quorum's controller): every
// broker takes admin requests and puts them to the quorum itself.
func listedControllerID(active, self int32, brokers []brokerInfo) int32 {
	listed := func(id int32) bool {
		return slices.ContainsFunc(brokers, func(b brokerInfo) bool { return b.id == id })
	}
	switch {
	case active < 0:
		return -1
	case listed(active):
		return active
	case listed(self):
		return self
	}
	return -1
}

// hasLiveBroker reports a registered, unfenced broker.
func (s *Server) hasLiveBroker(id int32) bool {
	b, ok := s.node.Controller.State().Brokers[id]
	return ok && !b.Fenced
}
