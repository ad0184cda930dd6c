package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// UncleanElectionConfig is the topic (or cluster default broker) config that
// allows electing a replica outside the ISR when no ISR member is eligible.
// Off unless set to "true": it can lose acknowledged writes.
const UncleanElectionConfig = "unclean.leader.election.enable"

// MaxProducerIDBlock bounds one AllocateProducerIDs request.
const MaxProducerIDBlock = 1 << 20

// applyCtx is one command's view of the state being built.
type applyCtx struct {
	st      *State
	index   int64
	written map[string]bool // topics already copied for writing by this command
	// decodeOnly stops a handler once its command decoded (CheckDecodes).
	decodeOnly bool
}

type handler func(c *applyCtx, body []byte) (any, error)

// handlers is the dispatch table of the type byte.
var handlers = map[CommandType]handler{
	TypeInitCluster:         decodeAnd(applyInitCluster),
	TypeRegisterBroker:      decodeAnd(applyRegisterBroker),
	TypeBrokerHeartbeat:     decodeAnd(applyBrokerHeartbeat),
	TypeExpireLeases:        decodeAnd(applyExpireLeases),
	TypeControlledShutdown:  decodeAnd(applyControlledShutdown),
	TypeUnregisterBroker:    decodeAnd(applyUnregisterBroker),
	TypeCreateTopic:         decodeAnd(applyCreateTopic),
	TypeDeleteTopic:         decodeAnd(applyDeleteTopic),
	TypeCreatePartitions:    decodeAnd(applyCreatePartitions),
	TypeSetTopicConfigs:     decodeAnd(applySetTopicConfigs),
	TypeSetBrokerConfigs:    decodeAnd(applySetBrokerConfigs),
	TypeAllocateProducerIDs: decodeAnd(applyAllocateProducerIDs),
	TypeAlterPartition:      decodeAnd(applyAlterPartition),
	TypeElectLeaders:        decodeAnd(applyElectLeaders),
	TypeReassignPartitions:  decodeAnd(applyReassignPartitions),
	TypeImportFileMetadata:  decodeAnd(applyImportFileMetadata),
	TypeCreateACLs:          decodeAnd(applyCreateACLs),
	TypeDeleteACLs:          decodeAnd(applyDeleteACLs),
	TypeFenceBroker:         decodeAnd(applyFenceBroker),
	TypeLeaderLogFailed:     decodeAnd(applyLeaderLogFailed),
	TypeReplicaDiskFull:     decodeAnd(applyReplicaDiskFull),
	TypeBrokerDiskWritable:  decodeAnd(applyBrokerDiskWritable),
	// Entries carry it with IgnorableFlag; ApplyEntry finds it without.
	TypeBrokerMetadataVersion: decodeAnd(applyBrokerMetadataVersion),
}

// decodeAnd adapts a typed apply function to the table. A body that does
// not decode exactly (bad JSON, or a field this version does not know,
// written by a newer one) is ErrBadCommand, which halts the state machine:
// applying what we understand of it could build a different state than
// the replicas that understand all of it.
func decodeAnd[C any](fn func(*applyCtx, C) (any, error)) handler {
	return func(c *applyCtx, body []byte) (any, error) {
		var cmd C
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cmd); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: data after the command", ErrBadCommand)
		}
		if c.decodeOnly {
			return nil, nil
		}
		return fn(c, cmd)
	}
}

// CheckDecodes reports, with ErrBadCommand or ErrUnknownCommand, a command
// that this binary's state machine would halt on (ApplyEntry): an empty
// one, an unknown type that is not ignorable, a body that does not decode
// exactly. The active controller checks what it is asked to propose: an
// entry that halts one replica halts every replica of this binary, and the
// whole cluster's metadata with them, for good (a malformed request from a
// peer, or a newer broker's command forwarded to an older controller).
func CheckDecodes(cmd []byte) error {
	if len(cmd) == 0 {
		return fmt.Errorf("%w: empty command", ErrBadCommand)
	}
	typ := CommandType(cmd[0])
	h, ok := handlerOf(typ)
	switch {
	case !ok && typ&IgnorableFlag != 0:
		return nil // skipped by every replica
	case !ok:
		return fmt.Errorf("%w %d", ErrUnknownCommand, typ)
	}
	_, err := h(&applyCtx{decodeOnly: true}, cmd[1:])
	return err
}

// handlerOf finds the handler of a command type, with or without
// IgnorableFlag; ApplyEntry and CheckDecodes both look it up here, so
// that the controller's check and the replicas agree on what is known.
func handlerOf(typ CommandType) (handler, bool) {
	if h, ok := handlers[typ]; ok {
		return h, true
	}
	if typ&IgnorableFlag != 0 {
		h, ok := handlers[typ&^IgnorableFlag]
		return h, ok
	}
	return nil, false
}

