package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// CommandType is the first byte of every Raft log entry of the metadata log.
type CommandType uint8

// IgnorableFlag marks a command type that older versions may skip: a newer
// controller sets it on commands whose only effect is advisory, so a replica
// that does not know the type stays correct by ignoring it. Without the flag
// an unknown type halts the state machine.
const IgnorableFlag CommandType = 0x80

// Command types. The numbers are stored in the Raft log: never renumber.
const (
	TypeInitCluster         CommandType = 1
	TypeRegisterBroker      CommandType = 2
	TypeBrokerHeartbeat     CommandType = 3
	TypeExpireLeases        CommandType = 4
	TypeControlledShutdown  CommandType = 5
	TypeUnregisterBroker    CommandType = 6
	TypeCreateTopic         CommandType = 7
	TypeDeleteTopic         CommandType = 8
	TypeCreatePartitions    CommandType = 9
	TypeSetTopicConfigs     CommandType = 10
	TypeSetBrokerConfigs    CommandType = 11
	TypeAllocateProducerIDs CommandType = 12
	TypeAlterPartition      CommandType = 13
	TypeElectLeaders        CommandType = 14
	TypeReassignPartitions  CommandType = 15
	TypeImportFileMetadata  CommandType = 16
	TypeCreateACLs          CommandType = 17
	TypeDeleteACLs          CommandType = 18
	TypeFenceBroker         CommandType = 19
	TypeLeaderLogFailed     CommandType = 20
	TypeReplicaDiskFull     CommandType = 21
	TypeBrokerDiskWritable  CommandType = 22
	// TypeBrokerMetadataVersion is always written with IgnorableFlag
	// (BrokerMetadataVersion.Type): older versions skip it.
	TypeBrokerMetadataVersion CommandType = 23
)

// Errors returned in Result.Err; the server maps them to Kafka error codes.
var (
	ErrHalted                      = errors.New("metadata state machine halted on an entry it cannot apply")
	ErrUnknownCommand              = errors.New("unknown metadata command type")
	ErrBadCommand                  = errors.New("malformed metadata command")
	ErrClusterIDMismatch           = errors.New("cluster id mismatch")
	ErrUnknownBroker               = errors.New("unknown broker")
	ErrStaleBrokerEpoch            = errors.New("stale broker epoch")             // STALE_BROKER_EPOCH
	ErrTopicExists                 = errors.New("topic already exists")           // TOPIC_ALREADY_EXISTS
	ErrUnknownTopicOrPartition     = errors.New("unknown topic or partition")     // UNKNOWN_TOPIC_OR_PARTITION
	ErrInvalidReplicaAssignment    = errors.New("invalid replica assignment")     // INVALID_REPLICA_ASSIGNMENT
	ErrInvalidPartitions           = errors.New("invalid partition count")        // INVALID_PARTITIONS
	ErrInvalidRequest              = errors.New("invalid request")                // INVALID_REQUEST
	ErrNotLeader                   = errors.New("not the partition leader")       // NOT_LEADER_OR_FOLLOWER
	ErrFencedLeaderEpoch           = errors.New("fenced leader epoch")            // FENCED_LEADER_EPOCH
	ErrInvalidUpdateVersion        = errors.New("stale partition epoch")          // INVALID_UPDATE_VERSION
	ErrIneligibleReplica           = errors.New("ineligible replica")             // INELIGIBLE_REPLICA
	ErrElectionNotNeeded           = errors.New("election not needed")            // ELECTION_NOT_NEEDED
	ErrPreferredLeaderNotAvailable = errors.New("preferred leader not available") // PREFERRED_LEADER_NOT_AVAILABLE
	ErrEligibleLeadersNotAvailable = errors.New("eligible leaders not available") // ELIGIBLE_LEADERS_NOT_AVAILABLE
	ErrNoReassignmentInProgress    = errors.New("no reassignment in progress")    // NO_REASSIGNMENT_IN_PROGRESS
	ErrPolicyViolation             = errors.New("policy violation")               // POLICY_VIOLATION
)

// Command is a metadata change, proposed through the Raft leader.
type Command interface {
	Type() CommandType
}

// Encode turns a command into a Raft log entry: the type byte then JSON.
// encoding/json writes struct fields in declaration order and map keys
// sorted, so equal commands encode to equal bytes.
func Encode(c Command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding metadata command %d: %w", c.Type(), err)
	}
	return append([]byte{byte(c.Type())}, body...), nil
}

// InitCluster fixes the cluster id. A second InitCluster with the same id
// is a no-op; with another id it fails.
type InitCluster struct {
	ClusterID string `json:"cluster_id"`
}

