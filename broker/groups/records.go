package groups

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The offsets log uses Kafka's own __consumer_offsets record formats, so the
// log can be read with Kafka's tooling (kafka-console-consumer with the
// offsets formatter, kcat with a decoder) and the formats' version history
// is Kafka's:
//
//   - Committed offset: key = OffsetCommitKey v1 (int16 version=1, string
//     group, string topic, int32 partition); value = OffsetCommitValue v3
//     (offset, leader epoch, metadata, commit timestamp), or v1 when the
//     commit carried an explicit retention (OffsetCommit v2-v4
//     retention_time_ms), since only v1 holds an expire timestamp.
//   - Group metadata: key = GroupMetadataKey v2 (int16 version=2, string
//     group); value = GroupMetadataValue v3 (protocol type, generation,
//     protocol, leader, state timestamp, members with their subscription and
//     assignment).
//
// A nil value is a tombstone: the offset was deleted or expired, or the
// group was deleted. Keys with other versions (Kafka's KIP-848 and
// transaction records) are skipped on replay.
const (
	offsetKeyVersion        = 1
	groupKeyVersion         = 2
	offsetValueVersion      = 3
	offsetValueVersionTTL   = 1
	groupMetadataValVersion = 3
)

func offsetKey(group, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: topic, Partition: partition}
	return k.AppendTo(nil)
}

func offsetValue(o committedOffset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	if o.expireAt >= 0 {
		v.Version = offsetValueVersionTTL
		v.ExpireTimestamp = o.expireAt
	}
	v.Offset = o.offset
	v.LeaderEpoch = o.leaderEpoch
	v.Metadata = o.metadata
	v.CommitTimestamp = o.commitAt
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return k.AppendTo(nil)
}

// decodedRecord is one replayed record; exactly one of offset or group is
// set unless skip is true.
type decodedRecord struct {
	skip bool

	isOffset  bool
	group     string
	topic     string
	partition int32
	offset    *committedOffset // nil: tombstone

	meta *kmsg.GroupMetadataValue // nil with !isOffset: group tombstone
}

func decodeRecord(r Record) (decodedRecord, error) {
	if len(r.Key) < 2 {
		return decodedRecord{}, fmt.Errorf("offsets log key of %d bytes is too short", len(r.Key))
	}
	switch version := int16(binary.BigEndian.Uint16(r.Key)); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(r.Key); err != nil {
			return decodedRecord{}, fmt.Errorf("decoding offset commit key: %w", err)
		}
		d := decodedRecord{isOffset: true, group: k.Group, topic: k.Topic, partition: k.Partition}
		if r.Value == nil {
			return d, nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(r.Value); err != nil {
			return decodedRecord{}, fmt.Errorf("decoding offset commit value of group %q %s/%d: %w", k.Group, k.Topic, k.Partition, err)
		}
		o := committedOffset{offset: v.Offset, leaderEpoch: -1, metadata: v.Metadata, commitAt: v.CommitTimestamp, expireAt: -1}
		if v.Version >= 3 {
			o.leaderEpoch = v.LeaderEpoch
		}
		if v.Version == 1 {
			o.expireAt = v.ExpireTimestamp
		}
		d.offset = &o
		return d, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(r.Key); err != nil {
			return decodedRecord{}, fmt.Errorf("decoding group metadata key: %w", err)
		}
		d := decodedRecord{group: k.Group}
		if r.Value == nil {
			return d, nil
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(r.Value); err != nil {
			return decodedRecord{}, fmt.Errorf("decoding group metadata value of group %q: %w", k.Group, err)
		}
		d.meta = &v
		return d, nil
	default:
		return decodedRecord{skip: true}, nil
	}
}
