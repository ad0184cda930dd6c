package metadata

import (
	"errors"
	"fmt"
)

// MetadataVersion is the level of the metadata log a broker can apply: the
// command types it knows (Kafka's metadata.version, KIP-778). A command
// type a broker does not know halts its state machine (FSM.ApplyEntry), so
// during a rolling upgrade no command is proposed above the version every
// registered broker supports (State.UsableMetadataVersion).
type MetadataVersion int16

const (
	// MetadataVersionBaseline is the version of a broker incarnation
	// that reported none: binaries before BrokerMetadataVersion. It
	// stands for the binaries since AlterScramCredentials (b237b2d, 4
	// December 18:51), which know types 1-18 and 40. Not all of them know
	// FenceBroker (19, 7b32bf4, 4 December 19:05), AlterClientQuotas (41,
	// cfcbe6f, 4 December 23:06), LeaderLogFailed (20, d30676e, 5
	// December 07:56), ReplicaDiskFull or BrokerDiskWritable (21 and 22,
	// a258d40, 5 December 22:57), and no registration says which binary
	// it is, so those need version 2. Binaries older than b237b2d (no
	// SCRAM, before that no ACL commands) are older than any cluster this
	// version upgrades and are not told apart.
	MetadataVersionBaseline MetadataVersion = 1
	// CurrentMetadataVersion is the highest version this binary applies.
	// A new command type gets the next version here and in
	// commandVersions, in the same change.
	CurrentMetadataVersion MetadataVersion = 4
)

// CleanHandOverVersion is the metadata version from which a live broker
// that gives up its leaderships (a controlled shutdown, a full disk)
// hands them to in-sync replicas only, unclean election allowed or not
// (applyCtx.removeFromISRsAndLeaderships). It changes what
// ControlledShutdown (5) and ReplicaDiskFull (21) apply, not which
// commands exist: below it every broker applies them as the binaries
// before it did, so that the brokers of a rolling upgrade compute the
// same leaders from the same log. A broker's new registration counts as
// MetadataVersionBaseline until its report, so the old rule applies for
// that moment too.
const CleanHandOverVersion MetadataVersion = 3

// TargetReplicationFactorVersion is the metadata version from which
// CreatePartitions gives the new partitions the topic's target
// replication factor (Topic.ReplicationFactor) where partition 0 is being
// reassigned; below it, partition 0's replica count, adding replicas
// included, as the binaries before it applied it (a reassignment of
// partition 0 from three replicas to three others made CreatePartitions
// want six). Like CleanHandOverVersion it changes what an existing
// command applies, so that the brokers of a rolling upgrade accept and
// refuse the same CreatePartitions.
const TargetReplicationFactorVersion MetadataVersion = 4

// NewPartitionsReplicationFactor is how many replicas CreatePartitions
// wants for each new partition of t at this state's metadata version
// (see TargetReplicationFactorVersion). The active controller places new
// partitions with it, and applyCreatePartitions checks them against it.
func (s *State) NewPartitionsReplicationFactor(t *Topic) int {
	if s.UsableMetadataVersion() < TargetReplicationFactorVersion && t.NumPartitions() > 0 {
		return len(t.parts[0].Replicas)
	}
	return t.ReplicationFactor()
}

// DeleteTopicIDVersion is the metadata version that DeleteTopic.ID needs
// (51a8f37, 5 December 07:51): a broker of an older binary halts on the
// field (decodeAnd refuses fields it does not know), so below it a
// deletion names the topic only, as before.
const DeleteTopicIDVersion MetadataVersion = 2

// commandVersions is the metadata version a command type needs, for the
// types newer than MetadataVersionBaseline. Never lower an entry: a log
// written under it would halt the brokers it admitted.
var commandVersions = map[CommandType]MetadataVersion{
	TypeFenceBroker:           2,
	TypeLeaderLogFailed:       2,
	TypeReplicaDiskFull:       2,
	TypeBrokerDiskWritable:    2,
	TypeBrokerMetadataVersion: 2,
	TypeAlterClientQuotas:     2,
}

// lastBaselineType is the highest command type below 40 every broker
// without a version knows; of the types from 40 on, it knows
// TypeAlterScramCredentials.
const lastBaselineType = TypeDeleteACLs

// ErrMetadataVersion refuses a proposal whose command type some registered
// broker cannot apply: it runs an older binary. The caller falls back to
// what it did before the command existed.
var ErrMetadataVersion = errors.New("metadata command needs a newer metadata version than a registered broker supports")