func (c *applyCtx) advanceClock(nowMs int64) {
	c.st.NowMs = max(c.st.NowMs, nowMs)
}

// topicForWrite returns a private copy of the topic that this command may
// change; the published State keeps the old one. A partition of the copy
// is changed by storing a new value (a clone) at its index, never through
// the slices it shares with the published one (see Topic.copyForWrite).
func (c *applyCtx) topicForWrite(name string) *Topic {
	t := c.st.Topics[name]
	if c.written[name] {
		return t
	}
	if c.written == nil {
		c.written = map[string]bool{}
	}
	t = t.copyForWrite()
	c.st.Topics[name] = t
	c.written[name] = true
	return t
}

// brokerForWrite returns a private copy of a broker record.
func (c *applyCtx) brokerForWrite(id int32) *Broker {
	b := *c.st.Brokers[id]
	b.Listeners = slices.Clone(b.Listeners)
	c.st.Brokers[id] = &b
	return &b
}

func (c *applyCtx) uncleanAllowed(t *Topic) bool {
	if v, ok := t.Configs[UncleanElectionConfig]; ok {
		return v == "true"
	}
	return c.st.BrokerConfigs[ClusterDefault][UncleanElectionConfig] == "true"
}

// electLeader picks a leader for p other than exclude: the first replica in
// assignment order that is in the ISR and eligible; failing that, when
// unclean election is allowed, the first eligible replica, whose log becomes
// the truth (ISR = just it). NoLeader when there is none.
func (c *applyCtx) electLeader(t *Topic, p Partition, exclude int32) (leader int32, isr []int32) {
	if r, ok := c.inSyncLeader(p, exclude); ok {
		return r, p.ISR
	}
	if c.uncleanAllowed(t) {
		for _, r := range p.Replicas {
			if r != exclude && c.st.EligibleBroker(r) {
				return r, []int32{r}
			}
		}
	}
	return NoLeader, p.ISR
}

// inSyncLeader is the replica that leads p in place of exclude without
// losing an acknowledged record: the first in assignment order that is in
// the ISR and eligible. ok is false when there is none.
func (c *applyCtx) inSyncLeader(p Partition, exclude int32) (leader int32, ok bool) {
	for _, r := range p.Replicas {
		if r != exclude && slices.Contains(p.ISR, r) && c.st.EligibleBroker(r) {
			return r, true
		}
	}
	return NoLeader, false
}

// setLeader changes the leader and bumps the epochs when it changed.
func setLeader(p *Partition, leader int32, isr []int32) {
	if leader != p.Leader {
		p.Leader = leader
		p.LeaderEpoch++
	}
	p.ISR = slices.Clone(isr)
	p.PartitionEpoch++
}

// forEachPartition visits every partition in topic-name and index order;
// fn returns true when it changed the partition (then it is written).
func (c *applyCtx) forEachPartition(fn func(t *Topic, i int32, p Partition) (Partition, bool)) {
	for _, name := range c.st.TopicNames() {
		t := c.st.Topics[name]
		for i, p := range t.Partitions() {
			if np, changed := fn(t, i, p); changed {
				c.topicForWrite(name).setPartition(i, np)
			}
		}
	}
}

// removeFromISRsAndLeaderships takes broker id out of every ISR that has
// another member and moves its leaderships to other ISR members. A partition
// whose only ISR member is id keeps it in the ISR (its log is the only one
// known complete) and is left leaderless (or given to an out-of-sync
// replica where unclean election is allowed), or, when keepIfAlone (a
// controlled shutdown, a full disk: the broker is alive and its log holds
// every acknowledged record), still led by id.
//
// When keepIfAlone only an in-sync replica may take over, whatever
// unclean.leader.election.enable says: unclean election trades the
// records only the ISR had for availability when no ISR member is left,
// and here one is, serving reads and waiting to stop or for space.
// Electing an out-of-sync replica would drop acknowledged records for
// no gain (Kafka's controlled shutdown elects from the ISR only, and a
// full broker's partitions come back when the space does). Below
// CleanHandOverVersion the unclean fallback applies as it did before,
// so that every binary of a rolling upgrade applies the same.
func (c *applyCtx) removeFromISRsAndLeaderships(id int32, keepIfAlone bool) {
	c.forEachPartition(func(t *Topic, _ int32, p Partition) (Partition, bool) {
		if !slices.Contains(p.Replicas, id) {
			return p, false
		}
		np := p.clone()
		changed := false
		if len(np.ISR) > 1 && slices.Contains(np.ISR, id) {
			np.ISR = slices.DeleteFunc(np.ISR, func(r int32) bool { return r == id })
			changed = true
		}
		if np.Leader == id {
			if keepIfAlone && c.st.UsableMetadataVersion() >= CleanHandOverVersion {
				next, ok := c.inSyncLeader(p, id)
				if !ok {
					return p, false // nobody else can take it; keep it, in its ISR
				}
				setLeader(&np, next, np.ISR)
				return np, true
			}
			leader, isr := c.electLeader(t, np, id)
			if leader == NoLeader && keepIfAlone {
				leader = id // nobody else can take it; keep it
			}
			if leader != id {
				setLeader(&np, leader, isr)
				return np, true
			}
		}
		if changed {
			np.PartitionEpoch++
		}
		return np, changed
	})
}

