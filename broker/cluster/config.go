package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// Voter is one member of the Raft metadata quorum, as written in
// controller.quorum.voters: id@host:port.
type Voter struct {
	ID   int32
	Addr string // host:port of its controller (Raft) port
}

// ParseVoters reads controller.quorum.voters ("1@10.0.1.5:9095,2@...").
// Ids and addresses must be unique.
func ParseVoters(s string) ([]Voter, error) {
	var out []Voter
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		idStr, addr, ok := strings.Cut(item, "@")
		if !ok {
			return nil, fmt.Errorf("controller.quorum.voters: %q is not id@host:port", item)
		}
		id, err := strconv.ParseInt(idStr, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("controller.quorum.voters: bad node id in %q", item)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("controller.quorum.voters: bad address in %q: %w", item, err)
		}
		for _, v := range out {
			if v.ID == int32(id) || v.Addr == addr {
				return nil, fmt.Errorf("controller.quorum.voters: %q repeats a node id or address", item)
			}
		}
		out = append(out, Voter{ID: int32(id), Addr: addr})
	}
	if len(out) == 0 {
		return nil, errors.New("controller.quorum.voters is empty")
	}
	return out, nil
}

// Config configures a node's controller: its Raft membership and its
// broker registration.
type Config struct {
	NodeID int32
	Rack   string
	// Voters is the seed list. A node in it is a voter and bootstraps the
	// Raft cluster with the whole list on first start; any other node
	// joins as a non-voter and follows the metadata log. Empty: this node
	// is the only voter, at its advertised address (a cluster of one).
	Voters []Voter
	// Bind is where this node's controller port listens (host:port;
	// port 0 picks one). Advertise is the address the others dial; for
	// a voter it must equal its entry in Voters. Defaults to the bound
	// address.
	Bind      string
	Advertise string
	// Listener, when set, is used instead of listening on Bind (tests
	// open it first to learn the port for the voter list).
	Listener net.Listener
	// TLS, when set, runs the controller port over TLS: Raft and the
	// controller requests between nodes, each node presenting its broker
	// certificate and checking the other's (controller.listener.names
	// naming an SSL listener). Every node of a cluster must agree.
	TLS PeerTLS
	// Dir holds the Raft log (raft.db) and snapshots.
	Dir string
	// ClusterID is written into the metadata by the first leader; empty
	// picks a random one (a later start of the same cluster keeps the one
	// in the metadata).
	ClusterID string

	// Registration data published to clients and followers.
	Listeners       []metadata.Listener
	ReplicationAddr string

	// HeartbeatInterval is how often the broker renews its lease
	// (broker.heartbeat.interval.ms); Lease is how long a lease lasts
	// (broker.session.timeout.ms). A broker that misses its lease is
	// fenced and its leaderships move.
	HeartbeatInterval time.Duration
	Lease             time.Duration
	// RebalanceInterval is how often the active controller moves
	// leadership back to preferred leaders (0 disables).
	RebalanceInterval time.Duration

	// MaxBrokerPartitions is max.broker.partitions as this broker was
	// started with it: the partition replicas the active controller lets
	// a client's CreateTopics, CreatePartitions or reassignment put on
	// one broker (0: no limit) until a cluster-wide dynamic value is set
	// (BrokerPartitionLimit).
	MaxBrokerPartitions int

	// Raft timings (controller.quorum.fetch.timeout.ms and
	// controller.quorum.election.timeout.ms); zero picks the defaults
	// below. RaftLeaderLease, when zero, is the smaller of hashicorp/raft's
	// 500 ms and four fifths of RaftHeartbeatTimeout (Raft requires it to
	// be no longer; being shorter lets a voter that finds the active
	// controller's process gone start an election after the lease rather
	// than the whole timeout, see hastenElection).
	RaftHeartbeatTimeout time.Duration
	RaftElectionTimeout  time.Duration
	RaftLeaderLease      time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot and
	// log compaction, which bounds the log on disk; SnapshotInterval is how
	// often Raft checks (zero: hashicorp/raft's 120 s).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// MetadataLogReserve is how many bytes the Raft store keeps allocated
	// on its disk past its data, so that a volume the partitions filled
	// does not stop the metadata log (raftstore.Options.Reserve); zero is
	// DefaultMetadataLogReserve, a negative value none.
	MetadataLogReserve int64

	Logger *slog.Logger

	// wrapLogStore, when set, stands between Raft and its log store:
	// tests use it to stall a node's disk.
	wrapLogStore func(raft.LogStore) raft.LogStore
	// wrapFSM, when set, stands between Raft and the metadata state
	// machine: tests use it to hold a node's applying of entries.
	wrapFSM func(raft.FSM) raft.FSM
}