// CommandVersion returns the metadata version a command type needs to be
// proposed. A type with IgnorableFlag needs none (MetadataVersionBaseline):
// a broker that does not know it skips it. A type this binary does not
// know needs more than it supports.
func CommandVersion(t CommandType) MetadataVersion {
	if t&IgnorableFlag != 0 {
		return MetadataVersionBaseline
	}
	if v, ok := commandVersions[t]; ok {
		return v
	}
	if (t >= 1 && t <= lastBaselineType) || t == TypeAlterScramCredentials {
		return MetadataVersionBaseline
	}
	return CurrentMetadataVersion + 1
}

// BrokerMetadataVersion is a broker incarnation's report of the highest
// metadata version its binary applies, proposed after each registration
// (RegisterBroker cannot carry it: a field an older broker does not know
// halts it, as decodeAnd refuses unknown fields). It is written with
// IgnorableFlag, so older brokers skip it; they never propose a command
// they do not know, so they need no versions. An incarnation without one
// is at MetadataVersionBaseline. A report naming an incarnation that is
// not the current one is refused (ErrStaleBrokerEpoch). The result is
// nil.
type BrokerMetadataVersion struct {
	NodeID          int32           `json:"node_id"`
	BrokerEpoch     int64           `json:"broker_epoch"`
	MetadataVersion MetadataVersion `json:"metadata_version"`
}

// Type implements Command: the type with IgnorableFlag.
func (BrokerMetadataVersion) Type() CommandType { return TypeBrokerMetadataVersion | IgnorableFlag }

func applyBrokerMetadataVersion(c *applyCtx, cmd BrokerMetadataVersion) (any, error) {
	if err := c.checkBrokerEpoch(cmd.NodeID, cmd.BrokerEpoch); err != nil {
		return nil, err
	}
	if cmd.MetadataVersion < MetadataVersionBaseline {
		return nil, fmt.Errorf("%w: broker %d reports metadata version %d", ErrInvalidRequest, cmd.NodeID, cmd.MetadataVersion)
	}
	if c.st.Brokers[cmd.NodeID].MetadataVersion != cmd.MetadataVersion {
		c.brokerForWrite(cmd.NodeID).MetadataVersion = cmd.MetadataVersion
	}
	return nil, nil
}

// SupportedMetadataVersion is the highest metadata version the broker's
// current incarnation reported (BrokerMetadataVersion), or
// MetadataVersionBaseline before it reported one.
func (b *Broker) SupportedMetadataVersion() MetadataVersion {
	if b.MetadataVersion < MetadataVersionBaseline {
		return MetadataVersionBaseline
	}
	return b.MetadataVersion
}

// UsableMetadataVersion is the highest metadata version every registered
// broker supports, fenced ones included (they replay the log when they
// come back); an unregistered broker counts no more. With no broker
// registered it is MetadataVersionBaseline.
func (s *State) UsableMetadataVersion() MetadataVersion {
	v := CurrentMetadataVersion
	if len(s.Brokers) == 0 {
		return MetadataVersionBaseline
	}
	for _, b := range s.Brokers {
		v = min(v, b.SupportedMetadataVersion())
	}
	return v
}

// CheckProposable returns ErrMetadataVersion when a command of type t
// needs a metadata version above UsableMetadataVersion: some registered
// broker would halt on it.
func (s *State) CheckProposable(t CommandType) error {
	need, usable := CommandVersion(t), s.UsableMetadataVersion()
	if need <= usable {
		return nil
	}
	var old []int32
	for _, id := range s.BrokerIDs() {
		if s.Brokers[id].SupportedMetadataVersion() < need {
			old = append(old, id)
		}
	}
	return fmt.Errorf("%w: command type %d needs metadata version %d, brokers %v support %d at most (upgrade them)", ErrMetadataVersion, t, need, old, usable)
}

// AwaitsVersionReport reports whether a command of type t is refused
// (CheckProposable) only for brokers whose current incarnation has not
// reported a metadata version yet. A broker of this version reports right
// after its registration commits, so such a refusal is usually a window
// of a few milliseconds after a broker starts, not an older binary: the
// caller may wait for the report, briefly (Controller.awaitProposable).
func (s *State) AwaitsVersionReport(t CommandType) bool {
	need := CommandVersion(t)
	if need > CurrentMetadataVersion || need <= s.UsableMetadataVersion() {
		return false
	}
	for _, b := range s.Brokers {
		if b.SupportedMetadataVersion() < need && b.MetadataVersion != 0 {
			return false
		}
	}
	return true
}
