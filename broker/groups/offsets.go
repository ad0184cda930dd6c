package groups

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// committedOffset is one committed position of a group on a partition.
type committedOffset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitAt    int64 // unix ms
	expireAt    int64 // unix ms; -1 unless the commit set its own retention
	// seq orders the commits of the offsets log: a transactional commit
	// takes effect at its COMMIT marker only over commits written before
	// it, as Kafka compares their log offsets.
	seq uint64
}

// consumerProtocolType is the protocol type of Kafka consumers; for it the
// coordinator understands member metadata (the subscribed topics).
const consumerProtocolType = "consumer"

func (g *group) setOffset(topic string, partition int32, o committedOffset) {
	parts, ok := g.offsets[topic]
	if !ok {
		parts = make(map[int32]committedOffset)
		g.offsets[topic] = parts
	}
	parts[partition] = o
}

func (g *group) deleteOffset(topic string, partition int32) bool {
	parts, ok := g.offsets[topic]
	if !ok {
		return false
	}
	if _, ok := parts[partition]; !ok {
		return false
	}
	delete(parts, partition)
	if len(parts) == 0 {
		delete(g.offsets, topic)
	}
	return true
}

// subscribedTopics returns the topics the members of a consumer group
// subscribe to, read from their protocol metadata; ok is false when the
// group is not a consumer group with members, or when any member's
// subscription cannot be decoded (then nothing is known to be subscribed).
func (g *group) subscribedTopics() (topics map[string]struct{}, ok bool) {
	if g.protocolType != consumerProtocolType || len(g.members) == 0 || g.protocol == "" {
		return nil, false
	}
	topics = make(map[string]struct{})
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			return nil, false
		}
		for _, t := range meta.Topics {
			topics[t] = struct{}{}
		}
	}
	return topics, true
}

// metadataValue is the group's GroupMetadataValue as Kafka stores it.
func (g *group) metadataValue() []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupMetadataValVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.protocol)
	}
	if g.leader != "" {
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = g.stateSince.UnixMilli()
	for _, m := range g.sortedMembers() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		vm.InstanceID = m.instanceID
		vm.ClientID = m.clientID
		vm.ClientHost = m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout.Milliseconds())
		vm.SessionTimeoutMillis = int32(m.sessionTimeout.Milliseconds())
		vm.Subscription = m.metadataFor(g.protocol)
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return v.AppendTo(nil)
}

// persistMetadata writes the group's metadata record. A failure is logged:
// the state in memory stays right, and the next write supersedes it.
func (g *group) persistMetadata(ctx context.Context) {
	if err := g.c.appendRecords(ctx, []Record{{Key: groupKey(g.name), Value: g.metadataValue()}}); err != nil {
		g.log().Error("writing group metadata to the offsets log", "generation", g.generation, "error", err)
	}
}

// expiryLoop removes expired offsets every offsets.retention.check.interval.
func (c *Coordinator) expiryLoop(ctx context.Context) {
	defer close(c.expiryDone)
	t := time.NewTicker(c.cfg.OffsetsRetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.ExpireOffsets(ctx)
		}
	}
}

// ExpireOffsets applies offsets.retention.minutes now, as Kafka's periodic
// cleanup does (KIP-211): offsets of a group with no members expire
// retention after the group became empty; offsets of a consumer group's
// unsubscribed topics and of groups that only commit (no protocol) expire
// retention after their commit; an explicit per-commit retention (OffsetCommit
// v2-v4) wins. Expired offsets get tombstones, and an empty group left with
// no offsets is deleted. The coordinator calls it on a timer; it is
// exported for tests and for an admin "expire now".
func (c *Coordinator) ExpireOffsets(ctx context.Context) {
	for _, g := range c.snapshot() {
		g.mu.Lock()
		if g.state != stateDead {
			g.expireOffsets(ctx)
		}
		g.mu.Unlock()
	}
}