// RegisterBroker starts a broker incarnation. It fences the previous
// incarnation first (its in-memory replication state is gone), then
// registers the broker unfenced with a lease until NowMs+LeaseMs. The
// result is the new broker epoch (int64).
type RegisterBroker struct {
	NodeID          int32      `json:"node_id"`
	Rack            string     `json:"rack,omitempty"`
	Listeners       []Listener `json:"listeners"`
	ReplicationAddr string     `json:"replication_addr,omitempty"`
	NowMs           int64      `json:"now_ms"`
	LeaseMs         int64      `json:"lease_ms"`
}

// BrokerHeartbeat renews a broker's lease, and unfences it if a missed
// lease had fenced it. The result is a HeartbeatResult. The active
// controller now keeps renewals in memory and proposes this command only
// to unfence a broker; it is also what a broker sends to an active
// controller of an older version, and what older logs hold for every
// renewal.
type BrokerHeartbeat struct {
	NodeID      int32 `json:"node_id"`
	BrokerEpoch int64 `json:"broker_epoch"`
	NowMs       int64 `json:"now_ms"`
	LeaseMs     int64 `json:"lease_ms"`
}

// HeartbeatResult answers a BrokerHeartbeat.
type HeartbeatResult struct {
	// Leaderships is how many partitions the broker leads now.
	Leaderships int `json:"leaderships"`
}

// ExpireLeases fences every unfenced broker whose lease ended before NowMs
// and moves its leaderships. The result is the fenced ids ([]int32, sorted).
// Older versions' active controllers proposed it; this one fences a lapsed
// lease with FenceBroker (the leases it reads are in its memory), and
// applies ExpireLeases only from older logs.
type ExpireLeases struct {
	NowMs int64 `json:"now_ms"`
}

// FenceBroker fences one broker incarnation before its lease ends: the
// active controller found that nothing listens on its replication port
// any more (the process is gone), so waiting out its lease would only
// keep its partitions leaderless. A broker that is in fact alive is
// unfenced by its next heartbeat, as after a lapsed lease. The result is
// whether it was fenced now (bool): false when it already was, or the
// incarnation is not the current one.
type FenceBroker struct {
	NodeID      int32 `json:"node_id"`
	BrokerEpoch int64 `json:"broker_epoch"`
}

// ControlledShutdown marks a broker as leaving, moves each of its
// leaderships to another ISR member and takes it out of ISRs that have
// another member. The result is the number of partitions it still leads
// that another eligible replica could take once in sync (int): the broker
// repeats the request until that is 0 or it gives up. Partitions no other
// broker can take (one replica, or every other replica down) stay led by it
// and are not counted.
type ControlledShutdown struct {
	NodeID      int32 `json:"node_id"`
	BrokerEpoch int64 `json:"broker_epoch"`
}

// UnregisterBroker fences and forgets a broker (it is being removed from
// the cluster for good).
type UnregisterBroker struct {
	NodeID int32 `json:"node_id"`
}

// CreateTopic creates a topic with the given replica assignment per
// partition (computed by the proposer with package placement). The result
// is the *Topic.
type CreateTopic struct {
	Name        string            `json:"name"`
	ID          TopicID           `json:"id"`
	Configs     map[string]string `json:"configs,omitempty"`
	Assignments [][]int32         `json:"assignments"`
}

// DeleteTopic removes a topic.
type DeleteTopic struct {
	Name string `json:"name"`
	// ID, when set, is the id of the topic to delete: another topic of
	// the name (the one asked for deleted, the name reused) is not.
	ID TopicID `json:"id,omitzero"`
}

// CreatePartitions appends partitions with the given assignments. The
// result is the *Topic.
type CreatePartitions struct {
	Name        string    `json:"name"`
	Assignments [][]int32 `json:"assignments"`
}

// SetTopicConfigs replaces a topic's explicit config overrides. The result
// is the *Topic.
type SetTopicConfigs struct {
	Name    string            `json:"name"`
	Configs map[string]string `json:"configs,omitempty"`
}

// SetBrokerConfigs replaces the dynamic configs of one broker, or the
// cluster-wide defaults for NodeID ClusterDefault.
type SetBrokerConfigs struct {
	NodeID  int32             `json:"node_id"`
	Configs map[string]string `json:"configs,omitempty"`
}

// AllocateProducerIDs hands out Count consecutive producer ids, unique in
// the cluster. The result is the first id (int64).
type AllocateProducerIDs struct {
	NodeID int32 `json:"node_id"`
	Count  int64 `json:"count"`
}

