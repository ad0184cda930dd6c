package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sort"

	"github.com/tributary/tributary/broker/internal/topicid"
)

// NoLeader is the leader id of a partition that has no leader (every ISR
// member is fenced and unclean election is off).
const NoLeader int32 = -1

// ClusterDefault is the BrokerConfigs key of the cluster-wide dynamic broker
// defaults; per-broker overrides use the broker's node id.
const ClusterDefault int32 = -1

// TopicID is Kafka's 16-byte topic id (KIP-516), written as text in
// snapshots and commands.
type TopicID = topicid.ID

// Listener is one advertised client endpoint of a broker.
type Listener struct {
	Name     string `json:"name"`               // listener name, e.g. PLAINTEXT
	Host     string `json:"host"`               // advertised host
	Port     int32  `json:"port"`               // advertised port
	Protocol string `json:"protocol,omitempty"` // security protocol; empty means same as Name
}

// Broker is a registered broker.
type Broker struct {
	NodeID    int32      `json:"node_id"`
	Rack      string     `json:"rack,omitempty"`
	Listeners []Listener `json:"listeners"`
	// ReplicationAddr is host:port where followers fetch from this broker
	// (the inter-broker listener).
	ReplicationAddr string `json:"replication_addr,omitempty"`
	// Epoch is the Raft index of the registration that created this
	// incarnation. Heartbeats and AlterPartition carry it, so a request
	// from a previous incarnation of the broker is refused.
	Epoch int64 `json:"epoch"`
	// LeaseExpiryMs is when the registration lapses unless renewed, in
	// the Raft leader's clock (Unix ms) as carried by commands.
	LeaseExpiryMs int64 `json:"lease_expiry_ms"`
	// Fenced brokers lead nothing and are in no ISR (unless they were the
	// last member; see ExpireLeases). A heartbeat unfences.
	Fenced bool `json:"fenced"`
	// ShuttingDown is set by a controlled shutdown: the broker is leaving,
	// so it is given no new leaderships.
	ShuttingDown bool `json:"shutting_down,omitempty"`
	// DiskFull is set when the broker reported that it cannot write a
	// log for lack of space (ReplicaDiskFull) and cleared when it reports
	// its disk writable again (BrokerDiskWritable) or registers anew.
	// Meanwhile it is given no leadership and joins no ISR: caught up
	// with a leader that has nothing new, it would rejoin at once and be
	// made leader again by the preferred-leader rebalance, only to refuse
	// the next append (Kafka keeps such a log directory offline until the
	// broker restarts).
	DiskFull bool `json:"disk_full,omitempty"`
	// MetadataVersion is the highest metadata version the incarnation's
	// binary applies (BrokerMetadataVersion); 0 (a registration not yet
	// followed by one, or a snapshot of an older version) means
	// MetadataVersionBaseline (SupportedMetadataVersion).
	MetadataVersion MetadataVersion `json:"metadata_version,omitempty"`
}

// Eligible reports whether the broker may lead or be in an ISR.
func (b *Broker) Eligible() bool { return !b.Fenced && !b.ShuttingDown && !b.DiskFull }

// Partition is one partition's replication state.
type Partition struct {
	Replicas    []int32 `json:"replicas"` // assignment order; the first is the preferred leader
	Leader      int32   `json:"leader"`   // NoLeader when none
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
	// PartitionEpoch changes on every change of this partition's state
	// (leader, ISR, replicas); AlterPartition must name the current one.
	PartitionEpoch int32 `json:"partition_epoch"`
	// AddingReplicas, RemovingReplicas and TargetReplicas describe a
	// running reassignment: Replicas is the original set followed by the
	// adding ones until every adding replica is in the ISR; then Replicas
	// becomes TargetReplicas.
	AddingReplicas   []int32 `json:"adding_replicas,omitempty"`
	RemovingReplicas []int32 `json:"removing_replicas,omitempty"`
	TargetReplicas   []int32 `json:"target_replicas,omitempty"`
}

