package metadata

import (
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
}

// Eligible reports whether the broker may lead or be in an ISR.
func (b *Broker) Eligible() bool { return !b.Fenced && !b.ShuttingDown }

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

// Topic is one topic's metadata.
type Topic struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"` // explicit overrides only
	Partitions []Partition       `json:"partitions"`
}

// copyForWrite returns a copy of the topic that one command may change: a
// new Partitions slice whose elements share their Replicas, ISR and
// reassignment slices with t's. That is safe because a published State is
// never changed: a command changes a partition only by storing a new
// element (its own clone) in the copy, never by writing through the slices
// of one. A deep copy cost an ISR change of one partition of a
// 5,000-partition topic 10,000 allocations (each partition's replicas and
// ISR) on every broker, and a broker rejoining such a cluster makes one
// ISR change per partition; this copies 5,000 small structs at once.
func (t *Topic) copyForWrite() *Topic {
	return &Topic{Name: t.Name, ID: t.ID, Configs: maps.Clone(t.Configs), Partitions: slices.Clone(t.Partitions)}
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
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return Partition{}, false
	}
	return t.Partitions[partition], true
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
		for _, p := range t.Partitions {
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
		return t == ot || (t.ID == ot.ID && len(t.Partitions) == len(ot.Partitions) && maps.Equal(t.Configs, ot.Configs))
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
			b.Fenced != ob.Fenced || b.ShuttingDown != ob.ShuttingDown || !slices.Equal(b.Listeners, ob.Listeners) {
			return false
		}
	}
	return true
}