// electWhereLeaderless gives a leader to every leaderless partition that
// can have one now (after a broker came back).
func (c *applyCtx) electWhereLeaderless() {
	c.forEachPartition(func(t *Topic, _ int32, p Partition) (Partition, bool) {
		if p.Leader != NoLeader {
			return p, false
		}
		leader, isr := c.electLeader(t, p, NoLeader)
		if leader == NoLeader {
			return p, false
		}
		np := p.clone()
		setLeader(&np, leader, isr)
		return np, true
	})
}

func (c *applyCtx) fence(id int32) {
	b := c.brokerForWrite(id)
	b.Fenced = true
	c.removeFromISRsAndLeaderships(id, false)
}

func applyInitCluster(c *applyCtx, cmd InitCluster) (any, error) {
	switch {
	case cmd.ClusterID == "":
		return nil, fmt.Errorf("%w: empty cluster id", ErrInvalidRequest)
	case c.st.ClusterID == "":
		c.st.ClusterID = cmd.ClusterID
	case c.st.ClusterID != cmd.ClusterID:
		return nil, fmt.Errorf("%w: cluster is %q, command says %q", ErrClusterIDMismatch, c.st.ClusterID, cmd.ClusterID)
	}
	return nil, nil
}

func applyRegisterBroker(c *applyCtx, cmd RegisterBroker) (any, error) {
	if cmd.NodeID < 0 || cmd.LeaseMs <= 0 {
		return nil, fmt.Errorf("%w: register node %d lease %dms", ErrInvalidRequest, cmd.NodeID, cmd.LeaseMs)
	}
	c.advanceClock(cmd.NowMs)
	if old, ok := c.st.Brokers[cmd.NodeID]; ok && !old.Fenced {
		// The previous incarnation's followers' state and unflushed
		// appends are gone; treat it as failed before the new one joins.
		c.fence(cmd.NodeID)
	}
	c.st.Brokers[cmd.NodeID] = &Broker{
		NodeID:          cmd.NodeID,
		Rack:            cmd.Rack,
		Listeners:       slices.Clone(cmd.Listeners),
		ReplicationAddr: cmd.ReplicationAddr,
		Epoch:           c.index,
		LeaseExpiryMs:   c.st.NowMs + cmd.LeaseMs,
	}
	c.electWhereLeaderless()
	return c.index, nil
}

func (c *applyCtx) checkBrokerEpoch(id int32, epoch int64) error {
	b, ok := c.st.Brokers[id]
	if !ok {
		return fmt.Errorf("%w: %d", ErrUnknownBroker, id)
	}
	if b.Epoch != epoch {
		return fmt.Errorf("%w: broker %d is at epoch %d, request has %d", ErrStaleBrokerEpoch, id, b.Epoch, epoch)
	}
	return nil
}

func applyBrokerHeartbeat(c *applyCtx, cmd BrokerHeartbeat) (any, error) {
	if err := c.checkBrokerEpoch(cmd.NodeID, cmd.BrokerEpoch); err != nil {
		return nil, err
	}
	if cmd.LeaseMs <= 0 {
		return nil, fmt.Errorf("%w: lease %dms", ErrInvalidRequest, cmd.LeaseMs)
	}
	c.advanceClock(cmd.NowMs)
	b := c.brokerForWrite(cmd.NodeID)
	b.LeaseExpiryMs = c.st.NowMs + cmd.LeaseMs
	if b.Fenced {
		b.Fenced = false
		c.electWhereLeaderless()
	}
	return HeartbeatResult{Leaderships: c.st.LeaderCount()[cmd.NodeID]}, nil
}

func applyExpireLeases(c *applyCtx, cmd ExpireLeases) (any, error) {
	c.advanceClock(cmd.NowMs)
	var fenced []int32
	for _, id := range c.st.BrokerIDs() {
		if b := c.st.Brokers[id]; !b.Fenced && b.LeaseExpiryMs < c.st.NowMs {
			c.fence(id)
			fenced = append(fenced, id)
		}
	}
	return fenced, nil
}

func applyFenceBroker(c *applyCtx, cmd FenceBroker) (any, error) {
	b, ok := c.st.Brokers[cmd.NodeID]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownBroker, cmd.NodeID)
	}
	if b.Epoch != cmd.BrokerEpoch || b.Fenced {
		return false, nil // a newer incarnation registered, or fenced already
	}
	c.fence(cmd.NodeID)
	return true, nil
}