// Clone returns a deep copy, safe to modify.
func (p Partition) Clone() Partition { return p.clone() }

func (p Partition) clone() Partition {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	p.AddingReplicas = slices.Clone(p.AddingReplicas)
	p.RemovingReplicas = slices.Clone(p.RemovingReplicas)
	p.TargetReplicas = slices.Clone(p.TargetReplicas)
	return p
}

// Topic is one topic's metadata. Its partitions are reached through
// NumPartitions, Partition and Partitions, which hand out values: a reader
// cannot get a pointer into a published state, so it cannot change one
// (the slices inside a Partition are still shared and read-only).
type Topic struct {
	Name    string            `json:"name"`
	ID      TopicID           `json:"id"`
	Configs map[string]string `json:"configs,omitempty"` // explicit overrides only
	// parts holds one pointer per partition so that a command copies 8
	// bytes a partition, not the partitions: an ISR change of one
	// partition of a 5,000-partition topic copied the whole 680 KB list
	// on every broker, once per partition while a broker rejoined. A
	// *Partition reachable from a published State is never written:
	// a command stores a fresh clone (setPartition). It is unexported so
	// that nothing outside this package can write through one.
	parts []*Partition
}

// NewTopic returns a topic with the given partitions (copied: the caller
// keeps its slice), for tests and tools that build a State by hand.
func NewTopic(name string, id TopicID, configs map[string]string, partitions ...Partition) *Topic {
	t := &Topic{Name: name, ID: id, Configs: configs, parts: make([]*Partition, len(partitions))}
	for i := range partitions {
		p := partitions[i]
		t.parts[i] = &p
	}
	return t
}

// NumPartitions returns the topic's partition count.
func (t *Topic) NumPartitions() int { return len(t.parts) }

// Partition returns partition i, which must be in [0, NumPartitions()).
func (t *Topic) Partition(i int32) Partition { return *t.parts[i] }

// ReplicationFactor is the topic's replication factor, taken from
// partition 0: its replica count or, while it is being reassigned, its
// target's (Replicas then holds the original replicas followed by the
// added ones until the move completes). 0 for a topic without
// partitions.
func (t *Topic) ReplicationFactor() int {
	if len(t.parts) == 0 {
		return 0
	}
	if p := t.parts[0]; p.TargetReplicas != nil {
		return len(p.TargetReplicas)
	}
	return len(t.parts[0].Replicas)
}

// Partitions yields the partitions in index order.
func (t *Topic) Partitions() iter.Seq2[int32, Partition] {
	return func(yield func(int32, Partition) bool) {
		for i, p := range t.parts {
			if !yield(int32(i), *p) {
				return
			}
		}
	}
}

// WithPartition returns a copy of the topic with partition i (which must be
// in [0, NumPartitions())) replaced by p; t is left as it was.
func (t *Topic) WithPartition(i int32, p Partition) *Topic {
	w := t.copyForWrite()
	w.setPartition(i, p)
	return w
}

// setPartition stores p as partition i of a topic being written by a
// command (one from copyForWrite or a new one), never of a published one.
func (t *Topic) setPartition(i int32, p Partition) { t.parts[i] = &p }

// topicJSON is a Topic's encoding in snapshots and command results: the
// partitions as a list of objects, as when they were an exported []Partition.
type topicJSON struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []*Partition      `json:"partitions"`
}

// MarshalJSON encodes the topic with its partitions.
func (t *Topic) MarshalJSON() ([]byte, error) {
	return json.Marshal(topicJSON{Name: t.Name, ID: t.ID, Configs: t.Configs, Partitions: t.parts})
}