// AlterPartition is a partition leader's request to change the ISR (KIP-497
// style). It names the state it saw: the leader epoch and the partition
// epoch; a request built on stale state is refused. The result is the new
// Partition.
type AlterPartition struct {
	Topic          string  `json:"topic"`
	Partition      int32   `json:"partition"`
	LeaderID       int32   `json:"leader_id"`
	BrokerEpoch    int64   `json:"broker_epoch"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	NewISR         []int32 `json:"new_isr"`
}

// LeaderLogFailed is a partition leader's report that its log of the
// partition failed: a failed fsync cut off records its followers may have
// copied, so it must not write those offsets again at the same leader
// epoch (Kafka takes such a log directory offline, KIP-112). Another ISR
// member that is eligible leads at a new leader epoch and the broker
// leaves the ISR; when no other ISR member can lead, the broker leads on
// at a new leader epoch, whose start the followers' epoch check
// truncates them to. The result is the new Partition.
type LeaderLogFailed struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	LeaderID    int32  `json:"leader_id"`
	BrokerEpoch int64  `json:"broker_epoch"`
	LeaderEpoch int32  `json:"leader_epoch"`
}

// ReplicaDiskFull is a replica's report that it cannot write its log of
// the partition for lack of space (ENOSPC or EDQUOT on write(2)): the
// write failed before the log end moved, so unlike LeaderLogFailed
// nothing anyone read is in doubt and no epoch needs bumping for the
// log's sake. The reporter, a leader or a follower in the ISR at
// LeaderEpoch, leaves the ISR, as Kafka's does when its log directory
// goes offline (KIP-112): a full follower no longer holds acks=all
// produces until replica.lag.time.max.ms. The broker is marked DiskFull
// (no leadership, no ISR join) until BrokerDiskWritable, and the first
// report also takes it out of every other ISR and moves every leadership
// it holds that another eligible ISR member can take (a log directory
// goes offline as a whole). A leader
// hands over to the first other eligible ISR member at a new leader
// epoch; when there is none it is refused with
// ErrEligibleLeadersNotAvailable and nothing changes (no epoch bump per
// retry; the leader keeps refusing appends until the space returns). A
// follower's report shrinks the ISR even below min.insync.replicas,
// which then fails acks=all produces at once (NOT_ENOUGH_REPLICAS)
// instead of holding them. A reporter not in the ISR changes nothing.
// The result is the Partition as left.
type ReplicaDiskFull struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	BrokerID    int32  `json:"broker_id"`
	BrokerEpoch int64  `json:"broker_epoch"`
	LeaderEpoch int32  `json:"leader_epoch"`
}

// BrokerDiskWritable is a broker's report that its disk takes writes
// again (a probe write succeeded) after a ReplicaDiskFull: it may lead and
// join ISRs again (it rejoins each by catching up). The result is whether
// the broker was marked full.
type BrokerDiskWritable struct {
	NodeID      int32 `json:"node_id"`
	BrokerEpoch int64 `json:"broker_epoch"`
}

// ElectionType selects the rule of an ElectLeaders command (Kafka's
// ElectLeaders election_type).
type ElectionType int8

// Election types, as numbered by Kafka's ElectLeaders request.
const (
	ElectPreferred ElectionType = 0
	ElectUnclean   ElectionType = 1
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// ElectLeaders runs an election on the named partitions, or on every
// partition when Partitions is empty (then partitions where no election is
// needed are left out of the result). The result is []ElectionResult, in
// topic and partition order.
type ElectLeaders struct {
	Election   ElectionType     `json:"election"`
	Partitions []TopicPartition `json:"partitions,omitempty"`
}

// ElectionResult is the outcome for one partition.
type ElectionResult struct {
	TopicPartition
	Leader int32 `json:"leader"`
	Err    error `json:"-"`
}

// Reassignment moves a partition to Replicas; nil Replicas cancels a
// running reassignment.
type Reassignment struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`
}

// ReassignPartitions starts (or cancels) reassignments. The partition keeps
// the union of old and new replicas until every new replica has joined the
// ISR (through AlterPartition), then drops the old ones. The result is
// []error, one per reassignment in order (nil for success).
type ReassignPartitions struct {
	Reassignments []Reassignment `json:"reassignments"`
}

// ImportFileMetadata carries the metadata of a data directory written by a
// broker that kept it in a file (tributary-metadata.json, before every
// broker ran the Raft metadata) into the log, at that broker's first start
// on Raft. Every topic gets the importing broker as its only replica, keeps
// its id, configs and leader epochs (a new leadership bumps them, so the
// epochs already stamped in its log stay older), and is led by the broker
// once it is eligible. Applying the same import again changes nothing: a
// topic that exists with the same id is skipped, broker configs are taken
// only where the state has none, and the producer-id counter only moves up.
// A topic that exists under another id refuses the whole import.
type ImportFileMetadata struct {
	NodeID int32           `json:"node_id"`
	Topics []ImportedTopic `json:"topics"`
	// BrokerConfigs are the dynamic broker configs, by node id
	// (ClusterDefault for the cluster-wide defaults).
	BrokerConfigs map[int32]map[string]string `json:"broker_configs,omitempty"`
	// NextProducerID is the first producer id the file had not handed out.
	NextProducerID int64 `json:"next_producer_id"`
}