func applyControlledShutdown(c *applyCtx, cmd ControlledShutdown) (any, error) {
	if err := c.checkBrokerEpoch(cmd.NodeID, cmd.BrokerEpoch); err != nil {
		return nil, err
	}
	// Mark it leaving first so that electLeader does not hand it anything,
	// but let it keep partitions nobody else can take: refusing writes there
	// helps no one until it actually stops.
	c.brokerForWrite(cmd.NodeID).ShuttingDown = true
	c.removeFromISRsAndLeaderships(cmd.NodeID, true)
	// Count only the leaderships another live replica could still take
	// (once it is back in the ISR): waiting for the others, which no
	// broker can take (a single replica, or every other replica down),
	// would only delay the shutdown.
	left := 0
	c.forEachPartition(func(t *Topic, _ int32, p Partition) (Partition, bool) {
		if p.Leader == cmd.NodeID && slices.ContainsFunc(p.Replicas, func(r int32) bool { return r != cmd.NodeID && c.st.EligibleBroker(r) }) {
			left++
		}
		return p, false
	})
	return left, nil
}

func applyUnregisterBroker(c *applyCtx, cmd UnregisterBroker) (any, error) {
	b, ok := c.st.Brokers[cmd.NodeID]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownBroker, cmd.NodeID)
	}
	if !b.Fenced {
		c.fence(cmd.NodeID)
	}
	delete(c.st.Brokers, cmd.NodeID)
	delete(c.st.BrokerConfigs, cmd.NodeID)
	return nil, nil
}

// newPartitions validates assignments and builds partitions led by their
// first eligible replica, with every eligible replica in the ISR. first is
// the index the first of them takes in its topic, which errors name.
func (c *applyCtx) newPartitions(assignments [][]int32, rf, first int) ([]*Partition, error) {
	out := make([]*Partition, 0, len(assignments))
	for k, replicas := range assignments {
		i := first + k
		if len(replicas) == 0 || (rf > 0 && len(replicas) != rf) {
			return nil, fmt.Errorf("%w: partition %d has %d replicas, want %d", ErrInvalidReplicaAssignment, i, len(replicas), rf)
		}
		var isr []int32
		for j, r := range replicas {
			if _, ok := c.st.Brokers[r]; !ok {
				return nil, fmt.Errorf("%w: partition %d names unknown broker %d", ErrInvalidReplicaAssignment, i, r)
			}
			if slices.Contains(replicas[:j], r) {
				return nil, fmt.Errorf("%w: partition %d names broker %d twice", ErrInvalidReplicaAssignment, i, r)
			}
			if c.st.EligibleBroker(r) {
				isr = append(isr, r)
			}
		}
		if len(isr) == 0 {
			return nil, fmt.Errorf("%w: partition %d has no live replica", ErrInvalidReplicaAssignment, i)
		}
		out = append(out, &Partition{Replicas: slices.Clone(replicas), Leader: isr[0], ISR: isr})
	}
	return out, nil
}

func applyCreateTopic(c *applyCtx, cmd CreateTopic) (any, error) {
	switch {
	case cmd.Name == "":
		return nil, fmt.Errorf("%w: empty topic name", ErrInvalidRequest)
	case cmd.ID == TopicID{}:
		return nil, fmt.Errorf("%w: topic %s without an id", ErrInvalidRequest, cmd.Name)
	case len(cmd.Assignments) == 0:
		return nil, fmt.Errorf("%w: topic %s with no partitions", ErrInvalidPartitions, cmd.Name)
	}
	if t, ok := c.st.Topics[cmd.Name]; ok {
		if t.ID == cmd.ID {
			// The same creation committed twice: a request retried
			// after an unknown outcome, the first try applied
			// already. Its answer is the topic it made.
			return t, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrTopicExists, cmd.Name)
	}
	if _, ok := c.st.TopicByID(cmd.ID); ok {
		return nil, fmt.Errorf("%w: topic id %s already used", ErrInvalidRequest, cmd.ID)
	}
	parts, err := c.newPartitions(cmd.Assignments, len(cmd.Assignments[0]), 0)
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", cmd.Name, err)
	}
	t := &Topic{Name: cmd.Name, ID: cmd.ID, Configs: maps.Clone(cmd.Configs), parts: parts}
	c.st.Topics[cmd.Name] = t
	return t, nil
}

func applyDeleteTopic(c *applyCtx, cmd DeleteTopic) (any, error) {
	t, ok := c.st.Topics[cmd.Name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopicOrPartition, cmd.Name)
	}
	if cmd.ID != (TopicID{}) && t.ID != cmd.ID {
		return nil, fmt.Errorf("%w: %s (id %s; the topic of that name now is another)", ErrUnknownTopicOrPartition, cmd.Name, cmd.ID)
	}
	delete(c.st.Topics, cmd.Name)
	return nil, nil
}