// UnmarshalJSON decodes what MarshalJSON wrote (and what the exported
// []Partition field wrote before it). A field it does not know is an
// error, in a topic or one of its partitions: a newer version wrote it,
// and a snapshot's decoder refuses what it cannot represent
// (UnmarshalState), which its DisallowUnknownFields no longer reaches past
// this method.
func (t *Topic) UnmarshalJSON(b []byte) error {
	var j topicJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	for i, p := range j.Partitions {
		if p == nil {
			return fmt.Errorf("topic %s: partition %d is null", j.Name, i)
		}
	}
	*t = Topic{Name: j.Name, ID: j.ID, Configs: j.Configs, parts: j.Partitions}
	return nil
}

// copyForWrite returns a copy of the topic that one command may change: a
// new list of pointers to t's partitions. That is safe because a published
// State is never changed: a command changes a partition only by storing a
// new one (its own clone) in the copy, never by writing through a pointer
// or a slice of one.
func (t *Topic) copyForWrite() *Topic {
	return &Topic{Name: t.Name, ID: t.ID, Configs: maps.Clone(t.Configs), parts: slices.Clone(t.parts)}
}

// State is the whole cluster metadata at one Raft index. A State is never
// changed after it is published: callers must treat every field, slice and
// map they reach through it as read-only.
type State struct {
	// ClusterID is set once, by the first InitCluster command.
	ClusterID string `json:"cluster_id"`
	// Index is the Raft index of the last applied command.
	Index int64 `json:"index"`
	// NowMs is the newest leader time seen in a command; it never goes
	// backwards, so a leader with a slow clock cannot un-expire a lease.
	NowMs   int64             `json:"now_ms"`
	Brokers map[int32]*Broker `json:"brokers"`
	Topics  map[string]*Topic `json:"topics"`
	// BrokerConfigs holds dynamic broker configs: ClusterDefault for the
	// cluster-wide defaults, a node id for one broker's overrides.
	BrokerConfigs map[int32]map[string]string `json:"broker_configs,omitempty"`
	// NextProducerID is the first producer id not yet handed out.
	NextProducerID int64 `json:"next_producer_id"`
	// ACLs are the cluster's Kafka ACLs.
	ACLs ACLSet `json:"acls,omitzero"`
	// Scram holds the SCRAM credentials (scram.go).
	Scram ScramCredentials `json:"scram,omitempty"`
	// ClientQuotas are the client quotas (quotas.go).
	ClientQuotas ClientQuotas `json:"client_quotas,omitempty"`
}

// Empty returns the state of a new cluster.
func Empty() *State {
	return &State{Brokers: map[int32]*Broker{}, Topics: map[string]*Topic{}, BrokerConfigs: map[int32]map[string]string{}}
}

// shallowCopy copies the top-level maps; the values are shared and must be
// replaced, not mutated, by the caller.
func (s *State) shallowCopy() *State {
	c := *s
	c.Brokers = maps.Clone(s.Brokers)
	c.Topics = maps.Clone(s.Topics)
	c.BrokerConfigs = maps.Clone(s.BrokerConfigs)
	if c.Brokers == nil {
		c.Brokers = map[int32]*Broker{}
	}
	if c.Topics == nil {
		c.Topics = map[string]*Topic{}
	}
	if c.BrokerConfigs == nil {
		c.BrokerConfigs = map[int32]map[string]string{}
	}
	return &c
}

// Topic returns a topic by name.
func (s *State) Topic(name string) (*Topic, bool) {
	t, ok := s.Topics[name]
	return t, ok
}

// TopicByID returns the topic with the given id.
func (s *State) TopicByID(id TopicID) (*Topic, bool) {
	for _, name := range s.TopicNames() {
		if t := s.Topics[name]; t.ID == id {
			return t, true
		}
	}
	return nil, false
}

