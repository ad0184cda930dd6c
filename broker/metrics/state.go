package metrics

// StateSource reports the broker's partitions and its view of the cluster
// when metrics are read (a Prometheus scrape, a CloudWatch shipment). It
// must be safe to call from any goroutine and should be quick: it runs at
// most once per scrape or shipment.
type StateSource func() BrokerState

// BrokerState is what the broker knows about its partitions and the
// cluster at one moment.
type BrokerState struct {
	// ActiveController is true on the active controller (the Raft leader;
	// a single broker is its own controller). ActiveControllerCount
	// is 1 there and 0 elsewhere, so its Sum over the cluster is 1.
	ActiveController bool
	// GlobalTopicCount, GlobalPartitionCount and OfflinePartitionsCount are
	// the cluster-wide counts. As in Kafka, only the active controller
	// reports them; other brokers report 0 (use the Maximum statistic).
	GlobalTopicCount       int
	GlobalPartitionCount   int
	OfflinePartitionsCount int
	// Partitions are the partition replicas this broker hosts.
	Partitions []PartitionState
	// ReplicationThrottle is the replication throttle (KIP-73) of each
	// side, leader and follower.
	ReplicationThrottle []ThrottleState
	// PendingDeletionSegments and PendingDeletionBytes are the segments
	// out of every log still on disk, waiting for file.delete.delay.ms
	// (storage.Store.PendingDeletion): the data volume counts their bytes
	// as used until they go.
	PendingDeletionSegments int
	PendingDeletionBytes    int64
	// RaftStoreReserveBytes is the space the Raft store keeps allocated
	// on the data volume past its data (raftstore.Store.Reserve): what
	// the metadata log can still take once the volume is full. Reported
	// only when RaftStoreReserveKept (a clustered broker whose store
	// keeps a reserve).
	RaftStoreReserveBytes int64
	RaftStoreReserveKept  bool
	// RaftStoreOnReserve: the volume is full and the metadata log lives
	// on the reserve (raftstore.Store.OnReserve: its last top-up failed).
	// Reported with RaftStoreReserveBytes.
	RaftStoreOnReserve bool
	// RaftStoreLogStopped: the volume is full and the metadata log has
	// used the reserve up to the part kept for Raft's term and vote, so
	// the store takes no entry (raftstore.Store.LogStopped). Reported
	// with RaftStoreReserveBytes.
	RaftStoreLogStopped bool
	// PeerRefusals are the requests of peers (other brokers, by their
	// certificates) refused on the controller and replication listeners
	// for speaking for another node or for the active controller,
	// counted since the start, by listener and reason; PeerUnbound the
	// connections served unbound because their certificate names no node
	// (docs/broker-security.md, finding 9). Every series is listed, zero
	// or not, so that an alarm on its increase sees it from the start.
	PeerRefusals []PeerRefusal
	PeerUnbound  []PeerUnbound
	// Authentications are the outcomes of authentications on every
	// listener that authenticates (TLS client listeners and in-cluster
	// listeners over TLS), counted since the start; AuthenticationFailures
	// the failures by reason. Every series is listed, zero or not.
	Authentications        []Authentication
	AuthenticationFailures []AuthenticationFailure
}

// Authentication is one series of tributary_authentications_total.
type Authentication struct {
	Listener  string // a client listener's name, "controller" or "replication"
	Mechanism string // "TLS", a SASL mechanism, or "unsupported"
	Result    string // "success" or "failure"
	Count     int64
}

// AuthenticationFailure is one series of
// tributary_authentication_failures_total.
type AuthenticationFailure struct {
	Listener, Mechanism string
	Reason              string // one of broker/security/authstats' reasons
	Count               int64
}

// PeerRefusal is one series of tributary_peer_refusals_total.
type PeerRefusal struct {
	Listener string // "controller" or "replication"
	Reason   string // "node_mismatch", "controller_duty" or "raft_rpc"
	Count    int64
}

// PeerUnbound is one series of tributary_peer_unbound_connections_total.
type PeerUnbound struct {
	Listener string // "controller" or "replication"
	Count    int64
}

// ThrottleState is one side of the replication throttle: the measured
// rate of its throttled replicas' bytes and the bound it holds them to
// (Limited false: no bound set).
type ThrottleState struct {
	Side    string // "leader" or "follower"
	Rate    float64
	Bound   float64
	Limited bool
}

// PartitionState is one partition replica hosted on this broker.
type PartitionState struct {
	Topic     string
	Partition int32
	// Leader is true when this broker leads the partition (LeaderCount).
	Leader bool
	// Replicas and InSync count the assigned replicas and the in-sync
	// ones; MinInsync is the topic's min.insync.replicas. The leader
	// reports UnderReplicatedPartitions (InSync < Replicas) and
	// UnderMinIsrPartitionCount (InSync < MinInsync), as in Kafka.
	Replicas  int
	InSync    int
	MinInsync int
}

// stateCounts are the broker-level gauges derived from a BrokerState.
type stateCounts struct {
	partitions, leaders, underReplicated, underMinISR int
}

func (s *BrokerState) counts() stateCounts {
	var c stateCounts
	for _, p := range s.Partitions {
		c.partitions++
		if !p.Leader {
			continue
		}
		c.leaders++
		if p.InSync < p.Replicas {
			c.underReplicated++
		}
		if p.InSync < p.MinInsync {
			c.underMinISR++
		}
	}
	return c
}

// LagSource reports the lag of the consumer groups this broker
// coordinates when metrics are read. broker/metrics/grouplag builds one
// from broker/groups' coordinator with MSK's rules.
type LagSource func() []GroupLag

// GroupLag is one group's lag, per partition, sorted by topic and
// partition.
type GroupLag struct {
	Group      string
	Partitions []PartitionLag
}

// PartitionLag is how far a group's committed offset trails the end of a
// partition (broker/groups.PartitionLag has the same fields).
type PartitionLag struct {
	Topic     string
	Partition int32
	Committed int64
	End       int64 // the partition's high watermark when measured
	Lag       int64 // End - Committed, never negative
}