func applyCreatePartitions(c *applyCtx, cmd CreatePartitions) (any, error) {
	t, ok := c.st.Topics[cmd.Name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopicOrPartition, cmd.Name)
	}
	if len(cmd.Assignments) == 0 {
		return nil, fmt.Errorf("%w: no partitions to add to %s", ErrInvalidPartitions, cmd.Name)
	}
	parts, err := c.newPartitions(cmd.Assignments, c.st.NewPartitionsReplicationFactor(t), t.NumPartitions())
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", cmd.Name, err)
	}
	w := c.topicForWrite(cmd.Name)
	w.parts = append(w.parts, parts...)
	return w, nil
}

func applySetTopicConfigs(c *applyCtx, cmd SetTopicConfigs) (any, error) {
	if _, ok := c.st.Topics[cmd.Name]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopicOrPartition, cmd.Name)
	}
	w := c.topicForWrite(cmd.Name)
	w.Configs = maps.Clone(cmd.Configs)
	if len(w.Configs) == 0 {
		w.Configs = nil
	}
	return w, nil
}

func applySetBrokerConfigs(c *applyCtx, cmd SetBrokerConfigs) (any, error) {
	if cmd.NodeID < ClusterDefault {
		return nil, fmt.Errorf("%w: broker %d", ErrInvalidRequest, cmd.NodeID)
	}
	if len(cmd.Configs) == 0 {
		delete(c.st.BrokerConfigs, cmd.NodeID)
	} else {
		c.st.BrokerConfigs[cmd.NodeID] = maps.Clone(cmd.Configs)
	}
	return nil, nil
}

func applyAllocateProducerIDs(c *applyCtx, cmd AllocateProducerIDs) (any, error) {
	if cmd.Count <= 0 || cmd.Count > MaxProducerIDBlock {
		return nil, fmt.Errorf("%w: producer id block of %d", ErrInvalidRequest, cmd.Count)
	}
	first := c.st.NextProducerID
	c.st.NextProducerID += cmd.Count
	return first, nil
}

func applyAlterPartition(c *applyCtx, cmd AlterPartition) (any, error) {
	p, ok := c.st.Partition(cmd.Topic, cmd.Partition)
	if !ok {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownTopicOrPartition, cmd.Topic, cmd.Partition)
	}
	if err := c.checkBrokerEpoch(cmd.LeaderID, cmd.BrokerEpoch); err != nil {
		return nil, err
	}
	switch {
	case cmd.LeaderEpoch < p.LeaderEpoch:
		return nil, fmt.Errorf("%w: %s-%d is at leader epoch %d, request has %d", ErrFencedLeaderEpoch, cmd.Topic, cmd.Partition, p.LeaderEpoch, cmd.LeaderEpoch)
	case cmd.LeaderID != p.Leader || cmd.LeaderEpoch != p.LeaderEpoch:
		return nil, fmt.Errorf("%w: %s-%d is led by %d at epoch %d", ErrNotLeader, cmd.Topic, cmd.Partition, p.Leader, p.LeaderEpoch)
	case cmd.PartitionEpoch != p.PartitionEpoch:
		return nil, fmt.Errorf("%w: %s-%d is at partition epoch %d, request has %d", ErrInvalidUpdateVersion, cmd.Topic, cmd.Partition, p.PartitionEpoch, cmd.PartitionEpoch)
	case !slices.Contains(cmd.NewISR, cmd.LeaderID):
		return nil, fmt.Errorf("%w: new ISR %v leaves out the leader %d", ErrInvalidRequest, cmd.NewISR, cmd.LeaderID)
	}
	for i, r := range cmd.NewISR {
		if !slices.Contains(p.Replicas, r) || slices.Contains(cmd.NewISR[:i], r) {
			return nil, fmt.Errorf("%w: new ISR %v of %s-%d with replicas %v", ErrInvalidRequest, cmd.NewISR, cmd.Topic, cmd.Partition, p.Replicas)
		}
		// A fenced or leaving broker may not join: it would hold up acks=all
		// and could be elected with a log nobody checks (KIP-841).
		if r != cmd.LeaderID && !slices.Contains(p.ISR, r) && !c.st.EligibleBroker(r) {
			return nil, fmt.Errorf("%w: broker %d may not join the ISR of %s-%d", ErrIneligibleReplica, r, cmd.Topic, cmd.Partition)
		}
	}
	np := p.clone()
	// Keep the ISR in assignment order so equal sets encode equally.
	np.ISR = inReplicaOrder(p.Replicas, cmd.NewISR)
	np.PartitionEpoch++
	c.maybeCompleteReassignment(c.st.Topics[cmd.Topic], &np)
	c.topicForWrite(cmd.Topic).setPartition(cmd.Partition, np)
	return np, nil
}

