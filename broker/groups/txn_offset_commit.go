package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit handles TxnOffsetCommit v0-v4: offsets committed inside
// a producer's transaction (KIP-98), written to the offsets log as part of
// it and visible to OffsetFetch only once its COMMIT marker is written
// (CompleteTxn); an ABORT drops them. The offsets log checks with the
// transaction coordinator that the group's offsets partition was added to
// the transaction (AddOffsetsToTxn) before writing (KIP-890).
//
// From v3 the request carries the consumer's group metadata (KIP-447): a
// member id, if given, must be a member (UNKNOWN_MEMBER_ID), a generation,
// if not -1, the group's (ILLEGAL_GENERATION), a group.instance.id its
// member's (FENCED_INSTANCE_ID), so a consumer that lost its partitions in
// a rebalance cannot commit for them. Unlike OffsetCommit, a commit is
// accepted during a rebalance, as in Kafka: the transaction is what makes
// it safe. The group is created if it does not exist.
//
// Version notes: v2 adds the committed leader epoch; v3 the group
// metadata (flexible). v5 (KIP-890 part 2, no AddOffsetsToTxn) and v6
// (topic ids) are not served.
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	failAll := func(code int16) *kmsg.TxnOffsetCommitResponse {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
		return resp
	}
	if req.Version < 3 {
		req.Generation, req.MemberID, req.InstanceID = -1, "", nil
	}
	if req.TransactionalID == "" || req.ProducerID < 0 || req.ProducerEpoch < 0 {
		return failAll(kerr.InvalidRequest.Code)
	}
	g, code := c.lockGroup(req.Group, true)
	if code != 0 {
		return failAll(code)
	}
	defer g.mu.Unlock()
	if code := g.validateTxnCommit(req); code != 0 {
		g.log().Debug("transactional offset commit refused", "member", req.MemberID, "generation", req.Generation,
			"group_generation", g.generation, "error", codeName(code), "version", req.Version)
		g.dropIfUnused()
		return failAll(code)
	}

	now := c.now().UnixMilli()
	type accepted struct {
		topic, partition int
		o                committedOffset
	}
	var records []Record
	var commits []accepted
	for ti, t := range req.Topics {
		for pi, p := range t.Partitions {
			rp := &resp.Topics[ti].Partitions[pi]
			if exists := c.cfg.PartitionExists; exists != nil && !exists(t.Topic, p.Partition) {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			var metadata string
			if p.Metadata != nil {
				metadata = *p.Metadata
			}
			if len(metadata) > c.cfg.OffsetMetadataMaxBytes {
				rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			o := committedOffset{offset: p.Offset, leaderEpoch: -1, metadata: metadata, commitAt: now, expireAt: -1, seq: c.seq.Add(1)}
			if req.Version >= 2 {
				o.leaderEpoch = p.LeaderEpoch
			}
			records = append(records, Record{Key: offsetKey(g.name, t.Topic, p.Partition), Value: offsetValue(o)})
			commits = append(commits, accepted{ti, pi, o})
		}
	}
	if len(records) > 0 {
		txn := TxnWrite{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch}
		if err := c.offsets.AppendTxn(context.WithoutCancel(ctx), txn, records); err != nil {
			code := appendErrorCode(err)
			g.log().Warn("transactional offset commit not written", "transactional_id", req.TransactionalID,
				"producer_id", req.ProducerID, "offsets", len(records), "error", codeName(code), "err", err)
			for _, a := range commits {
				resp.Topics[a.topic].Partitions[a.partition].ErrorCode = code
			}
			g.dropIfUnused()
			return resp
		}
	}
	if len(commits) == 0 {
		g.dropIfUnused()
		return resp
	}
	parts := g.pendingTxn[req.ProducerID]
	if parts == nil {
		parts = make(map[string]map[int32]committedOffset)
		g.pendingTxn[req.ProducerID] = parts
	}
	for _, a := range commits {
		topic := req.Topics[a.topic].Topic
		if parts[topic] == nil {
			parts[topic] = make(map[int32]committedOffset)
		}
		parts[topic][req.Topics[a.topic].Partitions[a.partition].Partition] = a.o
	}
	c.trackTxn(req.ProducerID, g.name)
	g.log().Debug("transactional offsets written", "transactional_id", req.TransactionalID, "producer_id", req.ProducerID, "offsets", len(commits))
	return resp
}

// validateTxnCommit applies KIP-447's checks of the consumer's group
// metadata (Kafka's doTxnCommitOffsets).
func (g *group) validateTxnCommit(req *kmsg.TxnOffsetCommitRequest) int16 {
	if req.InstanceID != nil {
		if owner, ok := g.static[*req.InstanceID]; ok && owner != req.MemberID {
			return kerr.FencedInstanceID.Code
		}
	}
	if req.MemberID != "" {
		if _, ok := g.members[req.MemberID]; !ok {
			return kerr.UnknownMemberID.Code
		}
	}
	if req.Generation >= 0 && req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	return 0
}

// trackTxn records that a group holds offsets of the producer's open
// transaction. The caller holds the group's lock.
func (c *Coordinator) trackTxn(producerID int64, group string) {
	c.txnMu.Lock()
	defer c.txnMu.Unlock()
	gs := c.txnGroups[producerID]
	if gs == nil {
		gs = make(map[string]struct{})
		c.txnGroups[producerID] = gs
	}
	gs[group] = struct{}{}
}

// CompleteTxn applies a transaction's outcome once its marker is durable in
// the offsets log: at COMMIT the producer's pending offsets become the
// groups' committed offsets, except where a commit written after them has
// already moved the partition; at ABORT they are dropped. The server calls
// it after writing the marker (WriteTxnMarkers); replay does the same from
// the markers in the log.
func (c *Coordinator) CompleteTxn(producerID int64, commit bool) {
	c.txnMu.Lock()
	names := c.txnGroups[producerID]
	delete(c.txnGroups, producerID)
	c.txnMu.Unlock()
	for name := range names {
		g, code := c.lockGroup(name, false)
		if g == nil || code != 0 {
			continue
		}
		n := g.completeTxn(producerID, commit)
		if n > 0 {
			c.stats.offsetsCommitted.Add(int64(n))
		}
		g.log().Debug("transaction completed", "producer_id", producerID, "commit", commit, "offsets_applied", n)
		g.dropIfUnused()
		g.mu.Unlock()
	}
}

// completeTxn applies the producer's pending offsets at COMMIT and returns
// how many took effect. The caller holds g.mu.
func (g *group) completeTxn(producerID int64, commit bool) int {
	pending := g.pendingTxn[producerID]
	delete(g.pendingTxn, producerID)
	if !commit {
		return 0
	}
	n := 0
	for topic, parts := range pending {
		for p, o := range parts {
			if cur, ok := g.offsets[topic][p]; ok && cur.seq > o.seq {
				continue
			}
			g.setOffset(topic, p, o)
			n++
		}
	}
	return n
}

// hasPendingTxn reports whether an undecided transaction holds an offset
// of the group for the partition (OffsetFetch's require_stable, KIP-447).
// The caller holds g.mu.
func (g *group) hasPendingTxn(topic string, partition int32) bool {
	for _, parts := range g.pendingTxn {
		if _, ok := parts[topic][partition]; ok {
			return true
		}
	}
	return false
}