func (g *group) expireOffsets(ctx context.Context) {
	now := g.c.now().UnixMilli()
	retention := g.c.cfg.OffsetsRetention.Milliseconds()

	var base func(o committedOffset) int64
	var keep map[string]struct{}
	switch {
	case g.state == stateEmpty && g.protocolType != "":
		since := g.stateSince.UnixMilli()
		base = func(committedOffset) int64 { return since }
	case g.protocolType == "":
		base = func(o committedOffset) int64 { return o.commitAt }
	default:
		topics, ok := g.subscribedTopics()
		if !ok || g.state != stateStable {
			// A group with members whose subscriptions are unknown (not a
			// consumer group, or rebalancing) keeps all its offsets.
			return
		}
		keep = topics
		base = func(o committedOffset) int64 { return o.commitAt }
	}

	var tombstones []Record
	type tp struct {
		topic     string
		partition int32
	}
	var expired []tp
	for topic, parts := range g.offsets {
		if _, ok := keep[topic]; ok {
			continue
		}
		for p, o := range parts {
			dead := now-base(o) >= retention
			if o.expireAt >= 0 {
				dead = now >= o.expireAt
			}
			if dead {
				expired = append(expired, tp{topic, p})
				tombstones = append(tombstones, Record{Key: offsetKey(g.name, topic, p)})
			}
		}
	}
	removeGroup := g.state == stateEmpty && len(g.members) == 0 && len(g.pending) == 0 && len(expired) == g.offsetCount()
	if removeGroup {
		tombstones = append(tombstones, Record{Key: groupKey(g.name)})
	}
	if len(tombstones) == 0 {
		return
	}
	if err := g.c.appendRecords(ctx, tombstones); err != nil {
		g.log().Error("writing expired offset tombstones; will retry at the next check", "offsets", len(expired), "error", err)
		return
	}
	for _, e := range expired {
		g.deleteOffset(e.topic, e.partition)
	}
	if len(expired) > 0 {
		g.c.stats.offsetsExpired.Add(int64(len(expired)))
		g.log().Info("expired committed offsets", "offsets", len(expired))
	}
	if removeGroup {
		g.log().Info("removing empty group with no offsets left")
		g.markDead()
	}
}

func (g *group) offsetCount() int {
	n := 0
	for _, parts := range g.offsets {
		n += len(parts)
	}
	return n
}

// CommittedOffset is a group's committed position on one partition.
type CommittedOffset struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32 // -1 when the client did not send one
	Metadata    string
	CommitTime  time.Time
}

// CommittedOffsets returns the offsets the group has committed, sorted by
// topic and partition, for consumer lag metrics; ok is false when the group
// does not exist.
func (c *Coordinator) CommittedOffsets(groupName string) (offsets []CommittedOffset, ok bool) {
	g, code := c.lockGroup(groupName, false)
	if g == nil || code != 0 {
		return nil, false
	}
	defer g.mu.Unlock()
	for topic, parts := range g.offsets {
		for p, o := range parts {
			offsets = append(offsets, CommittedOffset{
				Topic: topic, Partition: p, Offset: o.offset, LeaderEpoch: o.leaderEpoch,
				Metadata: o.metadata, CommitTime: time.UnixMilli(o.commitAt),
			})
		}
	}
	slices.SortFunc(offsets, func(a, b CommittedOffset) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return offsets, true
}

// GroupSummary is the state of one group, for metrics and admin tools.
type GroupSummary struct {
	Name         string
	State        string // Kafka's names: Empty, PreparingRebalance, CompletingRebalance, Stable
	ProtocolType string // "consumer" for Kafka consumers; "" for groups that only commit offsets
	Protocol     string // the assignor chosen for the current generation
	Generation   int32
	Members      int
}

// Groups returns a summary of every group, sorted by name.
func (c *Coordinator) Groups() []GroupSummary {
	var out []GroupSummary
	for _, g := range c.snapshot() {
		g.mu.Lock()
		if g.state != stateDead {
			out = append(out, GroupSummary{
				Name: g.name, State: g.state.String(), ProtocolType: g.protocolType,
				Protocol: g.protocol, Generation: g.generation, Members: len(g.members),
			})
		}
		g.mu.Unlock()
	}
	return out
}

// DeleteTopicOffsets removes every group's committed offsets for a deleted
// topic, as Kafka does when a topic is deleted, so a topic created again
// with the same name starts without stale positions. Call it from
// DeleteTopics after the topic is gone.
func (c *Coordinator) DeleteTopicOffsets(ctx context.Context, topic string) error {
	for _, g := range c.snapshot() {
		g.mu.Lock()
		err := g.deleteTopicOffsets(ctx, topic)
		g.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *group) deleteTopicOffsets(ctx context.Context, topic string) error {
	parts := g.offsets[topic]
	if g.state == stateDead || len(parts) == 0 {
		return nil
	}
	tombstones := make([]Record, 0, len(parts))
	for p := range parts {
		tombstones = append(tombstones, Record{Key: offsetKey(g.name, topic, p)})
	}
	if err := g.c.appendRecords(ctx, tombstones); err != nil {
		return fmt.Errorf("deleting offsets of topic %q for group %q: %w", topic, g.name, err)
	}
	delete(g.offsets, topic)
	return nil
}