func applyLeaderLogFailed(c *applyCtx, cmd LeaderLogFailed) (any, error) {
	p, ok := c.st.Partition(cmd.Topic, cmd.Partition)
	if !ok {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownTopicOrPartition, cmd.Topic, cmd.Partition)
	}
	if err := c.checkBrokerEpoch(cmd.LeaderID, cmd.BrokerEpoch); err != nil {
		return nil, err
	}
	switch {
	case cmd.LeaderEpoch < p.LeaderEpoch:
		return nil, fmt.Errorf("%w: %s-%d is at leader epoch %d, request has %d", ErrFencedLeaderEpoch, cmd.Topic, cmd.Partition, p.LeaderEpoch, cmd.LeaderEpoch)
	case cmd.LeaderID != p.Leader || cmd.LeaderEpoch != p.LeaderEpoch:
		return nil, fmt.Errorf("%w: %s-%d is led by %d at epoch %d", ErrNotLeader, cmd.Topic, cmd.Partition, p.Leader, p.LeaderEpoch)
	}
	np := p.clone()
	// Only an ISR member may take over: electLeader's unclean fallback is
	// for partitions whose ISR is gone, and this one's leader is alive with
	// every acknowledged record.
	if next, ok := c.inSyncLeader(p, cmd.LeaderID); ok {
		np.Leader = next
		np.ISR = without(p.ISR, []int32{cmd.LeaderID})
	}
	np.LeaderEpoch++
	np.PartitionEpoch++
	c.maybeCompleteReassignment(c.st.Topics[cmd.Topic], &np)
	c.topicForWrite(cmd.Topic).setPartition(cmd.Partition, np)
	return np, nil
}

func applyReplicaDiskFull(c *applyCtx, cmd ReplicaDiskFull) (any, error) {
	p, ok := c.st.Partition(cmd.Topic, cmd.Partition)
	if !ok {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownTopicOrPartition, cmd.Topic, cmd.Partition)
	}
	if err := c.checkBrokerEpoch(cmd.BrokerID, cmd.BrokerEpoch); err != nil {
		return nil, err
	}
	if cmd.LeaderEpoch != p.LeaderEpoch {
		// The reporter acts on a leadership that is gone; what it would
		// change may no longer hold (it may have been elected since).
		return nil, fmt.Errorf("%w: %s-%d is at leader epoch %d, report has %d", ErrFencedLeaderEpoch, cmd.Topic, cmd.Partition, p.LeaderEpoch, cmd.LeaderEpoch)
	}
	if !slices.Contains(p.ISR, cmd.BrokerID) {
		c.markDiskFull(cmd.BrokerID)
		return p, nil
	}
	np := p.clone()
	if cmd.BrokerID == p.Leader {
		next, ok := c.inSyncLeader(p, cmd.BrokerID)
		if !ok {
			return nil, fmt.Errorf("%w: %s-%d: no other in-sync replica can lead in place of %d, whose disk is full", ErrEligibleLeadersNotAvailable, cmd.Topic, cmd.Partition, cmd.BrokerID)
		}
		np.Leader = next
		np.LeaderEpoch++
	}
	np.ISR = without(p.ISR, []int32{cmd.BrokerID})
	np.PartitionEpoch++
	c.maybeCompleteReassignment(c.st.Topics[cmd.Topic], &np)
	c.topicForWrite(cmd.Topic).setPartition(cmd.Partition, np)
	c.markDiskFull(cmd.BrokerID)
	return np, nil
}

// markDiskFull marks a broker whose disk is full and, the first time,
// takes it out of every ISR and hands every partition it leads to another
// eligible ISR member, as Kafka does for every partition of a log
// directory that goes offline (KIP-112): its other partitions' writes
// fail too once what is left of their files' last blocks is used up
// (tmpfs and ext4 allocate by the page or block, so a few small appends
// still fit), and until then each would hold acks=all produces behind a
// follower that backs off after every failed write.
func (c *applyCtx) markDiskFull(id int32) {
	if c.st.Brokers[id].DiskFull {
		return
	}
	c.brokerForWrite(id).DiskFull = true
	c.removeFromISRsAndLeaderships(id, true)
}

func applyBrokerDiskWritable(c *applyCtx, cmd BrokerDiskWritable) (any, error) {
	if err := c.checkBrokerEpoch(cmd.NodeID, cmd.BrokerEpoch); err != nil {
		return nil, err
	}
	if !c.st.Brokers[cmd.NodeID].DiskFull {
		return false, nil
	}
	c.brokerForWrite(cmd.NodeID).DiskFull = false
	return true, nil
}