// Defaults, chosen so that a killed broker's partitions fail over in
// under 3 s on a LAN (its lease ends at most 1.5 s after its last renewal),
// and a killed active controller is replaced within about a second, while a
// broker still survives a stall of over a second and a Raft leader a
// 500 ms pause. The broker's settings table (broker/config) carries the same
// values; TestBrokerDefaultsMatch keeps them equal.
const (
	DefaultHeartbeatInterval    = 300 * time.Millisecond
	DefaultLease                = 1500 * time.Millisecond
	DefaultRaftHeartbeatTimeout = 500 * time.Millisecond
	DefaultRaftElectionTimeout  = 500 * time.Millisecond
	DefaultRebalanceInterval    = 10 * time.Second
	DefaultSnapshotThreshold    = 2048
	// DefaultMetadataLogReserve: 16 MiB, against a Raft store of a few
	// MiB (2,048 trailing entries and the pages bbolt keeps free): room
	// for thousands of metadata entries while the volume stays full and
	// no snapshot can be written to compact them.
	DefaultMetadataLogReserve = 16 << 20
)

// raftDefaultLeaderLease is hashicorp/raft's default LeaderLeaseTimeout.
const raftDefaultLeaderLease = 500 * time.Millisecond

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if 2*cfg.HeartbeatInterval >= cfg.Lease {
		return cfg, fmt.Errorf("heartbeat interval %v must be less than half the lease %v (broker.heartbeat.interval.ms, broker.session.timeout.ms), so that a lease survives a missed heartbeat", cfg.HeartbeatInterval, cfg.Lease)
	}
	if cfg.RaftHeartbeatTimeout <= 0 {
		cfg.RaftHeartbeatTimeout = DefaultRaftHeartbeatTimeout
	}
	if cfg.RaftElectionTimeout <= 0 {
		cfg.RaftElectionTimeout = DefaultRaftElectionTimeout
	}
	if cfg.RaftLeaderLease <= 0 {
		cfg.RaftLeaderLease = min(raftDefaultLeaderLease, cfg.RaftHeartbeatTimeout*4/5)
	}
	if cfg.RaftLeaderLease > cfg.RaftHeartbeatTimeout {
		return cfg, fmt.Errorf("raft leader lease %v must not exceed the raft heartbeat timeout %v (controller.quorum.fetch.timeout.ms)", cfg.RaftLeaderLease, cfg.RaftHeartbeatTimeout)
	}
	if cfg.RebalanceInterval < 0 {
		cfg.RebalanceInterval = 0
	} else if cfg.RebalanceInterval == 0 {
		cfg.RebalanceInterval = DefaultRebalanceInterval
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if cfg.MetadataLogReserve == 0 {
		cfg.MetadataLogReserve = DefaultMetadataLogReserve
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = NewClusterID()
	}
	if cfg.Dir == "" {
		return cfg, errors.New("no controller directory configured")
	}
	if cfg.Bind == "" && cfg.Listener == nil {
		return cfg, errors.New("no controller bind address configured")
	}
	return cfg, nil
}

func (c *Config) isVoter() bool {
	return slices.ContainsFunc(c.Voters, func(v Voter) bool { return v.ID == c.NodeID })
}

// NewClusterID makes a Kafka-style cluster id: 16 random bytes in URL-safe
// base64 without padding (22 characters).
func NewClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
