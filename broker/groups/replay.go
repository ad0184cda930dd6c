package groups

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// replay rebuilds every group from the offsets log: the last record per key
// wins, tombstones delete. Groups with members come back Stable with their
// last persisted generation and assignments; each restored member must
// heartbeat within its session timeout or it is removed as usual.
func (c *Coordinator) replay(ctx context.Context) error {
	type replayed struct {
		meta    *kmsg.GroupMetadataValue
		offsets map[string]map[int32]committedOffset
	}
	state := make(map[string]*replayed)
	get := func(name string) *replayed {
		r, ok := state[name]
		if !ok {
			r = &replayed{offsets: make(map[string]map[int32]committedOffset)}
			state[name] = r
		}
		return r
	}
	// Offsets of undecided transactions: producer id, group, topic,
	// partition. A marker decides them, as CompleteTxn does live.
	type pendingOffsets = map[string]map[string]map[int32]committedOffset
	pending := make(map[int64]pendingOffsets)
	var seq uint64
	var records, skipped, undecodable int
	err := c.offsets.Replay(ctx, func(rec Record) error {
		records++
		if rec.Txn != nil && rec.Txn.Marker {
			byGroup := pending[rec.Txn.ProducerID]
			delete(pending, rec.Txn.ProducerID)
			if !rec.Txn.Commit {
				return nil
			}
			for group, topics := range byGroup {
				r := get(group)
				for topic, parts := range topics {
					for p, o := range parts {
						if cur, ok := r.offsets[topic][p]; ok && cur.seq > o.seq {
							continue
						}
						if r.offsets[topic] == nil {
							r.offsets[topic] = make(map[int32]committedOffset)
						}
						r.offsets[topic][p] = o
					}
				}
			}
			return nil
		}
		seq++
		d, err := decodeRecord(rec)
		if err != nil {
			// One damaged record must not keep the broker from starting;
			// the key's next write (or its absence) decides its fate.
			undecodable++
			c.log.Warn("skipping undecodable offsets log record", "error", err)
			return nil
		}
		switch {
		case d.skip:
			skipped++
		case d.isOffset && rec.Txn != nil:
			if d.offset == nil {
				return nil // transactions write no tombstones
			}
			o := *d.offset
			o.seq = seq
			byGroup := pending[rec.Txn.ProducerID]
			if byGroup == nil {
				byGroup = make(pendingOffsets)
				pending[rec.Txn.ProducerID] = byGroup
			}
			if byGroup[d.group] == nil {
				byGroup[d.group] = make(map[string]map[int32]committedOffset)
			}
			if byGroup[d.group][d.topic] == nil {
				byGroup[d.group][d.topic] = make(map[int32]committedOffset)
			}
			byGroup[d.group][d.topic][d.partition] = o
		case d.isOffset:
			r := get(d.group)
			if d.offset == nil {
				if parts := r.offsets[d.topic]; parts != nil {
					delete(parts, d.partition)
					if len(parts) == 0 {
						delete(r.offsets, d.topic)
					}
				}
				return nil
			}
			parts, ok := r.offsets[d.topic]
			if !ok {
				parts = make(map[int32]committedOffset)
				r.offsets[d.topic] = parts
			}
			o := *d.offset
			o.seq = seq
			parts[d.partition] = o
		default:
			get(d.group).meta = d.meta
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replaying the offsets log: %w", err)
	}

	c.seq.Store(seq)
	pendingByGroup := make(map[string]map[int64]map[string]map[int32]committedOffset)
	for pid, byGroup := range pending {
		for group, topics := range byGroup {
			if pendingByGroup[group] == nil {
				pendingByGroup[group] = make(map[int64]map[string]map[int32]committedOffset)
			}
			pendingByGroup[group][pid] = topics
			c.trackTxn(pid, group)
			get(group)
		}
	}
	restoredMembers := 0
	for name, r := range state {
		if r.meta == nil && len(r.offsets) == 0 && len(pendingByGroup[name]) == 0 {
			continue
		}
		g := newGroup(c, name)
		g.offsets = r.offsets
		if p := pendingByGroup[name]; p != nil {
			g.pendingTxn = p
		}
		if r.meta != nil {
			restoredMembers += g.restore(r.meta)
		}
		c.groups[name] = g
	}
	c.log.Info("offsets log replayed", "records", records, "groups", len(c.groups), "open_transactions", len(pending),
		"members", restoredMembers, "skipped_records", skipped, "undecodable_records", undecodable)
	return nil
}

// restore loads a group's persisted metadata and starts its members'
// session timers; it returns the number of members restored.
func (g *group) restore(meta *kmsg.GroupMetadataValue) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.protocolType = meta.ProtocolType
	g.generation = meta.Generation
	if meta.Protocol != nil {
		g.protocol = *meta.Protocol
	}
	if meta.CurrentStateTimestamp > 0 {
		g.stateSince = time.UnixMilli(meta.CurrentStateTimestamp)
	}
	if len(meta.Members) == 0 || g.protocol == "" {
		g.state = stateEmpty
		return 0
	}
	for _, vm := range meta.Members {
		g.joinSeq++
		m := &member{
			id: vm.MemberID, instanceID: vm.InstanceID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			seq:              g.joinSeq,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocolType:     meta.ProtocolType,
			protocols:        []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: vm.Subscription}},
			assignment:       vm.Assignment,
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		g.members[m.id] = m
		if m.instanceID != nil {
			g.static[*m.instanceID] = m.id
		}
		g.scheduleSessionExpiry(m)
	}
	g.leader = ""
	if meta.Leader != nil {
		if _, ok := g.members[*meta.Leader]; ok {
			g.leader = *meta.Leader
		}
	}
	if g.leader == "" {
		g.leader = g.sortedMembers()[0].id
	}
	g.state = stateStable
	return len(meta.Members)
}