func inReplicaOrder(replicas, set []int32) []int32 {
	out := make([]int32, 0, len(set))
	for _, r := range replicas {
		if slices.Contains(set, r) {
			out = append(out, r)
		}
	}
	return out
}

func applyElectLeaders(c *applyCtx, cmd ElectLeaders) (any, error) {
	targets := cmd.Partitions
	all := len(targets) == 0
	if all {
		for _, name := range c.st.TopicNames() {
			for i := range c.st.Topics[name].NumPartitions() {
				targets = append(targets, TopicPartition{Topic: name, Partition: int32(i)})
			}
		}
	}
	var results []ElectionResult
	for _, tp := range targets {
		leader, err := c.elect(tp, cmd.Election)
		if all && err != nil {
			continue
		}
		results = append(results, ElectionResult{TopicPartition: tp, Leader: leader, Err: err})
	}
	return results, nil
}

func (c *applyCtx) elect(tp TopicPartition, how ElectionType) (int32, error) {
	p, ok := c.st.Partition(tp.Topic, tp.Partition)
	if !ok {
		return NoLeader, fmt.Errorf("%w: %s-%d", ErrUnknownTopicOrPartition, tp.Topic, tp.Partition)
	}
	t := c.st.Topics[tp.Topic]
	np := p.clone()
	switch how {
	case ElectPreferred:
		preferred := p.Replicas[0]
		if p.Leader == preferred {
			return p.Leader, ErrElectionNotNeeded
		}
		if !slices.Contains(p.ISR, preferred) || !c.st.EligibleBroker(preferred) {
			return p.Leader, ErrPreferredLeaderNotAvailable
		}
		setLeader(&np, preferred, p.ISR)
	case ElectUnclean:
		if p.Leader != NoLeader {
			return p.Leader, ErrElectionNotNeeded
		}
		leader, isr := c.electLeader(t, p, NoLeader)
		if leader == NoLeader {
			// An explicit unclean election overrides the config.
			for _, r := range p.Replicas {
				if c.st.EligibleBroker(r) {
					leader, isr = r, []int32{r}
					break
				}
			}
		}
		if leader == NoLeader {
			return NoLeader, ErrEligibleLeadersNotAvailable
		}
		setLeader(&np, leader, isr)
	default:
		return p.Leader, fmt.Errorf("%w: election type %d", ErrInvalidRequest, how)
	}
	c.topicForWrite(tp.Topic).setPartition(tp.Partition, np)
	return np.Leader, nil
}

func applyReassignPartitions(c *applyCtx, cmd ReassignPartitions) (any, error) {
	errs := make([]error, len(cmd.Reassignments))
	for i, r := range cmd.Reassignments {
		errs[i] = c.reassign(r)
	}
	return errs, nil
}

func (c *applyCtx) reassign(r Reassignment) error {
	p, ok := c.st.Partition(r.Topic, r.Partition)
	if !ok {
		return fmt.Errorf("%w: %s-%d", ErrUnknownTopicOrPartition, r.Topic, r.Partition)
	}
	t := c.st.Topics[r.Topic]
	original := without(p.Replicas, p.AddingReplicas)
	np := p.clone()
	if r.Replicas == nil {
		if p.TargetReplicas == nil {
			return fmt.Errorf("%w: %s-%d", ErrNoReassignmentInProgress, r.Topic, r.Partition)
		}
		isr := without(p.ISR, p.AddingReplicas)
		if len(isr) == 0 {
			return fmt.Errorf("%w: cannot cancel the reassignment of %s-%d: no original replica is in sync", ErrInvalidRequest, r.Topic, r.Partition)
		}
		np.Replicas, np.ISR = original, isr
		np.AddingReplicas, np.RemovingReplicas, np.TargetReplicas = nil, nil, nil
		np.PartitionEpoch++
		if !slices.Contains(np.ISR, np.Leader) {
			leader, isr := c.electLeader(t, np, NoLeader)
			setLeader(&np, leader, isr)
		}
		c.topicForWrite(r.Topic).setPartition(r.Partition, np)
		return nil
	}
	if len(r.Replicas) == 0 {
		return fmt.Errorf("%w: empty replica set for %s-%d", ErrInvalidReplicaAssignment, r.Topic, r.Partition)
	}
	for i, b := range r.Replicas {
		if _, ok := c.st.Brokers[b]; !ok || slices.Contains(r.Replicas[:i], b) {
			return fmt.Errorf("%w: %v for %s-%d", ErrInvalidReplicaAssignment, r.Replicas, r.Topic, r.Partition)
		}
	}
	// The original replicas keep their order (and so the preferred
	// leader) until the move completes; the added ones follow. The target
	// order is kept in TargetReplicas for completion.
	np.AddingReplicas = without(r.Replicas, original)
	np.RemovingReplicas = without(original, r.Replicas)
	np.TargetReplicas = slices.Clone(r.Replicas)
	np.Replicas = append(original, np.AddingReplicas...)
	np.ISR = inReplicaOrder(np.Replicas, np.ISR)
	np.PartitionEpoch++
	c.maybeCompleteReassignment(t, &np)
	c.topicForWrite(r.Topic).setPartition(r.Partition, np)
	return nil
}