// TopicNames returns the topic names, sorted.
func (s *State) TopicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for name := range s.Topics {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// BrokerIDs returns the registered broker ids, sorted.
func (s *State) BrokerIDs() []int32 {
	ids := make([]int32, 0, len(s.Brokers))
	for id := range s.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Partition returns one partition.
func (s *State) Partition(topic string, partition int32) (Partition, bool) {
	t, ok := s.Topics[topic]
	if !ok || partition < 0 || int(partition) >= len(t.parts) {
		return Partition{}, false
	}
	return *t.parts[partition], true
}

// EligibleBroker reports whether id is registered, unfenced and not
// shutting down.
func (s *State) EligibleBroker(id int32) bool {
	b, ok := s.Brokers[id]
	return ok && b.Eligible()
}

// LeaderCount counts the partitions each broker leads.
func (s *State) LeaderCount() map[int32]int {
	n := map[int32]int{}
	for _, t := range s.Topics {
		for _, p := range t.parts {
			if p.Leader != NoLeader {
				n[p.Leader]++
			}
		}
	}
	return n
}

// OnlyLeasesDiffer reports whether s and o differ at most in the brokers'
// leases (and the applied index and clock): the same topics (the same
// *Topic values: a command copies a topic before it changes it), the same
// brokers otherwise, the same dynamic broker configs, cluster id,
// producer-id counter, ACLs (the same snapshot), SCRAM credentials and client quotas. Heartbeats, most of
// the metadata log, change only leases; whoever follows partition roles,
// configs and the topic view has nothing to redo for them.
func (s *State) OnlyLeasesDiffer(o *State) bool {
	return s.differOnlyIn(o, func(t, ot *Topic) bool { return t == ot })
}

// OnlyPartitionStatesDiffer reports whether s and o differ at most in the
// brokers' leases and in the leaders, leader epochs, ISRs and replicas of
// partitions: the same topics by name and id with the same configs and
// partition counts, and everything OnlyLeasesDiffer compares besides. A
// partition's changes show in its PartitionEpoch. Most metadata changes of
// a cluster with many partitions are of this kind (an ISR change, a
// leader election), and whoever follows the partitions' roles then has only
// the partitions that changed to look at.
func (s *State) OnlyPartitionStatesDiffer(o *State) bool {
	return s.differOnlyIn(o, func(t, ot *Topic) bool {
		return t == ot || (t.ID == ot.ID && len(t.parts) == len(ot.parts) && maps.Equal(t.Configs, ot.Configs))
	})
}

// differOnlyIn is OnlyLeasesDiffer with sameTopic deciding whether a topic
// of s counts as the same as o's of the same name.
func (s *State) differOnlyIn(o *State, sameTopic func(t, ot *Topic) bool) bool {
	if s.ClusterID != o.ClusterID || s.NextProducerID != o.NextProducerID || len(s.BrokerConfigs) != len(o.BrokerConfigs) || s.ACLs != o.ACLs || !sameScram(s.Scram, o.Scram) || !sameClientQuotas(s.ClientQuotas, o.ClientQuotas) {
		return false
	}
	for id, c := range s.BrokerConfigs {
		if oc, ok := o.BrokerConfigs[id]; !ok || !maps.Equal(c, oc) {
			return false
		}
	}
	if len(s.Topics) != len(o.Topics) || len(s.Brokers) != len(o.Brokers) {
		return false
	}
	for name, t := range s.Topics {
		if ot, ok := o.Topics[name]; !ok || !sameTopic(t, ot) {
			return false
		}
	}
	for id, b := range s.Brokers {
		ob, ok := o.Brokers[id]
		if !ok {
			return false
		}
		if ob == b {
			continue
		}
		if b.Rack != ob.Rack || b.ReplicationAddr != ob.ReplicationAddr || b.Epoch != ob.Epoch ||
			b.Fenced != ob.Fenced || b.ShuttingDown != ob.ShuttingDown || b.DiskFull != ob.DiskFull || b.MetadataVersion != ob.MetadataVersion || !slices.Equal(b.Listeners, ob.Listeners) {
			return false
		}
	}
	return true
}
