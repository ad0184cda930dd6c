package groups

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup handles SyncGroup v0-v5. The leader's request carries every
// member's assignment; the coordinator writes the group to the offsets log
// and answers every member with its own assignment. A follower's request
// blocks until the leader's arrives (or a rebalance interrupts the
// generation, or ctx is done: then COORDINATOR_NOT_AVAILABLE).
//
// Version notes: v3+ carries group.instance.id; v5+ carries the protocol
// type and name, checked against the group's (INCONSISTENT_GROUP_PROTOCOL)
// and returned in the answer.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) *kmsg.SyncGroupResponse {
		resp.ErrorCode = code
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	if req.Version < 3 {
		req.InstanceID = nil
	}
	g, code := c.lockGroup(req.Group, false)
	if code != 0 {
		return fail(code)
	}
	if g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	wait := &syncWaiter{req: req, ch: make(chan *kmsg.SyncGroupResponse, 1)}
	immediate := g.syncGroup(ctx, req, resp, wait)
	g.mu.Unlock()
	if immediate {
		return resp
	}
	select {
	case r := <-wait.ch:
		return r
	case <-ctx.Done():
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
}

func (g *group) syncGroup(ctx context.Context, req *kmsg.SyncGroupRequest, resp *kmsg.SyncGroupResponse, wait *syncWaiter) (immediate bool) {
	m, code := g.validateMember(req.MemberID, req.InstanceID)
	if code != 0 {
		resp.ErrorCode = code
		return true
	}
	if req.Generation != g.generation {
		resp.ErrorCode = kerr.IllegalGeneration.Code
		return true
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) || (req.Protocol != nil && *req.Protocol != g.protocol) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return true
	}

	switch g.state {
	case statePreparingRebalance:
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return true
	case stateStable:
		// The member's answer was sent already (it lost it, or it synced
		// after the leader): the same assignment again.
		delete(g.pendingSync, m.id)
		g.fillSyncResponse(resp, m)
		g.scheduleSessionExpiry(m)
		return true
	case stateCompletingRebalance:
		delete(g.pendingSync, m.id)
		m.replySyncError(kerr.RebalanceInProgress.Code) // a duplicate sync replaces the first
		m.sync = wait
		if m.id == g.leader {
			g.completeSync(ctx, req.GroupAssignment)
		}
		return false
	default:
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return true
	}
}

// completeSync stores the leader's assignments, writes the group to the
// offsets log and moves it to Stable, answering every waiting member.
func (g *group) completeSync(ctx context.Context, assignments []kmsg.SyncGroupRequestGroupAssignment) {
	byMember := make(map[string][]byte, len(assignments))
	for _, a := range assignments {
		// Cloned: request bytes may alias the connection's read buffer.
		byMember[a.MemberID] = slices.Clone(a.MemberAssignment)
	}
	for _, m := range g.members {
		// Kafka gives members the leader left out an empty assignment.
		m.assignment = byMember[m.id]
		if m.assignment == nil {
			m.assignment = []byte{}
		}
	}
	rec := Record{Key: groupKey(g.name), Value: g.metadataValue()}
	if err := g.c.appendRecords(ctx, []Record{rec}); err != nil {
		g.log().Error("writing group assignment to the offsets log; rebalancing", "generation", g.generation, "error", err)
		for _, m := range g.members {
			m.assignment = nil
			m.replySyncError(appendErrorCode(err))
		}
		g.prepareRebalance("could not write the assignment")
		return
	}
	g.setState(stateStable)
	g.log().Info("group is stable", "generation", g.generation, "members", len(g.members))
	for _, m := range g.members {
		if m.sync == nil {
			continue
		}
		resp := m.sync.req.ResponseKind().(*kmsg.SyncGroupResponse)
		g.fillSyncResponse(resp, m)
		m.replySync(resp)
		g.scheduleSessionExpiry(m)
	}
}

func (g *group) fillSyncResponse(resp *kmsg.SyncGroupResponse, m *member) {
	resp.ErrorCode = 0
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.MemberAssignment = m.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
}