// ImportedTopic is one topic of an ImportFileMetadata.
type ImportedTopic struct {
	Name    string            `json:"name"`
	ID      TopicID           `json:"id"`
	Configs map[string]string `json:"configs,omitempty"`
	// LeaderEpochs has one entry per partition: the last leader epoch the
	// file recorded.
	LeaderEpochs []int32 `json:"leader_epochs"`
}

// Type implements Command.
func (InitCluster) Type() CommandType { return TypeInitCluster }

// Type implements Command.
func (RegisterBroker) Type() CommandType { return TypeRegisterBroker }

// Type implements Command.
func (BrokerHeartbeat) Type() CommandType { return TypeBrokerHeartbeat }

// Type implements Command.
func (ExpireLeases) Type() CommandType { return TypeExpireLeases }

// Type implements Command.
func (FenceBroker) Type() CommandType { return TypeFenceBroker }

// Type implements Command.
func (ControlledShutdown) Type() CommandType { return TypeControlledShutdown }

// Type implements Command.
func (UnregisterBroker) Type() CommandType { return TypeUnregisterBroker }

// Type implements Command.
func (CreateTopic) Type() CommandType { return TypeCreateTopic }

// Type implements Command.
func (DeleteTopic) Type() CommandType { return TypeDeleteTopic }

// Type implements Command.
func (CreatePartitions) Type() CommandType { return TypeCreatePartitions }

// Type implements Command.
func (SetTopicConfigs) Type() CommandType { return TypeSetTopicConfigs }

// Type implements Command.
func (SetBrokerConfigs) Type() CommandType { return TypeSetBrokerConfigs }

// Type implements Command.
func (AllocateProducerIDs) Type() CommandType { return TypeAllocateProducerIDs }

// Type implements Command.
func (AlterPartition) Type() CommandType { return TypeAlterPartition }

// Type implements Command.
func (LeaderLogFailed) Type() CommandType { return TypeLeaderLogFailed }

// Type implements Command.
func (ReplicaDiskFull) Type() CommandType { return TypeReplicaDiskFull }

// Type implements Command.
func (BrokerDiskWritable) Type() CommandType { return TypeBrokerDiskWritable }

// Type implements Command.
func (ElectLeaders) Type() CommandType { return TypeElectLeaders }

// Type implements Command.
func (ReassignPartitions) Type() CommandType { return TypeReassignPartitions }

// Type implements Command.
func (ImportFileMetadata) Type() CommandType { return TypeImportFileMetadata }

// ControllerDuty reports whether b is a command the active controller
// proposes only of its own accord, never for a broker or a client: setting
// the cluster id, expiring lapsed leases, and fencing a broker whose lease
// lapsed or whose process is gone (both decided on the controller's own
// lease table and probes). No broker has one to forward, so the controller
// refuses them from its peers: a broker's key must not let it fence
// another broker.
func ControllerDuty(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch CommandType(b[0]) &^ IgnorableFlag {
	case TypeInitCluster, TypeExpireLeases, TypeFenceBroker:
		return true
	}
	return false
}

// SelfReport is the node a command speaks for when only that node sends
// it: its registration, lease, shutdown, metadata version and disk state,
// and, as leader, its partitions' ISR changes and failed logs (ok false
// for any other command, and for one that does not decode, which applying
// refuses anyway). The controller binds these to the node id of the
// proposer's certificate, so a broker's key lets it report only on itself.
func SelfReport(b []byte) (node int32, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	body := b[1:]
	switch CommandType(b[0]) {
	case TypeRegisterBroker:
		return reporter(body, func(c RegisterBroker) int32 { return c.NodeID })
	case TypeBrokerHeartbeat:
		return reporter(body, func(c BrokerHeartbeat) int32 { return c.NodeID })
	case TypeControlledShutdown:
		return reporter(body, func(c ControlledShutdown) int32 { return c.NodeID })
	case TypeBrokerDiskWritable:
		return reporter(body, func(c BrokerDiskWritable) int32 { return c.NodeID })
	case TypeBrokerMetadataVersion:
		return reporter(body, func(c BrokerMetadataVersion) int32 { return c.NodeID })
	case TypeAlterPartition:
		return reporter(body, func(c AlterPartition) int32 { return c.LeaderID })
	case TypeLeaderLogFailed:
		return reporter(body, func(c LeaderLogFailed) int32 { return c.LeaderID })
	case TypeReplicaDiskFull:
		return reporter(body, func(c ReplicaDiskFull) int32 { return c.BrokerID })
	}
	return 0, false
}

// reporter decodes body as applying does (decodeAnd) and returns the node
// it names.
func reporter[C any](body []byte, node func(C) int32) (int32, bool) {
	var c C
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return 0, false
	}
	return node(c), true
}