// without returns the members of a that are not in b, in a's order.
func without(a, b []int32) []int32 {
	var out []int32
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// maybeCompleteReassignment finishes a reassignment once every added
// replica is in the ISR: the removed replicas leave the replica set and the
// ISR, and leadership moves if the leader was removed. It waits while that
// would leave the ISR empty.
func (c *applyCtx) maybeCompleteReassignment(t *Topic, np *Partition) {
	if np.TargetReplicas == nil {
		return
	}
	for _, b := range np.AddingReplicas {
		if !slices.Contains(np.ISR, b) {
			return
		}
	}
	isr := without(np.ISR, np.RemovingReplicas)
	if len(isr) == 0 {
		return
	}
	np.Replicas = np.TargetReplicas
	np.ISR = inReplicaOrder(np.Replicas, isr)
	np.AddingReplicas, np.RemovingReplicas, np.TargetReplicas = nil, nil, nil
	if !slices.Contains(np.Replicas, np.Leader) {
		leader, isr := c.electLeader(t, *np, NoLeader)
		np.Leader = leader
		np.LeaderEpoch++
		np.ISR = isr
	}
}

func applyImportFileMetadata(c *applyCtx, cmd ImportFileMetadata) (any, error) {
	if cmd.NodeID < 0 || cmd.NextProducerID < 0 {
		return nil, fmt.Errorf("%w: import for node %d, next producer id %d", ErrInvalidRequest, cmd.NodeID, cmd.NextProducerID)
	}
	// Check everything before changing anything: a refused import must
	// leave the state as it was.
	var add []ImportedTopic
	ids := map[TopicID]string{}
	for _, t := range cmd.Topics {
		switch {
		case t.Name == "" || t.ID == (TopicID{}):
			return nil, fmt.Errorf("%w: imported topic %q without a name or id", ErrInvalidRequest, t.Name)
		case len(t.LeaderEpochs) == 0:
			return nil, fmt.Errorf("%w: imported topic %s has no partitions", ErrInvalidPartitions, t.Name)
		case slices.ContainsFunc(t.LeaderEpochs, func(e int32) bool { return e < 0 }):
			return nil, fmt.Errorf("%w: imported topic %s has a negative leader epoch", ErrInvalidRequest, t.Name)
		}
		if other, dup := ids[t.ID]; dup {
			return nil, fmt.Errorf("%w: imported topics %s and %s share id %s", ErrInvalidRequest, other, t.Name, t.ID)
		}
		ids[t.ID] = t.Name
		if cur, ok := c.st.Topics[t.Name]; ok {
			if cur.ID != t.ID {
				return nil, fmt.Errorf("%w: %s exists with id %s, the import has %s", ErrTopicExists, t.Name, cur.ID, t.ID)
			}
			continue // imported before
		}
		if other, ok := c.st.TopicByID(t.ID); ok {
			return nil, fmt.Errorf("%w: imported topic %s has the id of topic %s", ErrInvalidRequest, t.Name, other.Name)
		}
		add = append(add, t)
	}
	for _, node := range slices.Sorted(maps.Keys(cmd.BrokerConfigs)) {
		if node < ClusterDefault {
			return nil, fmt.Errorf("%w: imported configs of broker %d", ErrInvalidRequest, node)
		}
	}

	for _, t := range add {
		nt := &Topic{Name: t.Name, ID: t.ID, Configs: maps.Clone(t.Configs), parts: make([]*Partition, len(t.LeaderEpochs))}
		for i, epoch := range t.LeaderEpochs {
			// Leaderless at the old epoch; a leader, now or when the
			// broker registers, bumps it.
			p := Partition{Replicas: []int32{cmd.NodeID}, Leader: NoLeader, LeaderEpoch: epoch, ISR: []int32{cmd.NodeID}}
			if leader, isr := c.electLeader(nt, p, NoLeader); leader != NoLeader {
				setLeader(&p, leader, isr)
			}
			nt.setPartition(int32(i), p)
		}
		c.st.Topics[t.Name] = nt
	}
	for _, node := range slices.Sorted(maps.Keys(cmd.BrokerConfigs)) {
		if len(c.st.BrokerConfigs[node]) == 0 && len(cmd.BrokerConfigs[node]) > 0 {
			c.st.BrokerConfigs[node] = maps.Clone(cmd.BrokerConfigs[node])
		}
	}
	c.st.NextProducerID = max(c.st.NextProducerID, cmd.NextProducerID)
	return len(add), nil
}
